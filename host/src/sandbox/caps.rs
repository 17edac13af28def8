//! What a task may touch: its capabilities, all off by default.
//!
//! A [`Capabilities`] value starts empty — no args, no env, no files, no
//! inputs, no secrets, no stdin, no network — and the sandbox gives a guest
//! exactly what it holds and nothing from the host process (not its env, not
//! its cwd, not its files). There is no way to grant network access: the
//! sandbox does not link `wasi:sockets` at all. Deciding *whether* a task may
//! have a capability is policy's job, not this module's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::name::Name;
use crate::secrets::SecretValue;

/// How a guest may use a mounted directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountMode {
    /// Read only: no create, write, truncate, rename, link or delete.
    Ro,
    /// Read and write inside the directory (never outside it).
    Rw,
}

/// A host directory made visible to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Directory on the host.
    pub host: PathBuf,
    /// Absolute path in the guest, e.g. `/data`.
    pub guest: String,
    /// Read-only or read-write.
    pub mode: MountMode,
}

/// Everything one task attempt is given. [`Default`] gives nothing at all.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// Arguments after the program name (`argv[1..]`).
    pub args: Vec<String>,
    /// Environment variables, exactly these.
    pub env: Vec<(String, String)>,
    /// Named inputs: host files readable through the host interface (Cairn
    /// tasks) or as read-only files `/inputs/<name>` (command tasks).
    pub inputs: BTreeMap<Name, PathBuf>,
    /// Outputs the task may write. `None` allows any valid name (for
    /// `cairn exec`); workflows always declare them.
    pub outputs: Option<Vec<Name>>,
    /// Host directories mounted in the guest.
    pub mounts: Vec<Mount>,
    /// Secrets the task may read through the host interface.
    pub secrets: BTreeMap<Name, SecretValue>,
    /// Standard input; empty when not given.
    pub stdin: Vec<u8>,
}

impl Capabilities {
    /// Whether the task may write an output called `name`.
    #[must_use]
    pub fn may_write(&self, name: &Name) -> bool {
        self.outputs
            .as_ref()
            .is_none_or(|declared| declared.contains(name))
    }
}
