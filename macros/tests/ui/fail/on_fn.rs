use tidings::channel;

#[channel("chats/:id")]
fn chat_channel() {}

fn main() {
    chat_channel();
}
