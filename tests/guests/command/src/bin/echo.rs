//! Well-behaved: copies each file under /inputs to /outputs (upper-cased),
//! prints its args and env, and reads stdin.
use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("args={args:?}");
    let env: Vec<(String, String)> = std::env::vars().collect();
    println!("env={env:?}");
    let mut stdin = String::new();
    let _ = std::io::stdin().read_to_string(&mut stdin);
    println!("stdin={stdin:?}");
    if let Ok(entries) = std::fs::read_dir("/inputs") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            std::fs::write(format!("/outputs/{name}"), text.to_uppercase()).expect("write output");
            println!("copied {name}");
        }
    }
    eprintln!("echo done");
}
