//! Structured log lines, shown by `cairn` with the task's name.
//!
//! Prefer these macros to `println!`: they carry a level, and the host keeps
//! them apart from the task's stdout.

pub use crate::bindings::cairn::task::types::Level;

/// Emit one log line at `level`.
pub fn log(level: Level, message: &str) {
    crate::bindings::cairn::task::host::log(level, message);
}

/// Log at `trace` level, with `format!` arguments.
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Trace, &format!($($arg)*)) }; }
/// Log at `debug` level, with `format!` arguments.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, &format!($($arg)*)) }; }
/// Log at `info` level, with `format!` arguments.
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($arg)*)) }; }
/// Log at `warn` level, with `format!` arguments.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($arg)*)) }; }
/// Log at `error` level, with `format!` arguments.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, &format!($($arg)*)) }; }
