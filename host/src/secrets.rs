//! Secrets: where their values come from, and keeping them out of output.
//!
//! A secret is declared by name and bound to a source (`env:VAR` or
//! `file:PATH`) on the host. Its value reaches a guest only through the host
//! interface's `secret` call, never through env or files, and is masked in
//! everything Cairn prints or stores of the task's output. This module must
//! never log, format or persist a value: [`SecretValue`]'s `Debug` is redacted.

use std::path::PathBuf;
use std::str::FromStr;

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The named environment variable of the `cairn` process.
    Env(String),
    /// The whole content of a file (one trailing newline is dropped).
    File(PathBuf),
}

/// Why a secret could not be resolved. Never contains the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("`{0}` is not a secret source: write `env:VARIABLE` or `file:PATH`")]
    BadSource(String),
    #[error("environment variable `{0}` is not set: export it before running cairn")]
    EnvMissing(String),
    #[error("environment variable `{0}` is not valid UTF-8")]
    EnvNotUtf8(String),
    #[error("cannot read secret file `{}`: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file `{}` is not valid UTF-8", .0.display())]
    FileNotUtf8(PathBuf),
}

impl FromStr for SecretSource {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("env", var)) if !var.is_empty() => Ok(Self::Env(var.to_owned())),
            Some(("file", path)) if !path.is_empty() => Ok(Self::File(PathBuf::from(path))),
            _ => Err(SecretError::BadSource(s.to_owned())),
        }
    }
}

impl SecretSource {
    /// Read the value now.
    ///
    /// # Errors
    ///
    /// When the variable is unset or the file unreadable; the error says which.
    pub fn resolve(&self) -> Result<SecretValue, SecretError> {
        match self {
            Self::Env(var) => match std::env::var(var) {
                Ok(value) => Ok(SecretValue(value)),
                Err(std::env::VarError::NotPresent) => Err(SecretError::EnvMissing(var.clone())),
                Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::EnvNotUtf8(var.clone())),
            },
            Self::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                let mut value =
                    String::from_utf8(bytes).map_err(|_| SecretError::FileNotUtf8(path.clone()))?;
                if value.ends_with('\n') {
                    value.pop();
                    if value.ends_with('\r') {
                        value.pop();
                    }
                }
                Ok(SecretValue(value))
            }
        }
    }
}

/// A secret's value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wrap a value obtained elsewhere (tests, future providers).
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value itself: only for handing to a guest that may read it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// The mask that replaces a secret in captured output.
pub const MASK: &[u8] = b"***";

/// Masks known secret values, and their common encodings, in bytes.
#[derive(Default)]
pub struct Redactor {
    needles: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} patterns)", self.needles.len())
    }
}

impl Redactor {
    /// A redactor for these values: each as is, in standard and URL-safe
    /// base64 (also inside a longer encoded text, such as HTTP Basic
    /// credentials `user:secret`, at any of the three byte alignments), and
    /// in lowercase and uppercase hex.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a SecretValue>) -> Self {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for value in values {
            let raw = value.0.as_bytes();
            if raw.is_empty() {
                continue;
            }
            needles.push(raw.to_vec());
            let std = base64(raw, STANDARD);
            needles.push(std.trim_end_matches('=').as_bytes().to_vec());
            needles.push(std.into_bytes());
            needles.push(
                base64(raw, URL_SAFE)
                    .trim_end_matches('=')
                    .as_bytes()
                    .to_vec(),
            );
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            needles.push(hex.to_ascii_uppercase().into_bytes());
            needles.push(hex.into_bytes());
            for alphabet in [STANDARD, URL_SAFE] {
                needles.extend(base64_cores(raw, alphabet));
            }
        }
        // Longest first, so a value is masked whole before any shorter one
        // that it contains.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Self { needles }
    }

    /// `bytes` with every known value masked.
    #[must_use]
    pub fn mask(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for needle in &self.needles {
            out = replace_all(&out, needle, MASK);
        }
        out
    }

    /// `text` with every known value masked.
    #[must_use]
    pub fn mask_str(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.mask(text.as_bytes())).into_owned()
    }
}

