use tidings::{Authorizer, JoinContext, channel};

#[channel("chats/:id")]
#[derive(Default)]
struct ChatChannel<T> {
    state: T,
}

impl<T: Send + Sync + 'static> Authorizer for ChatChannel<T> {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        let _ = &self.state;
        true
    }
}

fn main() {}
