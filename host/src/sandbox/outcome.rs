//! How a task attempt ended, in terms the scheduler and the audit log use.
//!
//! Every way an attempt can end is one variant of [`Outcome`], with the limit
//! or reason that decided it. The textual forms (`kind()`, `Display`) are part
//! of Cairn's interface (CLI, JSON, audit records): change them only with care.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::digest::Digest;
use crate::name::Name;

/// Which clock a timeout was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Time executing wasm code.
    Cpu,
    /// Elapsed real time, including time blocked in host calls.
    Wall,
}

/// A limited resource other than time and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Linear memory.
    Memory,
    /// Table elements.
    Table,
    /// Open handles (files, streams, directories).
    Handles,
}

/// The end of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The task finished successfully.
    Success,
    /// The task reported a failure (a Cairn task's `err`, a command's non-zero
    /// exit status). `transient` failures may be retried.
    GuestError { message: String, transient: bool },
    /// The guest trapped: a wasm trap, a panic, an abort, a stack overflow.
    Trap {
        reason: String,
        backtrace: Option<String>,
    },
    /// A time limit ran out.
    Timeout { clock: Clock, limit: Duration },
    /// The guest tried to grow memory or a table past its limit, then failed.
    ResourceLimit { resource: Resource, limit: u64 },
    /// The guest wrote more than allowed to a stream or an output.
    OutputLimit { stream: String, limit: u64 },
    /// The guest left an output Cairn will not accept (not a regular file, a
    /// bad name, undeclared).
    InvalidOutput { name: String, reason: String },
    /// The instance could not be created (e.g. its start function trapped).
    Instantiation { message: String },
}

impl Outcome {
    /// A short, stable tag: `success`, `guest-error`, `trap`, `timeout`,
    /// `resource-limit`, `output-limit`, `invalid-output`, `instantiation`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::GuestError { .. } => "guest-error",
            Self::Trap { .. } => "trap",
            Self::Timeout { .. } => "timeout",
            Self::ResourceLimit { .. } => "resource-limit",
            Self::OutputLimit { .. } => "output-limit",
            Self::InvalidOutput { .. } => "invalid-output",
            Self::Instantiation { .. } => "instantiation",
        }
    }

    /// Whether the attempt succeeded.
    #[must_use]
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }

    /// Whether running the task again may give another result: traps,
    /// timeouts and transient guest errors. Limits and bad outputs are
    /// deterministic, so retrying them only wastes time.
    #[must_use]
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Trap { .. } | Self::Timeout { .. } => true,
            Self::GuestError { transient, .. } => *transient,
            _ => false,
        }
    }

    /// The same outcome with `redactor`'s secrets masked in every text the
    /// guest could have chosen (its failure message, a trap's reason).
    #[must_use]
    pub fn masked(self, redactor: &crate::secrets::Redactor) -> Self {
        match self {
            Self::GuestError { message, transient } => Self::GuestError {
                message: redactor.mask_str(&message),
                transient,
            },
            Self::Trap { reason, backtrace } => Self::Trap {
                reason: redactor.mask_str(&reason),
                backtrace: backtrace.map(|b| redactor.mask_str(&b)),
            },
            Self::InvalidOutput { name, reason } => Self::InvalidOutput {
                name: redactor.mask_str(&name),
                reason: redactor.mask_str(&reason),
            },
            Self::Instantiation { message } => Self::Instantiation {
                message: redactor.mask_str(&message),
            },
            other => other,
        }
    }

    /// [`Outcome::is_retriable`] for an outcome as the audit log records
    /// it: its [`Outcome::kind`] and its display text.
    #[must_use]
    pub fn recorded_is_retriable(kind: &str, detail: &str) -> bool {
        match kind {
            "trap" | "timeout" => true,
            "guest-error" => detail.starts_with("failed (transient)"),
            _ => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success => f.write_str("succeeded"),
            Self::GuestError {
                message,
                transient: true,
            } => {
                write!(f, "failed (transient): {message}")
            }
            Self::GuestError {
                message,
                transient: false,
            } => write!(f, "failed: {message}"),
            Self::Trap { reason, .. } => write!(f, "trapped: {reason}"),
            Self::Timeout {
                clock: Clock::Cpu,
                limit,
            } => {
                write!(f, "timed out: cpu time limit of {} exceeded", secs(*limit))
            }
            Self::Timeout {
                clock: Clock::Wall,
                limit,
            } => {
                write!(
                    f,
                    "timed out: wall-clock limit of {} exceeded",
                    secs(*limit)
                )
            }
            Self::ResourceLimit {
                resource: Resource::Memory,
                limit,
            } => {
                write!(
                    f,
                    "memory limit exceeded: the task may use {}",
                    bytes(*limit)
                )
            }
            Self::ResourceLimit {
                resource: Resource::Table,
                limit,
            } => {
                write!(f, "table limit exceeded: a table may hold {limit} elements")
            }
            Self::ResourceLimit {
                resource: Resource::Handles,
                limit,
            } => {
                write!(
                    f,
                    "handle limit exceeded: the task may hold {limit} open handles"
                )
            }
            Self::OutputLimit { stream, limit } => {
                write!(
                    f,
                    "output limit exceeded: {stream} may hold {}",
                    bytes(*limit)
                )
            }
            Self::InvalidOutput { name, reason } => write!(f, "invalid output `{name}`: {reason}"),
            Self::Instantiation { message } => write!(f, "could not start: {message}"),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Human form of a byte count, e.g. `64 MiB`.
#[must_use]
pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// Lowercase name: `trace` … `error`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One line a Cairn task logged, secrets masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its severity.
    pub level: Level,
    /// Its text.
    pub message: String,
}

/// An output the task produced, stored as a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The output's name.
    pub name: Name,
    /// Where its bytes are on the host.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The sha256 of its bytes.
    pub digest: Digest,
}

/// Everything one attempt produced.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// How it ended.
    pub outcome: Outcome,
    /// A command's exit status (0 for success), when its own exit decided
    /// the outcome; `None` for Cairn tasks and for commands stopped by a
    /// trap or a limit.
    pub exit_status: Option<i32>,
    /// How long it ran (instantiation included).
    pub duration: Duration,
    /// Captured stdout, secrets masked.
    pub stdout: Vec<u8>,
    /// Captured stderr, secrets masked.
    pub stderr: Vec<u8>,
    /// Log lines, secrets masked.
    pub logs: Vec<LogLine>,
    /// Host calls the sandbox refused (undeclared secrets, inputs, outputs,
    /// HTTP requests).
    pub denials: Vec<String>,
    /// HTTP requests the task made, allowed or not, in the order they ended.
    pub requests: Vec<super::Exchange>,
    /// Outputs, only when the attempt succeeded.
    pub outputs: Vec<Output>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        assert!(
            Outcome::Timeout {
                clock: Clock::Wall,
                limit: Duration::from_secs(1)
            }
            .is_retriable()
        );
        assert!(
            Outcome::GuestError {
                message: "x".into(),
                transient: true
            }
            .is_retriable()
        );
        assert!(
            !Outcome::GuestError {
                message: "x".into(),
                transient: false
            }
            .is_retriable()
        );
        assert!(
            !Outcome::ResourceLimit {
                resource: Resource::Memory,
                limit: 1
            }
            .is_retriable()
        );
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }
}
