//! Socket.IO v5 on top of [`crate::engineio`]: the packet codec (binary included),
//! namespaces, sockets, acks both ways, rooms and disconnects.
//!
//! It calls the Engine.IO layer only through [`crate::engineio::EngineHandler`] and
//! [`crate::engineio::Session`].

mod error;
mod namespace;
mod packet;
mod server;
mod socket;

pub use crate::payload::Payload;
pub use error::{AckError, EmitError, PacketError, PayloadError};
pub use namespace::{ConnectRefusal, Namespace, RecoverFuture, Resumed};
pub use packet::{Packet, PacketType, Partial};
pub use server::{Client, IoConfig, IoHandler, SocketIo, SocketIoBuilder};
pub(crate) use socket::Listener;
pub use socket::{AckSender, DisconnectReason, Socket, SocketRef};
