//! Growth for the small per-connection lists (sockets, joined channels, handlers): most hold one
//! or two entries for a connection's whole life, so they start with room for one instead of
//! `Vec`'s four, and double from there.

/// Pushes `item`, growing `list` to twice its length (one at first) when it is full.
pub(crate) fn push<T>(list: &mut Vec<T>, item: T) {
    if list.len() == list.capacity() {
        let more = list.len().max(1);
        list.reserve_exact(more);
    }
    list.push(item);
}

#[cfg(test)]
mod tests {
    #[test]
    fn starts_with_room_for_one_then_doubles() {
        let mut list = Vec::new();
        let mut capacities = Vec::new();
        for i in 0..5 {
            super::push(&mut list, i);
            capacities.push(list.capacity());
        }
        assert_eq!(list, [0, 1, 2, 3, 4]);
        assert_eq!(capacities, [1, 2, 4, 4, 8]);
    }
}
