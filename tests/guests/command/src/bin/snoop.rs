//! Hostile: looks for anything ambient — env, args, cwd, preopens, clocks.
fn main() {
    println!("args={:?}", std::env::args().collect::<Vec<_>>());
    println!("env={:?}", std::env::vars().collect::<Vec<_>>());
    println!("cwd={:?}", std::env::current_dir().map(|p| p.display().to_string()).ok());
    for probe in ["/", ".", "/tmp", "/home", "/root", "/proc", "/dev", "/sys"] {
        println!("{} list {probe}", if std::fs::read_dir(probe).is_ok() { "ESCAPED" } else { "refused" });
    }
}
