use tidings::{Authorizer, JoinContext, channel};

#[channel("a", "b")]
#[derive(Default)]
struct TwoArguments;

impl Authorizer for TwoArguments {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

fn main() {}
