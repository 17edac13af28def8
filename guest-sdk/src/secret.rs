//! Secrets, read through the host only.

use core::fmt;

use crate::HostError;
use crate::bindings::cairn::task::host;

/// A secret's value. `Debug` and `Display` never show it; use
/// [`Secret::expose`] where the value is really needed.
pub struct Secret(String);

impl Secret {
    /// The secret's value. Keep it out of logs and outputs: the host masks the
    /// values it knows in what the task prints, but cannot catch every
    /// transformation of them.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Read the secret called `name`.
///
/// # Errors
///
/// [`HostError::NotFound`] if the task did not declare it,
/// [`HostError::Denied`] if policy forbids this task to read it.
pub fn secret(name: &str) -> Result<Secret, HostError> {
    host::secret(name).map(Secret).map_err(HostError::from)
}
