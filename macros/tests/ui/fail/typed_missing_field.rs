use tidings::{Authorizer, JoinContext, channel};

#[channel("orders/:user/items/:item")]
struct OrderChannel {
    user: u64,
}

impl Authorizer for OrderChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        self.user > 0
    }
}

fn main() {}
