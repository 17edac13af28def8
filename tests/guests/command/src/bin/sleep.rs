//! Hostile: blocks in a host call (a clock wait) far longer than allowed.
fn main() {
    std::thread::sleep(std::time::Duration::from_secs(3600));
}
