//! What a WASI program expects of its host, checked step by step: a
//! directory preopened at `/` beside `/inputs` and `/outputs`, relative
//! paths, directories, seeking, symlinks (inside the mount only), args,
//! env and the exit status. Prints one line per step, the same as
//! tests/guests/c/wasi_conformance.c prints, then exits with `argv[1]`.
//!
//! Expects the root mount to hold `hello.txt` ("hello world\n"),
//! `sub/a.txt`, a symlink `link.txt -> hello.txt` and a symlink
//! `escape -> ../..` (out of the mount), an input `data` and an output
//! directory.
use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

/// wasi-libc's `symlink` (std's `symlink_path` is unstable); Rust's WASI
/// targets link wasi-libc, so the symbol is there.
fn symlink(target: &str, path: &str) -> Result<(), ()> {
    unsafe extern "C" {
        fn symlink(target: *const std::ffi::c_char, path: *const std::ffi::c_char) -> i32;
    }
    let (target, path) = (
        std::ffi::CString::new(target).map_err(drop)?,
        std::ffi::CString::new(path).map_err(drop)?,
    );
    // SAFETY: two valid NUL-terminated strings, as `symlink(2)` expects.
    let r = unsafe { symlink(target.as_ptr(), path.as_ptr()) };
    if r == 0 { Ok(()) } else { Err(()) }
}

fn ok<T, E>(r: Result<T, E>) -> &'static str {
    if r.is_ok() { "ok" } else { "err" }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args {}", args.join(" "));
    println!("env FOO={}", std::env::var("FOO").unwrap_or_default());

    let text = fs::read_to_string("/hello.txt").unwrap_or_default();
    println!("read /hello.txt {} {:?}", text.len(), text);
    let relative = fs::read_to_string("hello.txt").unwrap_or_default();
    println!("read hello.txt {:?}", relative);
    println!("read sub/../hello.txt {}", ok(fs::read("sub/../hello.txt")));

    let mut f = fs::File::open("/hello.txt").expect("open");
    let pos = f.seek(SeekFrom::Start(6)).unwrap_or(u64::MAX);
    let mut word = [0u8; 5];
    let got = f.read_exact(&mut word).is_ok();
    println!("seek 6 -> {pos} read {:?} {}", String::from_utf8_lossy(&word), got);
    println!("seek end-1 -> {}", f.seek(SeekFrom::End(-1)).unwrap_or(u64::MAX));
    println!("seek cur-5 -> {}", f.seek(SeekFrom::Current(-5)).unwrap_or(u64::MAX));

    let mut names: Vec<String> = fs::read_dir("/")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    println!("ls / {}", names.join(" "));
    let mut sub: Vec<String> = fs::read_dir("/sub")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    sub.sort();
    println!("ls /sub {}", sub.join(" "));

    println!("mkdir /made {}", ok(fs::create_dir("/made")));
    println!("write /made/f.txt {}", ok(fs::write("/made/f.txt", "abc")));
    println!("size /made/f.txt {}", fs::metadata("/made/f.txt").map(|m| m.len()).unwrap_or(0));
    let append = fs::OpenOptions::new().append(true).open("/made/f.txt").and_then(|mut f| f.write_all(b"def"));
    println!("append {} -> {:?}", ok(append), fs::read_to_string("/made/f.txt").unwrap_or_default());
    println!("rename {}", ok(fs::rename("/made/f.txt", "/made/g.txt")));
    println!("exists f {} g {}", fs::metadata("/made/f.txt").is_ok(), fs::metadata("/made/g.txt").is_ok());
    println!("remove {}", ok(fs::remove_file("/made/g.txt")));
    println!("rmdir {}", ok(fs::remove_dir("/made")));

    println!("readlink /link.txt {:?}", fs::read_link("/link.txt").map(|p| p.display().to_string()).unwrap_or_default());
    println!("read /link.txt {:?}", fs::read_to_string("/link.txt").unwrap_or_default());
    println!("is_symlink {}", fs::symlink_metadata("/link.txt").map(|m| m.file_type().is_symlink()).unwrap_or(false));
    println!("symlink /made-link {}", ok(symlink("hello.txt", "/made-link")));
    println!("read /made-link {:?}", fs::read_to_string("/made-link").unwrap_or_default());
    println!("remove /made-link {}", ok(fs::remove_file("/made-link")));
    println!("read /escape/etc/passwd {}", ok(fs::read("/escape/etc/passwd")));
    println!("read /../hello.txt {}", ok(fs::read("/../hello.txt")));

    println!("read /inputs/data {:?}", fs::read_to_string("/inputs/data").unwrap_or_default());
    println!("write /inputs/x {}", ok(fs::write("/inputs/x", "no")));
    println!("write /outputs/result {}", ok(fs::write("/outputs/result", "done\n")));

    let code: i32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
    println!("exit {code}");
    std::process::exit(code);
}
