//! Event arguments shared by every layer: JSON values kept as the raw text the peer sent (so
//! they pass through byte for byte), plus binary attachments.

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

    /// One argument, serialized to JSON.
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

    /// Appends one JSON argument.
    ///
    /// # Errors
    /// When `value` cannot be serialized to JSON.
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<&mut Self, PayloadError> {
        let raw = serde_json::value::to_raw_value(value).map_err(PayloadError::Serialize)?;
        self.args.push(raw);
        Ok(self)
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
    /// Attachments collected while [`Payload::from_serialize`] runs on this thread.
    static COLLECTOR: std::cell::RefCell<Option<Vec<Bytes>>> = const { std::cell::RefCell::new(None) };
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
            c.borrow_mut().as_mut().map(|attachments| {
                attachments.push(self.0.clone());
                attachments.len() - 1
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
        let previous = COLLECTOR.with(|c| c.borrow_mut().replace(Vec::new()));
        let raw = serde_json::value::to_raw_value(value);
        let attachments = COLLECTOR.with(|c| {
            let mut slot = c.borrow_mut();
            let collected = slot.take().unwrap_or_default();
            *slot = previous;
            collected
        });
        let raw = raw.map_err(PayloadError::Serialize)?;
        Ok(Payload {
            args: vec![raw],
            attachments,
        })
    }
}
