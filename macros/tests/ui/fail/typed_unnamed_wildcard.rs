use tidings::{Authorizer, JoinContext, channel};

#[channel("teams/:team/room:*")]
struct RoomChannel {
    team: u64,
}

impl Authorizer for RoomChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        self.team > 0
    }
}

fn main() {}
