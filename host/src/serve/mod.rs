//! The service, `cairn serve` — being built in steps (ARCHITECTURE.md,
//! "The service"). So far: the API tokens it will authenticate requests
//! with.

pub mod tokens;
