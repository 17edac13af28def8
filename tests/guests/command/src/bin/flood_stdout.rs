//! Hostile: floods stdout.
use std::io::Write;

fn main() {
    let line = [b'x'; 4096];
    let mut out = std::io::stdout().lock();
    loop {
        if out.write_all(&line).is_err() {
            // Ignore the error and keep going, as a careless C program would.
            continue;
        }
    }
}
