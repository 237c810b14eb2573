//! Channel names from clients against a registry, and channel patterns registered at runtime.
//! The input's first line is a pattern to register beside fixed ones; every further line a
//! channel name to resolve.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_runtime::channels::{Authorizer, ChannelRegistration, JoinContext, Registry};

#[derive(Default)]
struct Open;

impl Authorizer for Open {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

static CHATS: ChannelRegistration = ChannelRegistration::new::<Open>("chats/:id", "Chats");
static FILES: ChannelRegistration = ChannelRegistration::new::<Open>("files/*path", "Files");
static ORDERS: ChannelRegistration =
    ChannelRegistration::new::<Open>("orders/:user/items/:item", "Orders");
static ROOMS: ChannelRegistration = ChannelRegistration::new::<Open>("room:*", "Rooms");

fuzz_target!(|data: &str| {
    let mut lines = data.split('\n');
    let pattern = lines.next().unwrap_or_default();
    // Registrations are 'static by design (the macro makes them); leak the fuzzed pattern.
    let pattern: &'static str = Box::leak(pattern.to_owned().into_boxed_str());
    let extra = Box::leak(Box::new(ChannelRegistration::new::<Open>(pattern, "Fuzzed")));
    let registry = Registry::from_registrations([&CHATS, &FILES, &ORDERS, &ROOMS, &*extra])
        .or_else(|_| Registry::from_registrations([&CHATS, &FILES, &ORDERS, &ROOMS]));
    let Ok(registry) = registry else { return };
    for name in lines {
        let _ = registry.matches(name);
    }
});
