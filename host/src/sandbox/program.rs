//! Loading a wasm file into a runnable, pre-linked [`Program`].
//!
//! Owns the checks every wasm file passes before it can run, in order: read
//! the bytes once; check the sha256 pin against those exact bytes (nothing is
//! compiled before that); recognise what the bytes are (a component or a
//! core module, and which kind of task); compile them or load the cached
//! code; link them against what the host provides. Each failure is a
//! [`LoadError`] that says what is wrong and what to do.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, types::ComponentItem};
use wasmtime::{Engine, Module};

use super::host_api::TaskPre;
use super::{ComponentState, ModuleState, Sandbox};
use crate::digest::Digest;

/// The kinds of program Cairn runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A component of the `cairn:task` world: exports `run`.
    CairnTask,
    /// A `wasi:cli/command` component (wasm32-wasip2 `main`).
    Command,
    /// A core module with `_start` (wasm32-wasip1 `main`), run through WASI
    /// preview 1.
    CoreCommand,
}

impl Kind {
    /// A short, stable tag: `cairn-task`, `command`, `core-command`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CairnTask => "cairn-task",
            Self::Command => "command",
            Self::CoreCommand => "core-command",
        }
    }
}

pub(crate) enum Linked {
    Task(TaskPre<ComponentState>),
    Command(wasmtime_wasi::p2::bindings::CommandPre<ComponentState>),
    Core(wasmtime::InstancePre<ModuleState>),
}

/// A loaded, compiled and linked program, ready to instantiate many times.
pub struct Program {
    pub(crate) linked: Linked,
    kind: Kind,
    digest: Digest,
    name: String,
    load: LoadStats,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// How loading went: for progress output and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadStats {
    /// Whether compiled code came from the cache.
    pub cache_hit: bool,
    /// Time to compile (or to load cached code).
    pub compile: Duration,
    /// Size of the wasm file.
    pub size: u64,
}

impl Program {
    /// The name a program loaded from `path` gets: the file's stem.
    #[must_use]
    pub fn name_of(path: &Path) -> String {
        path.file_stem()
            .map_or_else(|| "task".to_owned(), |s| s.to_string_lossy().into_owned())
    }

    /// What kind of task this is.
    #[must_use]
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The sha256 of the wasm bytes that were compiled.
    #[must_use]
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The program's name (its file stem), used as `argv[0]`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How loading went.
    #[must_use]
    pub fn load_stats(&self) -> LoadStats {
        self.load
    }
}

/// Why a wasm file cannot be run. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read `{}`: {source}; check the path", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{}` is not a WebAssembly file (it starts with {found}); pass a `.wasm` built with `cargo build --target wasm32-wasip2`",
        path.display()
    )]
    NotWasm { path: PathBuf, found: String },
    #[error(
        "`{}` is WebAssembly of an unsupported version ({found}); Cairn runs components (wasm32-wasip2) and core modules (wasm32-wasip1)",
        path.display()
    )]
    UnsupportedVersion { path: PathBuf, found: String },
    #[error(
        "`{}` has sha256 {actual}, but the pin requires {expected}; rebuild the task or update the pin",
        path.display()
    )]
    PinMismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("`{}` is not valid WebAssembly: {message}; rebuild it with a current toolchain", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(
        "`{}` is a component but exports neither `run` (a Cairn task) nor `wasi:cli/run` (a command); it exports {exports}. Build a task with the cairn-guest SDK as a cdylib, or a program with `fn main` for wasm32-wasip2",
        path.display()
    )]
    NotATask { path: PathBuf, exports: String },
    #[error(
        "`{}` is a core module without a `_start` function, so it is not a WASI command; build a program with `fn main` for wasm32-wasip1, or a component for wasm32-wasip2",
        path.display()
    )]
    CoreNotCommand { path: PathBuf },
    #[error(
        "`{}` needs {missing}, which Cairn does not provide ({message}). A task gets the `cairn:task` host interface, WASI 0.2's cli, clocks, random, io and filesystem, sockets that refuse every address, and outgoing HTTP (`wasi:http/outgoing-handler`); rebuild it without that import (with componentize-py or componentize-js, leave it out of the world you build against)",
        path.display()
    )]
    Link {
        path: PathBuf,
        /// The first import the host does not serve, in backticks, or
        /// "something" when every import is known but one does not match.
        missing: String,
        message: String,
    },
    #[error(
        "`{}` could not be loaded: wasmtime failed on it while {stage} ({message}). Cairn refused the task and went on; please report this with the file",
        path.display()
    )]
    Crashed {
        path: PathBuf,
        stage: &'static str,
        message: String,
    },
}

/// What a byte string is, judged by its header.
enum Shape {
    Component,
    Module,
}

