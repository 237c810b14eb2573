use tidings::{Authorizer, JoinContext, channel};

#[channel("chats/:id")]
struct ChatChannel {
    id: Vec<u8>,
}

impl Authorizer for ChatChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        !self.id.is_empty()
    }
}

fn main() {}
