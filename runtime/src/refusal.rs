//! Why a connection was refused, shared by every layer that can refuse one: a Socket.IO
//! namespace guard and the channel layer's connect hook.

/// Why a connection was refused. Each gateway reports it its own way: over Socket.IO the
/// client's `connect_error` carries `message`.
///
/// ```
/// use tidings_runtime::channels::ConnectRefusal;
/// assert_eq!(ConnectRefusal::new("invalid token").message, "invalid token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectRefusal {
    /// What the client is told.
    pub message: String,
}

impl ConnectRefusal {
    /// A refusal with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectRefusal {
            message: message.into(),
        }
    }
}
