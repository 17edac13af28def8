//! SHA-256 digests: how Cairn names components, artifacts and configurations.
//!
//! Owns the one textual form of a digest (64 lowercase hex digits, optionally
//! written `sha256:…` by users). Must not do I/O beyond hashing what it is given.

use core::fmt;
use core::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest of several byte strings, each prefixed by its length so that
    /// different splits of the same bytes never collide.
    #[must_use]
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Self(hasher.finalize().into())
    }

    /// The digest of everything `reader` yields, and how many bytes that was.
    ///
    /// # Errors
    ///
    /// When reading fails.
    pub fn of_reader(mut reader: impl std::io::Read) -> std::io::Result<(Self, u64)> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total: u64 = 0;
        loop {
            let n = reader.read(&mut buf)?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            hasher.update(chunk);
            total += n as u64;
        }
        Ok((Self(hasher.finalize().into()), total))
    }

    /// The raw 32 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 12 hex digits, for display in tables.
    #[must_use]
    pub fn short(&self) -> String {
        let mut hex = self.to_string();
        hex.truncate(12);
        hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(64);
        push_hex(&mut text, &self.0);
        f.write_str(&text)
    }
}

/// Append `bytes` to `out` as lowercase hex (the formatter's `{:02x}`
/// costs more than the hashing it shows).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    for &b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0x0f));
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a sha256 digest: expected 64 hex digits, optionally prefixed by `sha256:`")]
pub struct ParseDigestError(String);

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        let err = || ParseDigestError(s.to_owned());
        if hex.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let text = core::str::from_utf8(pair).map_err(|_| err())?;
            *byte = u8::from_str_radix(text, 16).map_err(|_| err())?;
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(format!("sha256:{d}").parse::<Digest>(), Ok(d));
        assert_eq!(d.to_string().to_uppercase().parse::<Digest>(), Ok(d));
    }

    #[test]
    fn reader_digest_matches_in_memory_digest() -> std::io::Result<()> {
        let data = vec![7u8; 200_000];
        assert_eq!(Digest::of_reader(&data[..])?, (Digest::of(&data), 200_000));
        Ok(())
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "abc", &"g".repeat(64), &"é".repeat(32), &"0".repeat(65)] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parts_are_length_prefixed() {
        let a = Digest::of_parts([b"ab".as_slice(), b"c"]);
        let b = Digest::of_parts([b"a".as_slice(), b"bc"]);
        assert_ne!(a, b);
    }
}
