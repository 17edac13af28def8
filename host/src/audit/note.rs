//! Checkpoints as C2SP signed notes (`c2sp.org/signed-note`,
//! `c2sp.org/tlog-checkpoint`) with Ed25519, and the audit signing keys.
//!
//! A checkpoint's text is `origin\nsize\nbase64(root)\n`; the signed note
//! adds a blank line and one line per signature:
//! `— <key name> base64(key id (4 bytes) || signature (64 bytes))`. The key
//! id is the first 4 bytes of `SHA-256(name || "\n" || 0x01 || public key)`.
//! A checkpoint is signed under the log's origin as its key name, as
//! tlog-checkpoint asks; a note signed under any other name by the same key
//! (logs written before Cairn followed that, signed as `audit`) still
//! verifies, since a signature line is matched by its key id under its own
//! name. Keys are stored as PEM files in the forms
//! `openssl genpkey -algorithm ed25519` writes: the private key as PKCS#8
//! v1 (RFC 8410: the seed only), the public key as SPKI. Private keys in
//! PKCS#8 v2 (the public key embedded, as Cairn wrote them before) are
//! read too. The private key is never printed, logged or put in an error
//! message.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The Ed25519 signature type byte of signed-note keys.
const ED25519: u8 = 0x01;

/// Problems with keys and notes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is not an Ed25519 {kind} key in PEM form; make one with `cairn keygen`", path.display())]
    Format { path: PathBuf, kind: &'static str },
    #[error("`{}` already exists; keys are never overwritten (choose another --out or --name)", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A signing key with its signed-note name.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key", &"***")
            .finish()
    }
}

/// A public key with its signed-note name.
#[derive(Debug, Clone)]
pub struct Verifier {
    name: String,
    key: VerifyingKey,
}

/// The 4-byte key id of a signed-note Ed25519 key.
#[must_use]
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    id
}

/// The key name used for files without one: the file stem.
fn name_of(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "cairn".to_owned(), |s| s.to_string_lossy().into_owned())
}

impl Signer {
    /// A signer from a 32-byte seed (tests and known-answer vectors).
    #[must_use]
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Self {
        Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Load a PKCS#8 PEM private key; its name is the file stem.
    ///
    /// # Errors
    ///
    /// Unreadable files or anything but an Ed25519 private key.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::Format {
            path: path.to_owned(),
            kind: "private",
        })?;
        Ok(Self {
            name: name_of(path),
            key,
        })
    }

    /// The public half.
    #[must_use]
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// A raw Ed25519 signature of `message` (for DSSE envelopes).
    #[must_use]
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Sign `text` (which must end in a newline) as a signed note under
    /// the key's own name.
    #[must_use]
    pub fn sign_note(&self, text: &str) -> String {
        self.sign_note_as(&self.name, text)
    }

    /// Sign `text` as a signed note under the key name `name`: a
    /// checkpoint is signed under its log's origin.
    #[must_use]
    pub fn sign_note_as(&self, name: &str, text: &str) -> String {
        let signature: Signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&key_id(name, &self.key.verifying_key()));
        blob.extend_from_slice(&signature.to_bytes());
        format!("{text}\n\u{2014} {name} {}\n", B64.encode(blob))
    }

    /// Sign the checkpoint of a log: its text, signed under its origin.
    #[must_use]
    pub fn sign_checkpoint(&self, origin: &str, size: u64, root: &Hash) -> String {
        self.sign_note_as(origin, &checkpoint_text(origin, size, root))
    }
}

