//! The sandbox: runs one task attempt in its own wasmtime instance.
//!
//! Owns the engine, the linkers (what a guest can import), the compile cache,
//! and the per-attempt store: capabilities in, [`Attempt`] out. A guest gets
//! exactly its [`Capabilities`] and is held to its [`Limits`]; nothing of the
//! host process (env, cwd, files, network) is inherited. This module must
//! never panic or fail the host because of what a guest does: every guest
//! behaviour ends as an [`Outcome`]. It knows nothing of workflows or policy.

mod cache;
mod caps;
mod engine;
mod gate;
mod host_api;
mod http;
mod limits;
mod outcome;
mod program;
mod run;
mod stdio;
mod wasi;

use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtxView, WasiView};

pub use cache::CompileCache;
pub use caps::{
    Capabilities, GuestPathError, Mount, MountMode, check_guest_path, guest_paths_overlap,
};
pub use engine::EngineSettings;
pub use gate::{Gate, GateRequest};
pub use host_api::LogSink;
pub use http::{
    Endpoint, Exchange, ExchangeSink, HttpLimits, HttpTarget, Injection, InvalidEndpoint,
};
pub use limits::{EPOCH_TICK, Limits, MAX_INSTANCES};
pub use outcome::{Attempt, Clock, Level, LogLine, Outcome, Output, Resource, bytes};
pub use program::{Kind, LoadError, LoadStats, Program};
pub use run::TaskSpec;

use host_api::{HostData, HostState};
use limits::Guard;

/// Store data for components (Cairn tasks and commands).
pub(crate) struct ComponentState {
    wasi: wasi::LazyWasi,
    table: ResourceTable,
    guard: Guard,
    host: HostState,
    http: wasmtime_wasi_http::WasiHttpCtx,
    egress: http::Egress,
}

impl wasmtime_wasi_http::WasiHttpView for ComponentState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get(),
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for ComponentState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

/// Store data for core modules (WASI preview 1 commands).
pub(crate) struct ModuleState {
    wasi: wasmtime_wasi::p1::WasiP1Ctx,
    guard: Guard,
}

/// Runs tasks: one engine, its linkers and its compile cache.
pub struct Sandbox {
    engine: Engine,
    component_linker: wasmtime::component::Linker<ComponentState>,
    module_linker: wasmtime::Linker<ModuleState>,
    cache: Option<CompileCache>,
    _ticker: engine::EpochTicker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Why a sandbox could not be set up (a host problem, not a guest's).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
    #[error("cannot start the epoch clock thread: {0}")]
    Ticker(std::io::Error),
    #[error("cannot use compile cache directory `{}`: {source}", dir.display())]
    Cache {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Sandbox {
    /// A sandbox with the given engine settings, caching compiled code in
    /// `cache_dir` when given.
    ///
    /// # Errors
    ///
    /// When the engine, the epoch thread or the cache directory cannot be
    /// set up.
    pub fn new(settings: &EngineSettings, cache_dir: Option<&Path>) -> Result<Self, SetupError> {
        let engine = engine::build(settings).map_err(|e| SetupError::Engine(format!("{e:#}")))?;
        Self::on(engine, cache_dir)
    }

    /// A sandbox on `engine` (configured by [`engine::build`], or by a test).
    fn on(engine: Engine, cache_dir: Option<&Path>) -> Result<Self, SetupError> {
        let component_linker =
            component_linker(&engine).map_err(|e| SetupError::Engine(format!("{e:#}")))?;
        let mut module_linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut module_linker, |s: &mut ModuleState| {
            &mut s.wasi
        })
        .map_err(|e| SetupError::Engine(format!("{e:#}")))?;
        let cache = cache_dir
            .map(|dir| {
                CompileCache::open(dir, &engine).map_err(|source| SetupError::Cache {
                    dir: dir.to_owned(),
                    source,
                })
            })
            .transpose()?;
        let ticker = engine::EpochTicker::start(&engine).map_err(SetupError::Ticker)?;
        Ok(Self {
            engine,
            component_linker,
            module_linker,
            cache,
            _ticker: ticker,
        })
    }

    /// Whether loading the wasm whose digest is `wasm` will find its
    /// compiled code in the cache (and so take milliseconds, not seconds).
    /// False without a cache.
    #[must_use]
    pub fn is_cached(&self, wasm: &crate::digest::Digest) -> bool {
        self.cache
            .as_ref()
            .is_some_and(|c| c.has(wasm, "component") || c.has(wasm, "module"))
    }

    /// The engine, for benchmarks and tools that compare against it.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// The interfaces [`component_linker`] serves (by `package/interface`, any
/// version of the same major), and the one core module WASI preview 1 gives.
const SERVED: &[(&str, &str)] = &[
    ("wasi:io/", "0.2."),
    ("wasi:clocks/", "0.2."),
    ("wasi:random/", "0.2."),
    ("wasi:cli/", "0.2."),
    ("wasi:filesystem/", "0.2."),
    ("wasi:sockets/", "0.2."),
    ("wasi:http/types", "0.2."),
    ("wasi:http/outgoing-handler", "0.2."),
    ("cairn:task/host", "0.1."),
    ("cairn:task/types", "0.1."),
];

/// Whether the host serves an import called `name` (for naming the one it
/// does not, when linking fails).
fn serves(name: &str) -> bool {
    if name == "wasi_snapshot_preview1" {
        return true;
    }
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    SERVED.iter().any(|(prefix, major)| {
        let matches = if prefix.ends_with('/') {
            interface.starts_with(prefix)
        } else {
            interface == *prefix
        };
        matches && version.starts_with(major)
    })
}

/// What a component may import: Cairn's host interface, and of WASI p2 io,
/// clocks, random, cli, filesystem, outgoing HTTP (every request checked,
/// see [`http`]) and sockets. Sockets are linked because language runtimes
/// (componentize-py's CPython) import them whether or not a task uses them;
/// the context refuses every socket, address and lookup (`wasi.rs`), so the
/// guest gets an error, never a connection.
fn component_linker(
    engine: &Engine,
) -> wasmtime::Result<wasmtime::component::Linker<ComponentState>> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView as _};
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};

    type S = ComponentState;
    let mut linker = wasmtime::component::Linker::new(engine);
    let l = &mut linker;
    wasmtime_wasi_io::add_to_linker_async(l)?;
    clocks::wall_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    filesystem::types::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)?;
    filesystem::preopens::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)?;
    random::random::add_to_linker::<S, WasiRandom>(l, S::random)?;
    random::insecure::add_to_linker::<S, WasiRandom>(l, S::random)?;
    random::insecure_seed::add_to_linker::<S, WasiRandom>(l, S::random)?;
    cli::exit::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::environment::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_input::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_output::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    let options = sockets::network::LinkOptions::default();
    sockets::network::add_to_linker::<S, WasiSockets>(l, &options, S::sockets)?;
    sockets::instance_network::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sockets::tcp::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sockets::udp::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sockets::udp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<S, WasiSockets>(l, S::sockets)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(l)?;
    host_api::Task::add_to_linker::<S, HostData>(l, |s| &mut s.host)?;
    Ok(linker)
}
