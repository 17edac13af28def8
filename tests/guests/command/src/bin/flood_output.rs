//! Hostile: writes an output file without end.
use std::io::Write;

fn main() {
    let mut file = std::fs::File::create("/outputs/huge").expect("create");
    let block = [b'y'; 64 * 1024];
    loop {
        let _ = file.write_all(&block);
    }
}
