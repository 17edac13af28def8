//! The task's named outputs, which the host stores and passes downstream.

use crate::HostError;
use crate::bindings::cairn::task::host;

/// Write the output called `name`. Each output is written once, whole.
///
/// # Errors
///
/// [`HostError::Invalid`] if the name is malformed or already written,
/// [`HostError::TooLarge`] if `data` exceeds the output limit,
/// [`HostError::Denied`] if the output was not declared.
pub fn write(name: &str, data: impl AsRef<[u8]>) -> Result<(), HostError> {
    host::write_output(name, data.as_ref()).map_err(HostError::from)
}
