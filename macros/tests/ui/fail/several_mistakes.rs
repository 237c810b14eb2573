use tidings::channel;

#[channel("/rooms//:1/*rest/:rest")]
enum Room {
    Lobby,
}

fn main() {
    let _ = Room::Lobby;
}
