#![doc = include_str!("../README.md")]

pub use tidings_runtime::{engineio, socketio};
