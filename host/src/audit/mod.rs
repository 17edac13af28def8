//! The audit trail: a signed, tamper-evident log of everything that happened.
//!
//! Records (one canonical JSON line each, [`record`]) are the leaves of an
//! RFC 6962 Merkle tree ([`merkle`]); the host signs checkpoints of the tree
//! in the C2SP signed-note format with Ed25519 ([`note`]) and appends them
//! to the log as records too. [`log`] owns appending (durably, under a file
//! lock) and [`verify`] checks a log offline with only the public key.

pub mod bundle;
pub mod log;
pub mod merkle;
pub mod note;
pub mod record;
pub mod verify;
