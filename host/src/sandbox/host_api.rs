//! The host side of `cairn:task/host`: inputs, outputs, secrets and logs.
//!
//! Every host call a Cairn task makes goes through [`HostState`], which checks
//! the call against the task's declared capabilities and limits before any
//! side effect, and records each refusal. A refusal is a typed WIT error the
//! guest can handle; only a host failure (an unreadable declared input, a full
//! disk) or a blown log limit traps. Policy checks (Cedar) will sit in the same
//! place, in front of the same side effects.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::HasData;

use super::outcome::{Level, LogLine, Output};
use crate::digest::Digest;
use crate::name::Name;
use crate::secrets::{Redactor, SecretValue};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cairn:task/task@0.1.0",
        // Reads that pass the policy gate are async: Cedar runs on a blocking
    // thread, not on the guest's fiber stack (its depth guard cannot see
    // the fiber's bounds).
    imports: {
        "cairn:task/host.secret": async | trappable,
        "cairn:task/host.read-input": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

use self::cairn::task::types::{Error as WitError, Level as WitLevel};
use self::cairn::task::{host as wit_host, types as wit_types};

/// Receives each log line as the task emits it (secrets already masked).
pub type LogSink = Arc<dyn Fn(&LogLine) + Send + Sync>;

/// Longest log line kept, in bytes; longer ones are truncated.
const MAX_LOG_LINE: usize = 8 * 1024;

/// The per-attempt state behind the host interface.
pub(crate) struct HostState {
    pub(crate) inputs: BTreeMap<Name, PathBuf>,
    pub(crate) declared_outputs: Option<Vec<Name>>,
    pub(crate) secrets: BTreeMap<Name, SecretValue>,
    /// Secrets given as placeholders: name → placeholder.
    pub(crate) placeholders: BTreeMap<Name, String>,
    pub(crate) outputs_dir: PathBuf,
    pub(crate) call_bytes: u64,
    pub(crate) output_limit: u64,
    pub(crate) log_limit: u64,
    pub(crate) redactor: Arc<Redactor>,
    pub(crate) sink: Option<LogSink>,
    pub(crate) gate: Option<Arc<dyn super::Gate>>,
    pub(crate) written: Vec<Output>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) log_bytes: u64,
    pub(crate) logs_overflowed: bool,
    pub(crate) denials: Vec<String>,
}

/// Selects [`HostState`] out of the store for the generated `add_to_linker`.
pub(crate) struct HostData;

impl HasData for HostData {
    type Data<'a> = &'a mut HostState;
}

impl HostState {
    fn deny(&mut self, what: String) -> WitError {
        self.denials.push(what.clone());
        WitError::Denied(what)
    }

    /// Ask the gate, if any, on a blocking thread; a refusal becomes a
    /// recorded `denied`.
    async fn gate(&mut self, request: super::GateRequest, what: &str) -> Result<(), WitError> {
        let Some(gate) = self.gate.clone() else {
            return Ok(());
        };
        let verdict = tokio::task::spawn_blocking(move || gate.check(&request))
            .await
            .unwrap_or_else(|e| Err(format!("the policy check failed: {e}")));
        match verdict {
            Ok(()) => Ok(()),
            Err(why) => Err(self.deny(format!("{what} denied by policy: {why}"))),
        }
    }

    fn not_found(&mut self, what: String, name: &str) -> WitError {
        self.denials.push(what);
        WitError::NotFound(name.to_owned())
    }
}

fn parse_name(name: &str) -> Result<Name, WitError> {
    Name::new(name).map_err(|e| WitError::Invalid(e.to_string()))
}

impl wit_types::Host for HostState {}

