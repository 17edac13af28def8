//! The task's named inputs, as the workflow passes them.

use crate::bindings::cairn::task::host;
use crate::{Error, HostError, Result};

/// Names of the inputs this task was given, in the order declared.
#[must_use]
pub fn names() -> Vec<String> {
    host::inputs()
}

/// The bytes of the input called `name`.
///
/// # Errors
///
/// [`HostError::NotFound`] if no such input was given, [`HostError::TooLarge`]
/// if it exceeds what one call may pass, [`HostError::Denied`] if policy
/// forbids it.
pub fn bytes(name: &str) -> core::result::Result<Vec<u8>, HostError> {
    host::read_input(name).map_err(HostError::from)
}

/// The input called `name`, as UTF-8 text.
///
/// # Errors
///
/// As [`bytes`], or a permanent failure if the input is not UTF-8.
pub fn string(name: &str) -> Result<String> {
    utf8(name, bytes(name)?)
}

/// The input called `name` as text, or `default` if the task was not given it.
///
/// # Errors
///
/// As [`string`], except that a missing input is not an error.
pub fn string_or(name: &str, default: &str) -> Result<String> {
    match bytes(name) {
        Ok(bytes) => utf8(name, bytes),
        Err(HostError::NotFound(_)) => Ok(default.to_owned()),
        Err(e) => Err(e.into()),
    }
}

fn utf8(name: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|e| Error::permanent(format!("input `{name}` is not UTF-8: {e}")))
}
