//! Greets whoever the `name` input names — or, without one, the file
//! `/data/name.txt` if a folder is mounted there — or the world, as a
//! Cairn task.
//!
//! Run it with:
//! `cairn exec target/wasm32-wasip2/release/hello.wasm --input name=name.txt --output-dir out/`
//! or as the hello workflow: `cairn run examples/hello --build --as demo`.
#![forbid(unsafe_code)]

use cairn_guest::{Task, info, input, output};

struct Hello;

impl Task for Hello {
    fn run() -> cairn_guest::Result<()> {
        let from_file = std::fs::read_to_string("/data/name.txt");
        let who = input::string_or("name", from_file.as_deref().unwrap_or("world"))?;
        let who = who.trim();
        info!("greeting {who}");
        output::write("greeting", format!("Hello, {who}!\n"))?;
        Ok(())
    }
}

cairn_guest::export!(Hello);