impl Verifier {
    /// Load an SPKI PEM public key; its name is the file stem.
    ///
    /// # Errors
    ///
    /// Unreadable files or anything but an Ed25519 public key.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let key = VerifyingKey::from_public_key_pem(&pem).map_err(|_| KeyError::Format {
            path: path.to_owned(),
            kind: "public",
        })?;
        Ok(Self {
            name: name_of(path),
            key,
        })
    }

    /// The key's name in signatures.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key in the signed-note text form
    /// `name+keyid(hex)+base64(0x01 || key)`, as other tools take it.
    #[must_use]
    pub fn note_key(&self) -> String {
        self.note_key_as(&self.name)
    }

    /// The verifier key under the key name `name`: for a log's
    /// checkpoints, its origin (what C2SP tools are given to check them).
    #[must_use]
    pub fn note_key_as(&self, name: &str) -> String {
        let id = key_id(name, &self.key);
        let mut blob = vec![ED25519];
        blob.extend_from_slice(self.key.as_bytes());
        format!(
            "{name}+{}+{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            B64.encode(blob)
        )
    }

    /// The public key as SPKI PEM.
    #[must_use]
    pub fn pem(&self) -> String {
        self.key
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap_or_default()
    }

    /// Verify a signature made by [`Signer::sign_note`]'s key over `message`
    /// (used for DSSE envelopes).
    #[must_use]
    pub fn verify_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &signature).is_ok()
    }

    /// Check a signed note: returns its text when a signature line by this
    /// key (under any name) verifies, or why not.
    ///
    /// # Errors
    ///
    /// A malformed note, no signature by this key, or a bad signature.
    pub fn open_note<'a>(&self, note: &'a str) -> Result<&'a str, String> {
        let Some(split) = note.rfind("\n\n") else {
            return Err("not a signed note (no blank line before the signatures)".into());
        };
        let (text, sigs) = note.split_at(split + 1);
        let sigs = sigs.get(1..).unwrap_or("");
        // The key is what is trusted, not the name a file gave it: a line
        // is this key's if its id is this key's id under the line's name.
        let mut others = Vec::new();
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(format!("malformed signature line `{line}`"));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(format!("malformed signature line `{line}`"));
            };
            let blob = B64
                .decode(blob)
                .map_err(|_| format!("signature of `{name}` is not base64"))?;
            let (Some(sig_id), Some(sig)) = (blob.get(..4), blob.get(4..)) else {
                return Err(format!("signature of `{name}` is too short"));
            };
            if sig_id != key_id(name, &self.key) {
                others.push(name.to_owned());
                continue;
            }
            return if self.verify_raw(text.as_bytes(), sig) {
                Ok(text)
            } else {
                Err(format!("the signature by `{name}` does not verify"))
            };
        }
        Err(if others.is_empty() {
            "no signatures".to_owned()
        } else {
            format!(
                "not signed by key `{}` ({}); signed by {}",
                self.name,
                self.note_key(),
                others.join(", ")
            )
        })
    }
}

/// A checkpoint body (`c2sp.org/tlog-checkpoint`).
#[must_use]
pub fn checkpoint_text(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", B64.encode(root))
}

/// Parse a checkpoint body: origin, size, root.
///
/// # Errors
///
/// Anything but three lines of origin, decimal size and base64 hash.
pub fn parse_checkpoint(text: &str) -> Result<(&str, u64, Hash), String> {
    let mut lines = text.lines();
    let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
        return Err("a checkpoint has an origin, a size and a root hash".into());
    };
    let size: u64 = size
        .parse()
        .map_err(|_| format!("checkpoint size `{size}` is not a number"))?;
    let root: Hash = B64
        .decode(root)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("checkpoint root `{root}` is not a base64 SHA-256"))?;
    Ok((origin, size, root))
}

