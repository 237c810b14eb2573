use tidings::{Authorizer, JoinContext, channel};

#[channel(1)]
#[derive(Default)]
struct NonString;

impl Authorizer for NonString {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

fn main() {}
