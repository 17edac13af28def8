//! Hostile: tries every way to modify a read-only mount. Prints `ESCAPED` or
//! `refused` per attempt.
use std::fs::OpenOptions;

fn report(what: &str, ok: bool) {
    println!("{} {what}", if ok { "ESCAPED" } else { "refused" });
}

fn main() {
    report("create /ro/new.txt", std::fs::write("/ro/new.txt", b"new").is_ok());
    report("write /ro/keep.txt", OpenOptions::new().write(true).open("/ro/keep.txt").is_ok());
    report("append /ro/keep.txt", OpenOptions::new().append(true).open("/ro/keep.txt").is_ok());
    report("truncate /ro/keep.txt", OpenOptions::new().write(true).truncate(true).open("/ro/keep.txt").is_ok());
    report("set_len /ro/keep.txt", std::fs::File::open("/ro/keep.txt").and_then(|f| f.set_len(0)).is_ok());
    report("rename /ro/keep.txt", std::fs::rename("/ro/keep.txt", "/ro/moved.txt").is_ok());
    report("rename into /ro", std::fs::write("/rw/x.txt", b"x").is_ok() && std::fs::rename("/rw/x.txt", "/ro/x.txt").is_ok());
    report("hard link into /ro", std::fs::hard_link("/rw/x.txt", "/ro/link.txt").is_ok());
    report("hard link out of /ro", std::fs::hard_link("/ro/keep.txt", "/rw/stolen.txt").is_ok() && std::fs::write("/rw/stolen.txt", b"changed").is_ok());
    report("remove /ro/keep.txt", std::fs::remove_file("/ro/keep.txt").is_ok());
    report("mkdir /ro/dir", std::fs::create_dir("/ro/dir").is_ok());
    report("symlink in /ro", symlink("keep.txt", "/ro/sym"));
    let kept = std::fs::read_to_string("/ro/keep.txt").unwrap_or_default();
    println!("keep.txt={kept:?}");
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
