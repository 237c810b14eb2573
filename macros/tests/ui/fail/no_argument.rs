use tidings::{Authorizer, JoinContext, channel};

#[channel]
#[derive(Default)]
struct NoArgument;

impl Authorizer for NoArgument {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

fn main() {}
