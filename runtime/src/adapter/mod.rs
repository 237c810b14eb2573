//! Fan-out adapters: how an emit reaches the members of its channel on the other nodes of a
//! cluster.
//!
//! - **Local** (the default): no adapter at all. One process delivers to its own connections
//!   and needs nothing else.
//! - **Redis** (cargo feature `redis`): `RedisFanout`, usually set up with
//!   `TidingsBuilder::redis(url)`. Every node publishes its emits to Redis and subscribes to the
//!   Redis channels of the tidings channels it has local members in, so an emit on any node
//!   reaches every member on every node, exactly once.
//!
//! Adapters plug into the hub through the [`Fanout`](crate::channels::Fanout) trait; another
//! broker can be added the same way.

#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
mod redis_history;
#[cfg(feature = "redis")]
mod redis_presence;

#[cfg(feature = "redis")]
pub use redis::{RedisFanout, RedisFanoutError};
