//! What a mounted directory held: its in-toto `dirHash`.
//!
//! The digest is the one in-toto's DigestSet names `dirHash` (Go's
//! `golang.org/x/mod/sumdb/dirhash` Hash1, in hex): every regular file under
//! the directory, by its path relative to it, sorted bytewise; a listing of
//! `"<sha256 hex>  <path>\n"` lines; the SHA-256 of that listing. It is what
//!
//! ```text
//! find . -type f | cut -c3- | LC_ALL=C sort | xargs -r sha256sum | sha256sum
//! ```
//!
//! prints in the directory. A name with a backslash, newline or carriage
//! return (which Go's Hash1 refuses, and which a task with a writable mount
//! can make) is written as GNU `sha256sum` writes it: the line starts with
//! `\` and those characters are escaped (`\\`, `\n`, `\r`). Symbolic
//! links are not followed and, like other files that are not regular, not
//! listed; a file removed while the tree is read (another task sharing a
//! writable mount) is left out. Owns reading the tree; must never write to
//! it.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// A directory's `dirHash` and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirHash {
    /// Lowercase hex.
    pub hex: String,
    /// Regular files listed.
    pub files: u64,
    /// Their bytes in all.
    pub bytes: u64,
}

/// The `dirHash` of the tree under `root`.
///
/// # Errors
///
/// A file or folder that cannot be read.
pub fn dir_hash(root: &Path) -> io::Result<DirHash> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut listing = Sha256::new();
    let (mut count, mut bytes) = (0u64, 0u64);
    for (name, path) in &files {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let (digest, size) = Digest::of_reader(file)?;
        count += 1;
        bytes = bytes.saturating_add(size);
        let escaped = name.iter().any(|b| matches!(b, b'\\' | b'\n' | b'\r'));
        if escaped {
            listing.update(b"\\");
        }
        listing.update(digest.to_string().as_bytes());
        listing.update(b"  ");
        if escaped {
            for &b in name {
                match b {
                    b'\\' => listing.update(b"\\\\"),
                    b'\n' => listing.update(b"\\n"),
                    b'\r' => listing.update(b"\\r"),
                    _ => listing.update([b]),
                }
            }
        } else {
            listing.update(name);
        }
        listing.update(b"\n");
    }
    let mut hex = String::with_capacity(64);
    crate::digest::push_hex(&mut hex, &listing.finalize());
    Ok(DirHash {
        hex,
        files: count,
        bytes,
    })
}

/// Collect the regular files under `root` as (relative name bytes, path),
/// folder by folder (no recursion: a deep tree cannot exhaust the stack).
fn walk(root: &Path, out: &mut Vec<(Vec<u8>, PathBuf)>) -> io::Result<()> {
    let mut folders = vec![(Vec::new(), root.to_owned())];
    while let Some((prefix, dir)) = folders.pop() {
        let entries = match std::fs::read_dir(&dir) {
            // Removed since it was listed (not the root: that must be).
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir != root => continue,
            entries => entries?,
        };
        for entry in entries {
            let entry = entry?;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = name_bytes(&entry.file_name());
            let mut relative = prefix.clone();
            if !relative.is_empty() {
                relative.push(b'/');
            }
            relative.extend_from_slice(&name);
            if kind.is_dir() {
                folders.push((relative, entry.path()));
            } else if kind.is_file() {
                out.push((relative, entry.path()));
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    std::os::unix::ffi::OsStrExt::as_bytes(name).to_vec()
}

#[cfg(not(unix))]
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    name.to_string_lossy().into_owned().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_is_sorted_bytewise_over_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/b"), b"one").unwrap();
        std::fs::write(dir.path().join("a-b"), b"two").unwrap();
        std::fs::write(dir.path().join("Z"), b"").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("a-b", dir.path().join("link")).unwrap();
        let got = dir_hash(dir.path()).unwrap();
        let line = |content: &[u8], name: &str| format!("{}  {name}\n", Digest::of(content));
        let listing = format!(
            "{}{}{}",
            line(b"", "Z"),
            line(b"two", "a-b"),
            line(b"one", "a/b")
        );
        assert_eq!(got.hex, Digest::of(listing.as_bytes()).to_string());
        assert_eq!((got.files, got.bytes), (3, 6));
    }

    #[cfg(unix)]
    #[test]
    fn names_sha256sum_escapes_are_listed_as_it_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x\ny"), b"a").unwrap();
        std::fs::write(dir.path().join("back\\slash"), b"b").unwrap();
        std::fs::write(dir.path().join("plain"), b"c").unwrap();
        let got = dir_hash(dir.path()).unwrap();
        // What GNU coreutils' `sha256sum` prints for these names.
        let listing = format!(
            "\\{}  back\\\\slash\n{}  plain\n\\{}  x\\ny\n",
            Digest::of(b"b"),
            Digest::of(b"c"),
            Digest::of(b"a")
        );
        assert_eq!(got.hex, Digest::of(listing.as_bytes()).to_string());
        assert_eq!(got.files, 3);
    }

    #[test]
    fn an_empty_directory_has_the_digest_of_an_empty_listing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            dir_hash(dir.path()).unwrap().hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(dir_hash(&dir.path().join("missing")).is_err());
    }
}
