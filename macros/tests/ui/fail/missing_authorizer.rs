use tidings::channel;

#[channel("chats/:id")]
#[derive(Default)]
pub struct ChatChannel;

fn main() {}
