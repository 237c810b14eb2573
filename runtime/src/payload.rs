//! Event payloads shared by every layer, whatever the protocol: JSON kept as the raw text the
//! peer sent (so it passes through byte for byte), plus binary parts.
//!
//! A payload is a list of JSON arguments (most have one; Socket.IO clients may send several),
//! in which a binary part stands as `{"_placeholder":true,"num":N}` pointing into the list of
//! binary parts. That is the in-memory form of "JSON with binary parts" every gateway renders
//! in its own way: Socket.IO as attachments (the same form, so nothing is re-encoded), a
//! protocol that carries one value its first argument, a whole-binary payload
//! ([`Payload::as_binary`]) as a binary message, and a protocol without binary its JSON with
//! the parts rendered ([`Payload::to_json_with`], base64 say).

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;

/// The arguments of an event or ack, with their binary attachments.
///
/// JSON arguments are kept as the exact text received; a binary argument is a placeholder
/// `{"_placeholder":true,"num":N}` pointing into [`Payload::attachments`], as on the wire.
///
/// ```
/// use tidings_runtime::Payload;
/// let mut payload = Payload::new();
/// payload.push(&serde_json::json!({"b": 1, "a": 2})).unwrap();
/// payload.push_binary(vec![1u8, 2, 3]);
/// assert_eq!(payload.len(), 2);
/// assert_eq!(payload.arg(0).unwrap().get(), r#"{"a":2,"b":1}"#);
/// assert_eq!(payload.binary(1).unwrap().as_ref(), &[1, 2, 3]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Payload {
    args: Vec<Box<RawValue>>,
    attachments: Vec<Bytes>,
}

impl Payload {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// One argument, serialized to JSON; every [`Binary`] inside it becomes a binary part.
    ///
    /// # Errors
    /// When `value` cannot be serialized to JSON.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, PayloadError> {
        let mut payload = Payload::new();
        payload.push(value)?;
        Ok(payload)
    }

    pub(crate) fn from_parts(args: Vec<Box<RawValue>>, attachments: Vec<Bytes>) -> Self {
        Payload { args, attachments }
    }

    /// Appends one JSON argument; every [`Binary`] inside it becomes a binary part.
    ///
    /// # Errors
    /// When `value` cannot be serialized to JSON.
    ///
    /// ```
    /// use tidings_runtime::{Binary, Payload};
    /// let mut payload = Payload::new();
    /// payload.push(&"text").unwrap().push(&Binary::from(vec![7u8])).unwrap();
    /// assert_eq!(payload.binary(1).unwrap().as_ref(), &[7]);
    /// ```
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<&mut Self, PayloadError> {
        let previous =
            COLLECTOR.with(|c| c.borrow_mut().replace((self.attachments.len(), Vec::new())));
        let raw = serde_json::value::to_raw_value(value);
        let collected = COLLECTOR.with(|c| {
            let mut slot = c.borrow_mut();
            let collected = slot.take().map(|(_, parts)| parts).unwrap_or_default();
            *slot = previous;
            collected
        });
        let raw = raw.map_err(PayloadError::Serialize)?;
        self.args.push(raw);
        self.attachments.extend(collected);
        Ok(self)
    }

    /// A payload that is one binary value (Phoenix's binary push, a binary WebSocket message).
    pub fn from_binary(bytes: impl Into<Bytes>) -> Self {
        let mut payload = Payload::new();
        payload.push_binary(bytes);
        payload
    }

    /// The whole payload, when it is exactly one binary value.
    ///
    /// ```
    /// use tidings_runtime::Payload;
    /// assert_eq!(Payload::from_binary(vec![1u8]).as_binary().map(|b| b.to_vec()), Some(vec![1]));
    /// assert!(Payload::from_value(&1).unwrap().as_binary().is_none());
    /// ```
    pub fn as_binary(&self) -> Option<&Bytes> {
        if self.args.len() == 1 {
            self.binary(0)
        } else {
            None
        }
    }

    /// Argument `index` as a JSON value, every binary part inside it replaced by what `render`
    /// makes of it (for protocols without binary: base64 text, say).
    ///
    /// ```
    /// use tidings_runtime::{Binary, Payload};
    /// #[derive(serde::Serialize)]
    /// struct Upload { name: &'static str, file: Binary }
    /// let payload = Payload::from_serialize(&Upload { name: "a", file: Binary::from(vec![1u8, 2]) }).unwrap();
    /// let json = payload.to_json_with(0, |bytes| serde_json::json!(bytes.len())).unwrap();
    /// assert_eq!(json, serde_json::json!({"name": "a", "file": 2}));
    /// ```
    pub fn to_json_with(
        &self,
        index: usize,
        render: impl Fn(&Bytes) -> serde_json::Value,
    ) -> Option<serde_json::Value> {
        let mut value: serde_json::Value = serde_json::from_str(self.arg(index)?.get()).ok()?;
        if !self.attachments.is_empty() {
            replace_placeholders(&mut value, &self.attachments, &render);
        }
        Some(value)
    }

    /// Appends one binary argument (sent as an attachment).
    pub fn push_binary(&mut self, bytes: impl Into<Bytes>) -> &mut Self {
        let num = self.attachments.len();
        self.attachments.push(bytes.into());
        self.args.push(placeholder(num));
        self
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// The raw JSON arguments, binary ones as placeholders.
    pub fn args(&self) -> &[Box<RawValue>] {
        &self.args
    }

    /// The raw JSON text of argument `index`.
    pub fn arg(&self, index: usize) -> Option<&RawValue> {
        self.args.get(index).map(AsRef::as_ref)
    }

    /// The binary attachments, in placeholder order.
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }

    /// Argument `index` deserialized into `T`.
    ///
    /// # Errors
    /// When there is no such argument or it does not fit `T`.
    ///
    /// ```
    /// use tidings_runtime::Payload;
    /// let payload = Payload::from_value(&42u32).unwrap();
    /// assert_eq!(payload.get::<u32>(0).unwrap(), 42);
    /// assert!(payload.get::<u32>(1).is_err());
    /// ```
    pub fn get<T: DeserializeOwned>(&self, index: usize) -> Result<T, PayloadError> {
        let raw = self
            .arg(index)
            .ok_or(PayloadError::MissingArgument(index))?;
        serde_json::from_str(raw.get()).map_err(PayloadError::Deserialize)
    }

    /// Argument `index` when it is a binary attachment.
    pub fn binary(&self, index: usize) -> Option<&Bytes> {
        let num = placeholder_num(self.arg(index)?)?;
        self.attachments.get(num)
    }

    /// A payload with the arguments from `start` on (attachments are kept as they are, so the
    /// placeholders still point at them).
    pub fn skip(&self, start: usize) -> Payload {
        Payload {
            args: self.args.iter().skip(start).cloned().collect(),
            attachments: self.attachments.clone(),
        }
    }

    /// Checks that every placeholder points at an attachment and every attachment is used.
    pub(crate) fn validate_placeholders(&self) -> Result<(), PayloadError> {
        let mut used = vec![false; self.attachments.len()];
        for arg in &self.args {
            let value: serde_json::Value =
                serde_json::from_str(arg.get()).map_err(PayloadError::Deserialize)?;
            mark_placeholders(&value, &mut used)?;
        }
        if used.iter().all(|u| *u) {
            Ok(())
        } else {
            Err(PayloadError::UnusedAttachment)
        }
    }
}

