//! Hostile: opens a network connection, so it imports `wasi:sockets`, which
//! Cairn does not provide.
fn main() {
    match std::net::TcpStream::connect("127.0.0.1:9") {
        Ok(_) => println!("ESCAPED connected"),
        Err(e) => println!("refused connect: {e}"),
    }
}
