//! The WASI context a task sees, built only when the guest first needs it.
//!
//! Creating a WASI context costs more than instantiating a small component
//! (it seeds random generators and opens preopened directories), and many
//! Cairn tasks never make a WASI call during a run: wasi-libc reads its
//! environment and preopens lazily, and the task's I/O goes through the
//! `cairn:task` host interface. So a component's store holds a [`WasiPlan`]
//! and builds the context on the first WASI call. The plan is the whole
//! grant: what it does not list, the guest does not get. Sockets are never
//! in it: `wasi:sockets` is linked so that language runtimes importing it
//! load, but every socket and every name lookup is refused here.

use std::path::PathBuf;

use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::stdio::Capture;

/// A directory to preopen for the guest.
#[derive(Debug, Clone)]
pub(crate) struct Preopen {
    pub(crate) host: PathBuf,
    pub(crate) guest: String,
    pub(crate) perms: FsPerms,
}

/// Everything the guest's WASI context will hold. [`Default`] holds nothing:
/// no args, no env, empty stdin, stdout and stderr discarded, no files.
#[derive(Debug, Default)]
pub(crate) struct WasiPlan {
    /// `argv`, including `argv[0]`.
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) stdin: Vec<u8>,
    pub(crate) stdout: Option<Capture>,
    pub(crate) stderr: Option<Capture>,
    pub(crate) preopens: Vec<Preopen>,
}

impl WasiPlan {
    /// A builder holding exactly this plan. Nothing is inherited: env, args,
    /// stdio, network and filesystem start empty in `WasiCtxBuilder::new`,
    /// and sockets are refused outright (not left to wasmtime's defaults):
    /// no TCP, no UDP, no name lookup, no address allowed. A guest's only
    /// network is `wasi:http`, through the gate.
    fn builder(self) -> WasiCtxBuilder {
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdin(MemoryInputPipe::new(self.stdin))
            .args(&self.args)
            .envs(&self.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(std::future::ready(false)));
        if let Some(stdout) = self.stdout {
            builder.stdout(stdout);
        }
        if let Some(stderr) = self.stderr {
            builder.stderr(stderr);
        }
        for preopen in self.preopens {
            // Each directory was checked before the attempt started; if it
            // vanished since, the guest simply does not get it.
            if let Err(error) = builder.preopened_dir(&preopen.host, &preopen.guest, preopen.perms)
            {
                tracing::warn!(%error, host = %preopen.host.display(), "mount disappeared; not given to the task");
            }
        }
        builder
    }

    /// The WASI preview 2 context.
    pub(crate) fn build(self) -> WasiCtx {
        self.builder().build()
    }

    /// The WASI preview 1 context, for core modules.
    pub(crate) fn build_p1(self) -> wasmtime_wasi::p1::WasiP1Ctx {
        self.builder().build_p1()
    }
}

/// A WASI context built on first use from its plan.
#[derive(Default)]
pub(crate) struct LazyWasi {
    plan: Option<WasiPlan>,
    ctx: Option<WasiCtx>,
}

impl LazyWasi {
    pub(crate) fn new(plan: WasiPlan) -> Self {
        Self {
            plan: Some(plan),
            ctx: None,
        }
    }

    /// The context, built now if this is the first use.
    pub(crate) fn get(&mut self) -> &mut WasiCtx {
        let plan = &mut self.plan;
        self.ctx
            .get_or_insert_with(|| plan.take().unwrap_or_default().build())
    }
}