/// Write a new key pair `DIR/NAME.key` (PKCS#8 v1 PEM, mode 0600) and
/// `DIR/NAME.pub` (SPKI PEM); never overwrites.
///
/// # Errors
///
/// Existing files, unwritable folders, no randomness.
pub fn keygen(dir: &Path, name: &str) -> Result<Verifier, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    // PKCS#8 v1, the seed alone (RFC 8410), as OpenSSL and Python's
    // `cryptography` read it; `SigningKey`'s own encoding is v2.
    let v1 = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: seed,
        public_key: None,
    };
    seed.fill(0);
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    for path in [&private, &public] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let pem = v1
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| KeyError::Random(e.to_string()))?;
    drop(v1);
    write_new(&private, pem.as_bytes(), 0o600)?;
    let verifier = Verifier {
        name: name.to_owned(),
        key: key.verifying_key(),
    };
    write_new(&public, verifier.pem().as_bytes(), 0o644)?;
    Ok(verifier)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let error = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_owned(),
            }
        } else {
            error(e)
        }
    })?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signed-note spec's example key (Go's `golang.org/x/mod/sumdb/note`).
    const SEED_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIGNED_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn peter() -> Signer {
        let raw = B64.decode(SEED_B64).unwrap();
        assert_eq!(raw[0], ED25519);
        let seed: [u8; 32] = raw[1..].try_into().unwrap();
        Signer::from_seed("PeterNeumann", &seed)
    }

    #[test]
    fn known_answer_of_the_signed_note_spec() {
        let signer = peter();
        assert_eq!(
            signer.verifier().note_key(),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
        let note = signer.sign_note(TEXT);
        assert_eq!(note, format!("{TEXT}\n{SIGNED_LINE}"));
        assert_eq!(signer.verifier().open_note(&note), Ok(TEXT));
    }

    #[test]
    fn a_changed_note_or_another_key_is_refused() {
        let signer = peter();
        let note = signer.sign_note(TEXT);
        let changed = note.replacen("cryptography", "cryptographY", 1);
        assert!(
            signer
                .verifier()
                .open_note(&changed)
                .unwrap_err()
                .contains("does not verify")
        );
        let other = Signer::from_seed("PeterNeumann", &[7; 32]);
        assert!(
            other
                .verifier()
                .open_note(&note)
                .unwrap_err()
                .contains("not signed by key")
        );
    }

    #[test]
    fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let verifier = keygen(dir.path(), "audit").unwrap();
        let signer = Signer::load(&dir.path().join("audit.key")).unwrap();
        let loaded = Verifier::load(&dir.path().join("audit.pub")).unwrap();
        assert_eq!(loaded.note_key(), verifier.note_key());
        let note = signer.sign_note("x\n");
        assert_eq!(loaded.open_note(&note), Ok("x\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("audit.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let before = std::fs::read(dir.path().join("audit.key")).unwrap();
        assert!(matches!(
            keygen(dir.path(), "audit"),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(std::fs::read(dir.path().join("audit.key")).unwrap(), before);
        assert!(!format!("{signer:?}").contains("PRIVATE"));
    }

    #[test]
    fn keygen_writes_pkcs8_v1_and_a_v2_key_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let verifier = keygen(dir.path(), "audit").unwrap();
        let pem = std::fs::read_to_string(dir.path().join("audit.key")).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = B64.decode(body).unwrap();
        // RFC 8410 section 7: version 0 (v1), id-Ed25519, the seed alone.
        assert_eq!(der.len(), 48);
        assert_eq!(
            der[..16],
            [
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20
            ]
        );
        let seed: [u8; 32] = der[16..].try_into().unwrap();
        let signer = Signer::from_seed("audit", &seed);
        assert_eq!(signer.verifier().note_key(), verifier.note_key());

        // What Cairn wrote before: v2, the public key embedded.
        let v2 = signer
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        let old = dir.path().join("old.key");
        std::fs::write(&old, v2.as_bytes()).unwrap();
        let loaded = Signer::load(&old).unwrap();
        assert_eq!(loaded.key.to_bytes(), seed);
    }

    #[test]
    fn a_checkpoint_is_signed_under_its_origin_and_old_names_still_verify() {
        let signer = Signer::from_seed("audit", &[9; 32]);
        let origin = "cairn.local/audit/0123";
        let note = signer.sign_checkpoint(origin, 3, &[1; 32]);
        let text = checkpoint_text(origin, 3, &[1; 32]);
        let line = note.strip_prefix(&format!("{text}\n")).unwrap();
        assert!(line.starts_with(&format!("\u{2014} {origin} ")), "{line}");
        let blob = B64
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        assert_eq!(blob[..4], key_id(origin, &signer.key.verifying_key()));
        // The key file's name does not matter to verification; nor does
        // the name older logs signed under.
        let verifier = signer.verifier();
        assert_eq!(verifier.open_note(&note), Ok(text.as_str()));
        assert_eq!(
            verifier.open_note(&signer.sign_note(&text)),
            Ok(text.as_str())
        );
        assert!(
            verifier
                .note_key_as(origin)
                .starts_with(&format!("{origin}+"))
        );
    }
}
