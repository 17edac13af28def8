//! The gate every policy-relevant host call passes, at the moment it happens.
//!
//! The sandbox checks a host call against the task's declared capabilities
//! first (undeclared: `not-found`); then, if the attempt has a [`Gate`], asks
//! it. A refusal reaches the guest as the typed `denied` error and is
//! recorded in the attempt. The sandbox knows no policy language: the policy
//! module implements this trait with Cedar.

/// A host call that policy must allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateRequest {
    /// The task reads the secret of this (declared) name.
    ReadSecret(String),
    /// The task reads its (declared) input of this name.
    ReadInput(String),
    /// The task sends this HTTP request (to a declared endpoint).
    Connect(super::HttpTarget),
    /// The host would write secret `name` into this request in place of
    /// its placeholder.
    InjectSecret {
        name: String,
        target: super::HttpTarget,
    },
    /// The host would add the attempt's trace context (a W3C
    /// `traceparent` header, [`Gate::trace_context`]) to this request.
    PropagateTrace(super::HttpTarget),
}

/// Decides host calls at run time.
pub trait Gate: Send + Sync + 'static {
    /// `Ok(())` to allow; `Err(why)` to deny, `why` naming what decided.
    ///
    /// # Errors
    ///
    /// The denial, as text for the guest and the attempt's record.
    fn check(&self, request: &GateRequest) -> Result<(), String>;

    /// The attempt's trace context (a W3C `traceparent` value), which the
    /// host adds to each HTTP request the gate allows it for; `None`: the
    /// attempt is not traced, and nothing is added.
    fn trace_context(&self) -> Option<String> {
        None
    }
}
