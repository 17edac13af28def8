//! Errors a task sees and returns.
//!
//! [`HostError`] is a refusal from the host (typed, from the WIT contract);
//! [`Error`] is what a task returns when it fails. Any `std::error::Error`
//! converts into [`Error`] with `?`, as a permanent failure.

use core::fmt;

use crate::bindings::cairn::task::types::{Error as WitError, Failure};

/// The result type of task code.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why the host refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The workflow or policy does not grant this; the text says which request.
    Denied(String),
    /// Nothing by this name was declared.
    NotFound(String),
    /// Larger than one call may pass or the output may hold: the limit in bytes.
    TooLarge(u64),
    /// The call was malformed (a bad name, an output written twice).
    Invalid(String),
}

impl HostError {
    /// Whether nothing by the requested name was declared.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }

    /// Whether the workflow or policy denied the request.
    #[must_use]
    pub fn is_denied(&self) -> bool {
        matches!(self, Self::Denied(_))
    }
}

impl From<WitError> for HostError {
    fn from(error: WitError) -> Self {
        match error {
            WitError::Denied(what) => Self::Denied(what),
            WitError::NotFound(name) => Self::NotFound(name),
            WitError::TooLarge(limit) => Self::TooLarge(limit),
            WitError::Invalid(what) => Self::Invalid(what),
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(what) => write!(f, "denied: {what}"),
            Self::NotFound(name) => write!(f, "`{name}` was not declared for this task"),
            Self::TooLarge(limit) => write!(f, "too large: at most {limit} bytes may pass"),
            Self::Invalid(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for HostError {}

/// Why a task failed, and whether running it again may help.
pub struct Error {
    message: String,
    transient: bool,
}

impl Error {
    /// A failure that running the task again cannot fix (bad data, a denial).
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            transient: false,
        }
    }

    /// A failure that running the task again may fix; the host may retry it.
    pub fn transient(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            transient: true,
        }
    }

    /// Whether the host may retry the task after this failure.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The failure's message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_failure(self) -> Failure {
        if self.transient {
            Failure::Transient(self.message)
        } else {
            Failure::Permanent(self.message)
        }
    }
}

impl<E: std::error::Error> From<E> for Error {
    /// A permanent failure whose message is the error and its sources.
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::permanent(message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.transient {
            "transient"
        } else {
            "permanent"
        };
        write!(f, "{kind} failure: {}", self.message)
    }
}