fn placeholder(num: usize) -> Box<RawValue> {
    RawValue::from_string(format!(r#"{{"_placeholder":true,"num":{num}}}"#))
        .unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// The attachment number when `raw` is exactly a placeholder object.
fn placeholder_num(raw: &RawValue) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Placeholder {
        _placeholder: bool,
        num: usize,
    }
    let text = raw.get();
    if !text.starts_with('{') {
        return None;
    }
    let placeholder: Placeholder = serde_json::from_str(text).ok()?;
    placeholder._placeholder.then_some(placeholder.num)
}

/// Replaces every placeholder inside `value` with what `render` makes of its part.
fn replace_placeholders(
    value: &mut serde_json::Value,
    parts: &[Bytes],
    render: &impl Fn(&Bytes) -> serde_json::Value,
) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("_placeholder") == Some(&serde_json::Value::Bool(true)) {
                let part = map
                    .get("num")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .and_then(|n| parts.get(n));
                if let Some(part) = part {
                    *value = render(part);
                }
                return;
            }
            for item in map.values_mut() {
                replace_placeholders(item, parts, render);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                replace_placeholders(item, parts, render);
            }
        }
        _ => {}
    }
}

fn mark_placeholders(value: &serde_json::Value, used: &mut [bool]) -> Result<(), PayloadError> {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("_placeholder") == Some(&serde_json::Value::Bool(true)) {
                let num = map
                    .get("num")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(PayloadError::BadPlaceholder)?;
                let slot = used.get_mut(num).ok_or(PayloadError::BadPlaceholder)?;
                *slot = true;
                return Ok(());
            }
            map.values().try_for_each(|v| mark_placeholders(v, used))
        }
        serde_json::Value::Array(items) => {
            items.iter().try_for_each(|v| mark_placeholders(v, used))
        }
        _ => Ok(()),
    }
}

