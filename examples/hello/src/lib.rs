//! Greets whoever the `name` input names (or the world), as a Cairn task.
//!
//! Run it with:
//! `cairn exec target/wasm32-wasip2/release/hello.wasm --input name=name.txt --output-dir out/`
#![forbid(unsafe_code)]

use cairn_guest::{Task, info, input, output};

struct Hello;

impl Task for Hello {
    fn run() -> cairn_guest::Result<()> {
        let who = input::string_or("name", "world")?;
        let who = who.trim();
        info!("greeting {who}");
        output::write("greeting", format!("Hello, {who}!\n"))?;
        Ok(())
    }
}

cairn_guest::export!(Hello);
