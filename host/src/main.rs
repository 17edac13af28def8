//! The `cairn` binary: all of it lives in [`cairn::cli`].

fn main() -> std::process::ExitCode {
    cairn::cli::main()
}
