use tidings::channel;

#[channel("chats/:id")]
struct ChatChannel<'a> {
    name: &'a str,
}

fn main() {
    let _ = ChatChannel { name: "a" }.name;
}
