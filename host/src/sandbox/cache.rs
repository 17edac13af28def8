//! The on-disk cache of compiled code, so no component is compiled twice.
//!
//! An entry's key is the sha256 of the exact wasm bytes that were compiled,
//! the engine's compatibility hash (wasmtime version, target, settings and
//! features), Cairn's version and the kind of program. An entry is the
//! serialized code followed by the sha256 of that code: a torn or corrupted
//! entry is detected, removed and recompiled, never loaded. Entries are
//! written to a temporary file and renamed into place, so readers never see a
//! partial entry. The directory is created private (0700): whoever can write
//! to it can make the host run native code, which is why loading is `unsafe`.

use std::fs;
use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::Engine;

use crate::digest::Digest;

/// A directory of compiled code for one engine configuration.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: Digest,
}

/// Feeds `Hash` output into SHA-256, for a stable engine fingerprint.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// Use (and create if needed) `dir` as the cache for `engine`.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        let mut hasher = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        hasher.write(env!("CARGO_PKG_VERSION").as_bytes());
        let engine_key = Digest::of(&hasher.0.finalize());
        Ok(Self {
            dir: dir.to_owned(),
            engine_key,
        })
    }

    /// Where the cache lives.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, wasm: &Digest, kind: &str) -> PathBuf {
        let key = Digest::of_parts([
            wasm.as_bytes().as_slice(),
            self.engine_key.as_bytes(),
            kind.as_bytes(),
        ]);
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The cached code for `wasm` compiled as `kind`, if present and intact.
    pub(crate) fn get(&self, wasm: &Digest, kind: &str) -> Option<Vec<u8>> {
        let path = self.path(wasm, kind);
        let mut bytes = fs::read(&path).ok()?;
        let split = bytes.len().checked_sub(32)?;
        let trailer = bytes.split_off(split);
        if Digest::of(&bytes).as_bytes().as_slice() == trailer.as_slice() {
            Some(bytes)
        } else {
            tracing::warn!(path = %path.display(), "discarding corrupt compile-cache entry");
            let _ = fs::remove_file(&path);
            None
        }
    }

    /// Whether there is an entry for `wasm` compiled as `kind` (not checked
    /// for integrity: [`CompileCache::get`] does that).
    pub(crate) fn has(&self, wasm: &Digest, kind: &str) -> bool {
        self.path(wasm, kind).is_file()
    }

    /// Remove the entry for `wasm` (e.g. wasmtime refused it).
    pub(crate) fn evict(&self, wasm: &Digest, kind: &str) {
        let _ = fs::remove_file(self.path(wasm, kind));
    }

    /// Store compiled `code` for `wasm`. Failure only costs a recompile later,
    /// so callers may log and go on.
    pub(crate) fn put(&self, wasm: &Digest, kind: &str, code: &[u8]) -> std::io::Result<()> {
        let path = self.path(wasm, kind);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(code)?;
        tmp.write_all(Digest::of(code).as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_corruption() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let engine = Engine::default();
        let cache = CompileCache::open(dir.path(), &engine)?;
        let wasm = Digest::of(b"module");
        assert_eq!(cache.get(&wasm, "component"), None);
        cache.put(&wasm, "component", b"compiled")?;
        assert_eq!(
            cache.get(&wasm, "component").as_deref(),
            Some(&b"compiled"[..])
        );
        assert_eq!(cache.get(&wasm, "module"), None, "kind is part of the key");

        let entry = cache.path(&wasm, "component");
        let mut bytes = fs::read(&entry)?;
        if let Some(first) = bytes.first_mut() {
            *first ^= 1;
        }
        fs::write(&entry, bytes)?;
        assert_eq!(cache.get(&wasm, "component"), None);
        assert!(!entry.exists(), "corrupt entry removed");
        Ok(())
    }
}
