//! Hostile: executes a wasm `unreachable` directly (no panic machinery).
fn main() {
    #[cfg(target_family = "wasm")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_family = "wasm"))]
    std::process::abort();
}
