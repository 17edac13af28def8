//! Hostile: opens files without ever closing them.
fn main() {
    let mut open = Vec::new();
    loop {
        match std::fs::File::open("/data/file.txt") {
            Ok(f) => open.push(f),
            Err(e) => {
                println!("open failed after {}: {e}", open.len());
                std::process::exit(7);
            }
        }
    }
}