impl wit_host::Host for HostState {
    fn inputs(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.inputs.keys().map(|n| n.as_str().to_owned()).collect())
    }

    async fn read_input(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        // A fan-in input is named by its element: `pages[eu]`.
        let parsed = Name::new_fanned(&name).map_err(|e| WitError::Invalid(e.to_string()));
        let name = match parsed {
            Ok(name) => name,
            Err(e) => return Ok(Err(e)),
        };
        // Asking for an input that was not given is how a task probes for an
        // optional one: an answer, not a denial worth recording.
        let Some(path) = self.inputs.get(&name).cloned() else {
            return Ok(Err(WitError::NotFound(name.as_str().to_owned())));
        };
        let what = format!("read of input `{name}`");
        if let Err(denied) = self
            .gate(super::GateRequest::ReadInput(name.to_string()), &what)
            .await
        {
            return Ok(Err(denied));
        }
        let read = || -> std::io::Result<Option<Vec<u8>>> {
            let file = File::open(&path)?;
            if file.metadata()?.len() > self.call_bytes {
                return Ok(None);
            }
            let mut bytes = Vec::new();
            // Bounded even if the file grows while we read it.
            file.take(self.call_bytes.saturating_add(1))
                .read_to_end(&mut bytes)?;
            Ok((bytes.len() as u64 <= self.call_bytes).then_some(bytes))
        };
        match read() {
            Ok(Some(bytes)) => Ok(Ok(bytes)),
            Ok(None) => Ok(Err(WitError::TooLarge(self.call_bytes))),
            Err(e) => Err(wasmtime::format_err!("cannot read input `{name}`: {e}")),
        }
    }

    fn write_output(
        &mut self,
        name: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let name = match parse_name(&name) {
            Ok(name) => name,
            Err(e) => return Ok(Err(e)),
        };
        if self
            .declared_outputs
            .as_ref()
            .is_some_and(|d| !d.contains(&name))
        {
            return Ok(Err(
                self.deny(format!("write of undeclared output `{name}`"))
            ));
        }
        if self.written.iter().any(|o| o.name == name) {
            return Ok(Err(WitError::Invalid(format!(
                "output `{name}` was already written"
            ))));
        }
        let limit = self.call_bytes.min(self.output_limit);
        if data.len() as u64 > limit {
            return Ok(Err(WitError::TooLarge(limit)));
        }
        let path = self.outputs_dir.join(name.as_str());
        let write = || -> std::io::Result<()> {
            let mut file = File::options().write(true).create_new(true).open(&path)?;
            file.write_all(&data)
        };
        write().map_err(|e| wasmtime::format_err!("cannot store output `{name}`: {e}"))?;
        let digest = Digest::of(&data);
        self.written.push(Output {
            name,
            path,
            size: data.len() as u64,
            digest,
        });
        Ok(Ok(()))
    }

    async fn secret(&mut self, name: String) -> wasmtime::Result<Result<String, WitError>> {
        let name = match parse_name(&name) {
            Ok(name) => name,
            Err(e) => return Ok(Err(e)),
        };
        match self.secrets.get(&name).cloned() {
            Some(value) => {
                let what = format!("read of secret `{name}`");
                if let Err(denied) = self
                    .gate(super::GateRequest::ReadSecret(name.to_string()), &what)
                    .await
                {
                    return Ok(Err(denied));
                }
                Ok(Ok(value.expose().to_owned()))
            }
            None => {
                // An injected secret: the task gets its placeholder. Not a
                // release: the value stays on the host, which writes it into
                // requests where policy allows (see `http`).
                if let Some(placeholder) = self.placeholders.get(&name) {
                    return Ok(Ok(placeholder.clone()));
                }
                let what = format!("read of undeclared secret `{name}`");
                Ok(Err(self.not_found(what, name.as_str())))
            }
        }
    }

    fn log(&mut self, level: WitLevel, message: String) -> wasmtime::Result<()> {
        self.log_bytes = self.log_bytes.saturating_add(message.len() as u64);
        if self.log_bytes > self.log_limit {
            self.logs_overflowed = true;
            return Err(wasmtime::format_err!("log limit exceeded"));
        }
        let mut message = self.redactor.mask_str(&message);
        if message.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [truncated]");
        }
        let level = match level {
            WitLevel::Trace => Level::Trace,
            WitLevel::Debug => Level::Debug,
            WitLevel::Info => Level::Info,
            WitLevel::Warn => Level::Warn,
            WitLevel::Error => Level::Error,
        };
        let line = LogLine { level, message };
        if let Some(sink) = &self.sink {
            sink(&line);
        }
        self.logs.push(line);
        Ok(())
    }
}