fn shape(path: &Path, bytes: &[u8]) -> Result<Shape, LoadError> {
    let header = |n: usize| {
        let shown: Vec<String> = bytes.iter().take(n).map(|b| format!("{b:02x}")).collect();
        if shown.is_empty() {
            "no bytes at all".to_owned()
        } else {
            format!("`{}`", shown.join(" "))
        }
    };
    if !bytes.starts_with(b"\0asm") {
        return Err(LoadError::NotWasm {
            path: path.to_owned(),
            found: header(4),
        });
    }
    match bytes.get(4..8) {
        Some([1, 0, 0, 0]) => Ok(Shape::Module),
        Some([0x0d, 0, 1, 0]) => Ok(Shape::Component),
        _ => Err(LoadError::UnsupportedVersion {
            path: path.to_owned(),
            found: header(8),
        }),
    }
}

fn invalid(path: &Path, e: &wasmtime::Error) -> LoadError {
    LoadError::Invalid {
        path: path.to_owned(),
        message: format!("{e:#}"),
    }
}

impl Sandbox {
    /// Load the wasm file at `path`, refusing it unless its sha256 equals
    /// `pin` when one is given.
    ///
    /// # Errors
    ///
    /// A [`LoadError`] for unreadable, non-wasm, mismatched, invalid or
    /// unlinkable files.
    pub fn load(&self, path: &Path, pin: Option<&Digest>) -> Result<Program, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(path, &bytes, pin)
    }

    /// [`Sandbox::load`] for bytes already in memory; `path` names them in
    /// messages and gives the program its name.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::load`].
    pub fn load_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        pin: Option<&Digest>,
    ) -> Result<Program, LoadError> {
        let digest = Digest::of(bytes);
        if let Some(expected) = pin
            && *expected != digest
        {
            return Err(LoadError::PinMismatch {
                path: path.to_owned(),
                expected: *expected,
                actual: digest,
            });
        }
        let name = Program::name_of(path);
        let size = bytes.len() as u64;
        let started = Instant::now();
        let shape = shape(path, bytes)?;
        // wasmtime can panic on inputs its authors did not foresee: that
        // ends this load, not the process.
        let loaded = crate::guard::catch(|| self.compile_and_link(path, bytes, &digest, shape))
            .map_err(|message| LoadError::Crashed {
                path: path.to_owned(),
                stage: "compiling or linking it",
                message,
            })?;
        let (linked, kind, cache_hit) = loaded?;
        let load = LoadStats {
            cache_hit,
            compile: started.elapsed(),
            size,
        };
        Ok(Program {
            linked,
            kind,
            digest,
            name,
            load,
        })
    }

    /// Compile (or load from the cache) and link bytes of `shape`.
    fn compile_and_link(
        &self,
        path: &Path,
        bytes: &[u8],
        digest: &Digest,
        shape: Shape,
    ) -> Result<(Linked, Kind, bool), LoadError> {
        Ok(match shape {
            Shape::Component => {
                let (component, hit) = self.compile(
                    path,
                    bytes,
                    digest,
                    "component",
                    |e, b| Component::new(e, b).map(|c| (c.serialize(), c)),
                    |e, code| {
                        // SAFETY: `code` was produced by `Component::serialize` on an
                        // engine with this configuration (the cache key includes the
                        // engine's compatibility hash) and passed the cache's sha256
                        // integrity check; the cache directory is private to this user.
                        #[expect(
                            unsafe_code,
                            reason = "deserializing our own cached, integrity-checked code"
                        )]
                        unsafe {
                            Component::deserialize(e, code)
                        }
                    },
                )?;
                let (linked, kind) = self.link_component(path, &component)?;
                (linked, kind, hit)
            }
            Shape::Module => {
                let (module, hit) = self.compile(
                    path,
                    bytes,
                    digest,
                    "module",
                    |e, b| Module::new(e, b).map(|m| (m.serialize(), m)),
                    |e, code| {
                        // SAFETY: as for components above.
                        #[expect(
                            unsafe_code,
                            reason = "deserializing our own cached, integrity-checked code"
                        )]
                        unsafe {
                            Module::deserialize(e, code)
                        }
                    },
                )?;
                (self.link_module(path, &module)?, Kind::CoreCommand, hit)
            }
        })
    }

    /// Compile `bytes`, or load their cached code; store fresh code.
    fn compile<T>(
        &self,
        path: &Path,
        bytes: &[u8],
        digest: &Digest,
        kind: &str,
        compile: impl FnOnce(&Engine, &[u8]) -> wasmtime::Result<(wasmtime::Result<Vec<u8>>, T)>,
        deserialize: impl FnOnce(&Engine, &[u8]) -> wasmtime::Result<T>,
    ) -> Result<(T, bool), LoadError> {
        if let Some(cache) = &self.cache
            && let Some(code) = cache.get(digest, kind)
        {
            match deserialize(&self.engine, &code) {
                Ok(compiled) => return Ok((compiled, true)),
                Err(e) => {
                    tracing::warn!(error = %e, "evicting unusable compile-cache entry");
                    cache.evict(digest, kind);
                }
            }
        }
        let (code, compiled) = compile(&self.engine, bytes).map_err(|e| invalid(path, &e))?;
        if let Some(cache) = &self.cache {
            match code {
                Ok(code) => {
                    if let Err(e) = cache.put(digest, kind, &code) {
                        tracing::warn!(error = %e, dir = %cache.dir().display(), "cannot write compile cache");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot serialize compiled code"),
            }
        }
        Ok((compiled, false))
    }

    fn link_component(
        &self,
        path: &Path,
        component: &Component,
    ) -> Result<(Linked, Kind), LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let is_task = ty.exports(&self.engine).any(|(name, item)| {
            name == "run" && matches!(item.ty, ComponentItem::ComponentFunc(_))
        });
        let is_command = exports
            .iter()
            .any(|name| name.starts_with("wasi:cli/run@0.2"));
        if !is_task && !is_command {
            let exports = if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(LoadError::NotATask {
                path: path.to_owned(),
                exports,
            });
        }
        let link = |e: wasmtime::Error| LoadError::Link {
            path: path.to_owned(),
            missing: unserved(ty.imports(&self.engine).map(|(name, _)| name)),
            message: format!("{e:#}"),
        };
        let pre = self
            .component_linker
            .instantiate_pre(component)
            .map_err(link)?;
        if is_task {
            let pre = TaskPre::new(pre).map_err(link)?;
            Ok((Linked::Task(pre), Kind::CairnTask))
        } else {
            let pre = wasmtime_wasi::p2::bindings::CommandPre::new(pre).map_err(link)?;
            Ok((Linked::Command(pre), Kind::Command))
        }
    }

    fn link_module(&self, path: &Path, module: &Module) -> Result<Linked, LoadError> {
        let has_start = module
            .exports()
            .any(|e| e.name() == "_start" && e.ty().func().is_some());
        if !has_start {
            return Err(LoadError::CoreNotCommand {
                path: path.to_owned(),
            });
        }
        let pre = self
            .module_linker
            .instantiate_pre(module)
            .map_err(|e| LoadError::Link {
                path: path.to_owned(),
                missing: unserved(module.imports().map(|i| i.module())),
                message: format!("{e:#}"),
            })?;
        Ok(Linked::Core(pre))
    }
}

