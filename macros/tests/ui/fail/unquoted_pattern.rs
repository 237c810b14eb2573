use tidings::{Authorizer, JoinContext, channel};

#[channel(chats/:id)]
#[derive(Default)]
struct Unquoted;

impl Authorizer for Unquoted {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

fn main() {}
