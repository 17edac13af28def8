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
//! prints in the directory, for names without a backslash (which
//! `sha256sum` escapes). Symbolic links are not followed and, like other
//! files that are not regular, not listed. Owns reading the tree; must
//! never write to it.

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
/// A file or folder that cannot be read, or a name with a newline (which
/// the listing cannot hold).
pub fn dir_hash(root: &Path) -> io::Result<DirHash> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut listing = Sha256::new();
    let mut bytes = 0u64;
    for (name, path) in &files {
        let (digest, size) = Digest::of_reader(std::fs::File::open(path)?)?;
        bytes = bytes.saturating_add(size);
        listing.update(digest.to_string().as_bytes());
        listing.update(b"  ");
        listing.update(name);
        listing.update(b"\n");
    }
    let mut hex = String::with_capacity(64);
    crate::digest::push_hex(&mut hex, &listing.finalize());
    Ok(DirHash {
        hex,
        files: files.len() as u64,
        bytes,
    })
}

/// Collect the regular files under `root` as (relative name bytes, path),
/// folder by folder (no recursion: a deep tree cannot exhaust the stack).
fn walk(root: &Path, out: &mut Vec<(Vec<u8>, PathBuf)>) -> io::Result<()> {
    let mut folders = vec![(Vec::new(), root.to_owned())];
    while let Some((prefix, dir)) = folders.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let name = name_bytes(&entry.file_name());
            if name.contains(&b'\n') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "`{}` has a newline in its name, which a digest listing cannot hold",
                        entry.path().display()
                    ),
                ));
            }
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