impl Payload {
    pub(crate) fn push_attachment(&mut self, bytes: Bytes) {
        self.attachments.push(bytes);
    }
}

/// A problem with the arguments of an event or ack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// A value could not be serialized to JSON.
    #[error("cannot serialize argument: {0}")]
    Serialize(#[source] serde_json::Error),
    /// An argument could not be deserialized into the requested type.
    #[error("cannot deserialize argument: {0}")]
    Deserialize(#[source] serde_json::Error),
    /// There is no argument at this index.
    #[error("no argument at index {0}")]
    MissingArgument(usize),
    /// A binary placeholder is malformed or points past the attachments.
    #[error("invalid binary placeholder")]
    BadPlaceholder,
    /// An attachment no placeholder points at.
    #[error("unused attachment")]
    UnusedAttachment,
}

thread_local! {
    /// Binary parts collected while a value is serialized into a payload on this thread, and
    /// how many parts the payload already had (the first collected one's number).
    static COLLECTOR: std::cell::RefCell<Option<(usize, Vec<Bytes>)>> = const { std::cell::RefCell::new(None) };
}

/// Bytes that travel as a binary attachment when part of an emitted payload, at any depth.
///
/// Outside an emit it serializes as plain bytes.
///
/// ```
/// use tidings_runtime::{Binary, Payload};
/// #[derive(serde::Serialize)]
/// struct Upload { name: &'static str, file: Binary }
/// let payload = Payload::from_serialize(&Upload { name: "a.png", file: Binary::from(vec![1u8, 2]) }).unwrap();
/// assert_eq!(payload.arg(0).unwrap().get(), r#"{"name":"a.png","file":{"_placeholder":true,"num":0}}"#);
/// assert_eq!(payload.attachments()[0].as_ref(), &[1, 2]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Binary(pub Bytes);

impl<T: Into<Bytes>> From<T> for Binary {
    fn from(bytes: T) -> Self {
        Binary(bytes.into())
    }
}

impl Serialize for Binary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let num = COLLECTOR.with(|c| {
            c.borrow_mut().as_mut().map(|(first, parts)| {
                parts.push(self.0.clone());
                *first + parts.len() - 1
            })
        });
        match num {
            Some(num) => {
                use serde::ser::SerializeStruct as _;
                let mut s = serializer.serialize_struct("Placeholder", 2)?;
                s.serialize_field("_placeholder", &true)?;
                s.serialize_field("num", &num)?;
                s.end()
            }
            None => serializer.serialize_bytes(&self.0),
        }
    }
}

impl Payload {
    /// One argument from any `Serialize` value; every [`Binary`] inside it becomes a binary
    /// attachment.
    ///
    /// # Errors
    /// When `value` cannot be serialized to JSON.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, PayloadError> {
        Self::from_value(value)
    }
}

/// Bytes as JSON, for wires that carry no binary: `{"binary": "<base64>"}` (standard
/// alphabet, padded).
pub(crate) fn binary_as_json(bytes: &[u8]) -> Box<RawValue> {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    // A string in an object always serializes; the fallback (`null`) is never taken.
    serde_json::value::to_raw_value(&serde_json::json!({ "binary": text })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_parts_are_numbered_across_pushes_and_nested_payloads() {
        let mut payload = Payload::new();
        payload.push_binary(vec![0u8]);
        payload
            .push(&serde_json::json!({"a": 1}))
            .unwrap_or_else(|e| panic!("{e}"));
        payload
            .push(&(Binary::from(vec![1u8]), Binary::from(vec![2u8])))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            payload.arg(2).map(RawValue::get),
            Some(r#"[{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]"#)
        );
        assert_eq!(payload.attachments().len(), 3);
        assert!(payload.validate_placeholders().is_ok());

        // A payload built while another is being serialized keeps its own numbering, and the
        // outer one gets its parts back afterwards.
        struct Nested;
        impl Serialize for Nested {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let inner = Payload::from_value(&Binary::from(vec![9u8]))
                    .map_err(serde::ser::Error::custom)?;
                assert_eq!(inner.attachments().len(), 1);
                Binary::from(vec![8u8]).serialize(serializer)
            }
        }
        let outer = Payload::from_value(&(Binary::from(vec![7u8]), Nested))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            outer.attachments().iter().map(|b| b[0]).collect::<Vec<_>>(),
            [7, 8]
        );
        assert!(outer.validate_placeholders().is_ok());
        // Outside any payload, Binary is plain bytes.
        assert_eq!(
            serde_json::to_string(&Binary::from(vec![1u8, 2]))
                .ok()
                .as_deref(),
            Some("[1,2]")
        );
    }
}
