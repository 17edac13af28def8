//! What a task may touch: its capabilities, all off by default.
//!
//! A [`Capabilities`] value starts empty — no args, no env, no files, no
//! inputs, no secrets, no stdin, no network — and the sandbox gives a guest
//! exactly what it holds and nothing from the host process (not its env, not
//! its cwd, not its files). The only network is HTTP to declared endpoints
//! (`wasi:http`, each request checked as it is sent); `wasi:sockets` is
//! linked only so that runtimes importing it load, and refuses every socket
//! and lookup (see `wasi.rs`). Deciding *whether* a task may
//! have a capability is policy's job, not this module's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::http::{Endpoint, Injection};
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

/// Why a path cannot be a mount point in the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestPathError {
    #[error("the guest path `{0}` must be absolute, without `.`, `..` or `//`")]
    NotClean(String),
    #[error("the guest path `{0}` is reserved")]
    Reserved(String),
}

impl GuestPathError {
    /// What to do about it.
    #[must_use]
    pub fn help(&self) -> &'static str {
        match self {
            Self::NotClean(_) => "write an absolute path such as `/data`, one `/` between names",
            Self::Reserved(_) => {
                "`/inputs` and `/outputs` belong to Cairn; mount elsewhere, e.g. `/data` or `/`"
            }
        }
    }
}

/// Check a guest mount point: absolute, no `.`, `..` or empty segments, and not
/// `/inputs`, `/outputs` or inside them (Cairn's own). `/` is allowed, as
/// `wasmtime run --dir HOST::/` gives it: the guest resolves each path to
/// the longest preopened prefix, so `/inputs`, `/outputs` and other mounts
/// stay what they are beside it.
///
/// # Errors
///
/// [`GuestPathError`] saying which rule the path breaks.
pub fn check_guest_path(path: &str) -> Result<(), GuestPathError> {
    // No empty segments either: `//inputs` is `/inputs` to the guest.
    if !path.starts_with('/')
        || path.contains("//")
        || path.split('/').any(|p| p == ".." || p == ".")
    {
        return Err(GuestPathError::NotClean(path.to_owned()));
    }
    let trimmed = path.trim_end_matches('/');
    let reserved = ["/inputs", "/outputs"]
        .iter()
        .any(|r| trimmed == *r || trimmed.starts_with(&format!("{r}/")));
    if reserved {
        return Err(GuestPathError::Reserved(path.to_owned()));
    }
    Ok(())
}

/// Whether two guest mount points overlap: one is, or is inside, the
/// other. The root is inside nothing but itself: a mount at `/` coexists
/// with every other (the longest prefix wins), but not with a second `/`.
#[must_use]
pub fn guest_paths_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    if a.is_empty() || b.is_empty() {
        return a == b;
    }
    let inside = |x: &str, y: &str| x == y || x.starts_with(&format!("{y}/"));
    inside(a, b) || inside(b, a)
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
    /// Endpoints the task may send HTTP requests to (each request is still
    /// put to the gate).
    pub network: Vec<Endpoint>,
    /// Secrets the task gets only as placeholders, which the host replaces
    /// in its requests where policy allows.
    pub inject: BTreeMap<Name, Injection>,
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
