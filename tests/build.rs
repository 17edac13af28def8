//! Builds every guest program the tests run, and exposes their paths.
//!
//! Guests are compiled with the real toolchain (`cargo build --target
//! wasm32-wasip2` / `wasm32-wasip1`, no extra tools) into their own target
//! directory beside this workspace's, so the outer build is never blocked
//! on its own lock and never rebuilt. WAT fixtures are assembled here. The
//! generated `guests.rs` holds one `&str` constant per guest.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Command programs in tests/guests/command/src/bin.
const COMMANDS: &[&str] = &[
    "echo",
    "spin",
    "sleep",
    "membomb",
    "recurse",
    "flood_stdout",
    "flood_output",
    "traverse",
    "symlink_escape",
    "ro_mount",
    "snoop",
    "panic",
    "trap",
    "sockets",
    "exit_code",
    "handles",
    "noop",
    "wasi_conformance",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let workspace = root.parent().ok_or("tests/ has no parent")?.to_owned();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // OUT_DIR is <target>/<profile>/build/<pkg>/out: share <target>.
    let target_dir = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .ok_or("unexpected OUT_DIR layout")?
        .join("wasm-guests");

    for watched in ["guest-sdk", "wit", "examples", "tests/guests"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let guests = workspace.join("tests/guests/Cargo.toml");
    let root_manifest = workspace.join("Cargo.toml");
    cargo_build(
        &root_manifest,
        &[
            "-p",
            "hello",
            "-p",
            "cicd-tasks",
            "-p",
            "etl-tasks",
            "-p",
            "polyglot-tasks",
        ],
        "wasm32-wasip2",
        &target_dir,
    )?;
    cargo_build(&guests, &["--workspace"], "wasm32-wasip2", &target_dir)?;
    cargo_build(
        &guests,
        &["-p", "cairn-test-commands"],
        "wasm32-wasip1",
        &target_dir,
    )?;

    let mut consts = String::new();
    let release = |target: &str, file: &str| target_dir.join(target).join("release").join(file);
    let mut emit = |name: &str, path: PathBuf| -> Result<(), Box<dyn std::error::Error>> {
        if !path.is_file() {
            return Err(format!("guest `{name}` was not built at {}", path.display()).into());
        }
        writeln!(
            consts,
            "pub const {name}: &str = {:?};",
            path.display().to_string()
        )?;
        Ok(())
    };
    emit("HELLO", release("wasm32-wasip2", "hello.wasm"))?;
    emit("CICD", release("wasm32-wasip2", "cicd_tasks.wasm"))?;
    emit("ETL", release("wasm32-wasip2", "etl_tasks.wasm"))?;
    emit("POLYGLOT", release("wasm32-wasip2", "polyglot_tasks.wasm"))?;
    emit("TASK", release("wasm32-wasip2", "cairn_test_task.wasm"))?;
    for command in COMMANDS {
        let upper = command.to_uppercase();
        emit(
            &format!("CMD_{upper}"),
            release("wasm32-wasip2", &format!("{command}.wasm")),
        )?;
        emit(
            &format!("P1_{upper}"),
            release("wasm32-wasip1", &format!("{command}.wasm")),
        )?;
    }
    // Every fixture in tests/guests/wat/, as WAT_<NAME>.
    let mut wats: Vec<PathBuf> = std::fs::read_dir(workspace.join("tests/guests/wat"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    wats.retain(|p| p.extension().is_some_and(|e| e == "wat"));
    wats.sort();
    for source in wats {
        let stem = source
            .file_stem()
            .ok_or("fixture without a name")?
            .to_string_lossy()
            .into_owned();
        let path = out_dir.join(format!("{stem}.wasm"));
        std::fs::write(&path, wat::parse_file(&source)?)?;
        emit(&format!("WAT_{}", stem.to_uppercase()), path)?;
    }
    std::fs::write(out_dir.join("guests.rs"), consts)?;
    Ok(())
}

fn cargo_build(
    manifest: &Path,
    selection: &[&str],
    target: &str,
    target_dir: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(manifest)
        .args(selection)
        .arg("--target")
        .arg(target)
        .arg("--target-dir")
        .arg(target_dir);
    // Settings of the outer build that must not leak into the guests'.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!(
            "building guests for {target} failed ({status}): see cargo's output above (a missing target is installed with `rustup target add {target}`)"
        )
        .into());
    }
    Ok(())
}