/// The first of `imports` the host serves nothing for, in backticks, or
/// "something" when each names a known interface (then a function or type
/// inside one does not match, and wasmtime's message says which).
fn unserved<'a>(mut imports: impl Iterator<Item = &'a str>) -> String {
    imports
        .find(|name| !super::serves(name))
        .map_or_else(|| "something".to_owned(), |name| format!("`{name}`"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    const TWO_MEMORIES: &str = include_str!("../../../tests/guests/wat/two_memories.wat");

    #[test]
    fn the_first_unserved_import_is_named() {
        let served = [
            "wasi:sockets/tcp@0.2.9",
            "wasi:http/outgoing-handler@0.2.10",
            "cairn:task/host@0.1.0",
            "wasi_snapshot_preview1",
        ];
        assert_eq!(unserved(served.into_iter()), "something");
        let imports = [
            "wasi:cli/exit@0.2.0",
            "wasi:http/incoming-handler@0.2.6",
            "acme:db/query@1.0.0",
        ];
        assert_eq!(
            unserved(imports.into_iter()),
            "`wasi:http/incoming-handler@0.2.6`"
        );
        assert_eq!(
            unserved(["wasi:cli/exit@0.3.0"].into_iter()),
            "`wasi:cli/exit@0.3.0`"
        );
        assert_eq!(unserved(["env"].into_iter()), "`env`");
    }

    #[test]
    fn a_panic_while_compiling_is_a_load_error_and_the_sandbox_goes_on() {
        // Without multi-memory, wasmtime 48 panics building the adapter
        // between the component's two memories.
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).wasm_multi_memory(false);
        let sandbox = Sandbox::on(Engine::new(&config).unwrap(), None).unwrap();
        let bytes = wat::parse_str(TWO_MEMORIES).unwrap();
        let path = Path::new("two_memories.wasm");
        match sandbox.load_bytes(path, &bytes, None) {
            Err(LoadError::Crashed { message, .. }) => {
                assert!(message.contains("memor"), "{message}");
            }
            other => panic!("expected a crash turned into a load error, got {other:?}"),
        }
        // The same engine still loads what it can.
        let trivial =
            wat::parse_str(include_str!("../../../tests/guests/wat/trivial_task.wat")).unwrap();
        assert!(
            sandbox
                .load_bytes(Path::new("t.wasm"), &trivial, None)
                .is_ok()
        );
        // Cairn's own engine has multi-memory: the component loads.
        let ours = Sandbox::new(&super::super::EngineSettings::default(), None).unwrap();
        let program = ours.load_bytes(path, &bytes, None).unwrap();
        assert_eq!(program.kind(), Kind::Command);
    }
}
