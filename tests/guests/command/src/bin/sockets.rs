//! Hostile: tries every way out through `wasi:sockets`, which Cairn links
//! so that runtimes importing it load, but which must refuse everything.
//! Prints one line per attempt; `ESCAPED` means the sandbox leaked.
//! `argv[1]` is a host address to connect to (the test listens there).
use std::io::Write as _;
use std::net::{TcpListener, TcpStream, ToSocketAddrs as _, UdpSocket};

fn main() {
    let target = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9".to_owned());
    match TcpStream::connect(&target) {
        Ok(mut s) => {
            let _ = s.write_all(b"ESCAPED");
            println!("ESCAPED tcp connect");
        }
        Err(e) => println!("refused tcp connect: {e}"),
    }
    match TcpListener::bind("0.0.0.0:0") {
        Ok(_) => println!("ESCAPED tcp listen"),
        Err(e) => println!("refused tcp listen: {e}"),
    }
    match UdpSocket::bind("0.0.0.0:0") {
        Ok(s) => match s.send_to(b"ESCAPED", &target) {
            Ok(_) => println!("ESCAPED udp send"),
            Err(e) => println!("refused udp send: {e}"),
        },
        Err(e) => println!("refused udp bind: {e}"),
    }
    match ("localhost", 80).to_socket_addrs() {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => println!("ESCAPED lookup {a}"),
            None => println!("refused lookup: no addresses"),
        },
        Err(e) => println!("refused lookup: {e}"),
    }
}