/// Whether `needle` (non-empty) occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// `haystack` with every occurrence of `needle` replaced by `with`.
pub(crate) fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while !rest.is_empty() {
        if rest.starts_with(needle) {
            out.extend_from_slice(with);
            rest = rest.get(needle.len()..).unwrap_or_default();
        } else if let Some((&first, tail)) = rest.split_first() {
            out.push(first);
            rest = tail;
        }
    }
    out
}

/// The part of `raw`'s base64 that is the same wherever `raw` sits in a
/// longer text, for each of the 3 alignments: the characters of the groups
/// of 3 bytes that hold only bytes of `raw`. Only cores of at least 8
/// characters, so short values do not mask unrelated text.
fn base64_cores(raw: &[u8], alphabet: &[u8; 64]) -> Vec<Vec<u8>> {
    let mut cores = Vec::new();
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(raw);
        let encoded = base64(&padded, alphabet);
        // The first group holds padding bytes unless offset is 0; the last
        // one, if partial, depends on what follows.
        let start = if offset == 0 { 0 } else { 4 };
        let end = 4 * (padded.len() / 3);
        if let Some(core) = encoded.get(start..end)
            && core.len() >= 8
        {
            cores.push(core.as_bytes().to_vec());
        }
    }
    cores
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let index = usize::try_from((n >> shift) & 63).unwrap_or(0);
                out.push(char::from(alphabet.get(index).copied().unwrap_or(b'=')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes(), STANDARD), encoded);
        }
    }

    #[test]
    fn masks_value_and_encodings() {
        let secret = SecretValue::new("hunter2!".into());
        let redactor = Redactor::new([&secret]);
        let text = "a hunter2! b aHVudGVyMiE= c 68756e7465723221 d aHVudGVyMiE";
        let masked = redactor.mask_str(text);
        assert!(!masked.contains("hunter2!"), "{masked}");
        assert!(!masked.contains("aHVudGVyMiE"), "{masked}");
        assert!(masked.starts_with("a *** b *** c "), "{masked}");
    }

    #[test]
    fn masks_padded_base64_whole() {
        let secret = SecretValue::new("tok-3f9a-very-secret".into());
        let redactor = Redactor::new([&secret]);
        assert_eq!(
            base64(b"tok-3f9a-very-secret", STANDARD),
            "dG9rLTNmOWEtdmVyeS1zZWNyZXQ="
        );
        assert_eq!(
            redactor.mask_str("x dG9rLTNmOWEtdmVyeS1zZWNyZXQ= y"),
            "x *** y"
        );
    }

    #[test]
    fn masks_base64_inside_longer_encodings() {
        let secret = SecretValue::new("tok-3f9a-very-secret".into());
        let redactor = Redactor::new([&secret]);
        for prefix in ["", "u:", "ci:", "user:"] {
            let basic = base64(
                format!("{prefix}tok-3f9a-very-secret!").as_bytes(),
                STANDARD,
            );
            let masked = redactor.mask_str(&format!("Authorization: Basic {basic}"));
            assert!(masked.contains("***"), "{prefix}: {masked}");
            // At most a few characters at each edge survive.
            assert!(
                masked.len() < "Authorization: Basic ".len() + 16,
                "{masked}"
            );
        }
        let upper = redactor.mask_str("746F6B2D336639612D766572792D736563726574");
        assert_eq!(upper, "***");
    }

    #[test]
    fn replaces_every_occurrence() {
        assert_eq!(replace_all(b"a PH b PH", b"PH", b"xyz"), b"a xyz b xyz");
        assert!(contains(b"Bearer PH", b"PH"));
        assert!(!contains(b"Bearer", b""));
    }

    #[test]
    fn debug_never_shows_value() {
        let secret = SecretValue::new("s3cr3t".into());
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }

    #[test]
    fn parses_sources() {
        assert_eq!(
            "env:TOKEN".parse::<SecretSource>().ok(),
            Some(SecretSource::Env("TOKEN".into()))
        );
        assert!("vault:x".parse::<SecretSource>().is_err());
        assert!("env:".parse::<SecretSource>().is_err());
    }
}
