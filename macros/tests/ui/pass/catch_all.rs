//! A catch-all segment, with strict lints.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use tidings::channels::Registry;
use tidings::{Authorizer, JoinContext, channel};

/// Every file under `files/`.
#[channel("files/*path")]
#[derive(Default)]
pub struct FileChannel;

impl Authorizer for FileChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.param("path").is_some()
    }
}

fn main() {
    let registry = Registry::from_inventory().expect("one channel, no conflict");
    assert_eq!(registry.len(), 1);
    assert!(registry.matches("files/a"));
    assert!(registry.matches("files/a/b/c"));
    assert!(!registry.matches("files"));
    assert!(!registry.matches("other/a"));
}
