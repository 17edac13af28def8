//! The language toolchains some tests need beyond Rust: clang for
//! wasm32-wasi, componentize-py, componentize-js, the `wasmtime` Python
//! package (the reference WASI runner), and for the browser tests Chromium
//! with playwright-core and axe-core. `.ci/run` installs them, the Python
//! and npm ones under `target/toolchains/`; a test whose tool is missing
//! elsewhere prints `SKIPPED` with the reason and how to install it, and in
//! CI (`CI` set) fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `.ci/run` installs the Python and npm toolchains.
pub fn toolchains_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("target/toolchains")
}

/// `name` from `target/toolchains/` (venv or node_modules), else from PATH.
fn find(name: &str) -> Option<PathBuf> {
    let dir = toolchains_dir();
    [
        dir.join("venv/bin").join(name),
        dir.join("node/node_modules/.bin").join(name),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .or_else(|| on_path(name))
}

/// `name` from PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Say that `test` did not run because `what` is missing, or fail in CI.
pub fn skip(test: &str, what: &str, install: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run {test}: {what} is missing ({install})"
    );
    eprintln!("SKIPPED {test}: {what} is missing here ({install})");
}

/// componentize-py, if installed.
pub fn componentize_py(test: &str) -> Option<PathBuf> {
    let found = find("componentize-py");
    if found.is_none() {
        skip(
            test,
            "componentize-py",
            "python3 -m venv target/toolchains/venv && target/toolchains/venv/bin/pip install componentize-py==0.25.1",
        );
    }
    found
}

/// componentize-js, if installed.
pub fn componentize_js(test: &str) -> Option<PathBuf> {
    let found = find("componentize-js");
    if found.is_none() {
        skip(
            test,
            "componentize-js",
            "npm install --prefix target/toolchains/node @bytecodealliance/componentize-js@0.23.0",
        );
    }
    found
}

/// A Python that has the `wasmtime` package (wasmtime's own WASI, the
/// reference a WASI program's run is compared with), if installed.
pub fn reference_python(test: &str) -> Option<PathBuf> {
    python_with(test, "wasmtime", "wasmtime==48.0.0")
}

/// A Python that can import `module` (from PyPI's `package`, which
/// `.ci/run` installs into `target/toolchains/venv`), if installed.
pub fn python_with(test: &str, module: &str, package: &str) -> Option<PathBuf> {
    let found = find("python3").filter(|python| {
        Command::new(python)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        skip(
            test,
            &format!("the `{module}` Python package"),
            &format!("target/toolchains/venv/bin/pip install {package}"),
        );
    }
    found
}

/// Whether clang can build C for wasm32-wasi here; says SKIPPED if not.
pub fn clang_for_wasm(test: &str) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = dir.path().join("probe.c");
    std::fs::write(&c, "#include <stdio.h>\nint main(void) { return 0; }\n").expect("write");
    let ok = Command::new("clang")
        .args(["--target=wasm32-wasi", "-o"])
        .arg(dir.path().join("probe.wasm"))
        .arg(c)
        .output()
        .is_ok_and(|out| out.status.success());
    if !ok {
        skip(
            test,
            "clang for wasm32-wasi",
            "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32",
        );
    }
    ok
}

/// What the browser tests (tests/ui) run with: Node, Debian's Chromium,
/// and playwright-core and axe-core installed from tests/ui/package-lock.json.
#[derive(Debug)]
pub struct BrowserTools {
    pub node: PathBuf,
    pub chromium: PathBuf,
    pub node_modules: PathBuf,
}

/// The browser tests' tools, if all are installed; says SKIPPED if not.
pub fn browser(test: &str) -> Option<BrowserTools> {
    let Some(node) = on_path("node") else {
        skip(test, "node", "apt-get install nodejs");
        return None;
    };
    let chromium = std::env::var_os("CAIRN_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.is_file() {
        skip(test, "chromium", "apt-get install chromium");
        return None;
    }
    let node_modules = toolchains_dir().join("ui/node_modules");
    if !["playwright-core", "axe-core"]
        .iter()
        .all(|package| node_modules.join(package).join("package.json").is_file())
    {
        skip(
            test,
            "playwright-core and axe-core",
            "mkdir -p target/toolchains/ui && cp tests/ui/package*.json target/toolchains/ui/ && npm ci --prefix target/toolchains/ui",
        );
        return None;
    }
    Some(BrowserTools {
        node,
        chromium,
        node_modules,
    })
}
