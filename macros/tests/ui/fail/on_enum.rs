use tidings::channel;

#[channel("chats/:id")]
enum ChatChannel {
    Open,
    Closed,
}

fn main() {
    let _ = (ChatChannel::Open, ChatChannel::Closed);
}
