//! Hostile: plants symlinks inside its read-write mount that point outside
//! it, then follows them. Prints `ESCAPED` or `refused` per attempt.
fn main() {
    let links = [
        ("/data/abs-link", "/outside.txt", "/data/abs-link"),
        ("/data/rel-link", "../outside.txt", "/data/rel-link"),
        ("/data/dir-link", "..", "/data/dir-link/outside.txt"),
    ];
    for (link, target, probe) in links {
        if !symlink(target, link) {
            println!("refused symlink {link} -> {target}");
            continue;
        }
        println!("made symlink {link} -> {target}");
        let read = std::fs::read(probe).is_ok();
        println!("{} read {probe}", if read { "ESCAPED" } else { "refused" });
        let wrote = std::fs::OpenOptions::new().write(true).open(probe).is_ok();
        println!("{} write {probe}", if wrote { "ESCAPED" } else { "refused" });
    }
    // A symlink left in /outputs must never be followed by the host.
    let _ = symlink("../outside.txt", "/outputs/leak");
}

/// wasi-libc's `symlink(2)`: `std::os::wasi::fs::symlink_path` is unstable.
fn symlink(target: &str, link: &str) -> bool {
    use std::ffi::{CString, c_char, c_int};
    unsafe extern "C" {
        fn symlink(target: *const c_char, link: *const c_char) -> c_int;
    }
    let (Ok(target), Ok(link)) = (CString::new(target), CString::new(link)) else { return false };
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    unsafe { symlink(target.as_ptr(), link.as_ptr()) == 0 }
}
