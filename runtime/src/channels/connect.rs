//! The connect hook's answer: who the client is, or why it may not connect.

/// Why the connect hook refused a connection. Each gateway reports it its own way: over
/// Socket.IO the client's `connect_error` carries `message`.
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
