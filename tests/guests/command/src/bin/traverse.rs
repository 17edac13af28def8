//! Hostile: tries to escape its mounts by path. Prints one line per attempt:
//! `ESCAPED <path>` if it could read or write, `refused <path>` otherwise.
fn main() {
    let reads = [
        "/data/../outside.txt",
        "/data/../../outside.txt",
        "/data/..",
        "/data/../",
        "/data/./../outside.txt",
        "/data//..//outside.txt",
        "/outside.txt",
        "/etc/passwd",
        "/proc/self/environ",
        "/proc/self/status",
        "../outside.txt",
        "outside.txt",
        "/",
        "/inputs/../outside.txt",
    ];
    for path in reads {
        let read = std::fs::read(path).is_ok() || std::fs::read_dir(path).is_ok();
        println!("{} read {path}", if read { "ESCAPED" } else { "refused" });
    }
    for path in ["/data/../escaped.txt", "/escaped.txt", "/data/sub/../../escaped.txt"] {
        let wrote = std::fs::write(path, b"escaped").is_ok();
        println!("{} write {path}", if wrote { "ESCAPED" } else { "refused" });
    }
}
