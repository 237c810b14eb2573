use tidings::{Authorizer, JoinContext, channel};

#[channel("room:*/messages")]
#[derive(Default)]
struct RoomChannel;

impl Authorizer for RoomChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

fn main() {}
