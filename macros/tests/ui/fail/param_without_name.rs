use tidings::{Authorizer, JoinContext, channel};

#[channel("chats/:")]
#[derive(Default)]
struct ChatChannel;

impl Authorizer for ChatChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

fn main() {}
