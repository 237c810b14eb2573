#![doc = include_str!("../README.md")]

pub use tidings_macros::channel;
pub use tidings_runtime::channels::{
    Authorizer, ChannelContext, ChannelLimits, ConnectRefusal, Disconnect, EmitError, Handshake,
    JoinContext, JoinRefusal, JoinVerdict, Joined, LeaveReason, MemberId, Outbound, PresenceDiff,
    PresenceError, PresenceMeta, Presences, Reply,
};
pub use tidings_runtime::engineio::{HttpServer, on_connect};
pub use tidings_runtime::{
    Binary, BuildError, EmitTo, Payload, Recovery, SocketEmitter, Tidings, TidingsBuilder,
    channels, engineio, origin, phoenix, plainws, socketio,
};

/// What generated code refers to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use tidings_runtime::channels::{
        ChannelName, ChannelRegistration, FromParams, ParamError, param,
    };
}

/// Fan-out across nodes (the Redis adapter, with the `redis` feature).
#[cfg(feature = "redis")]
pub use tidings_runtime::adapter;
