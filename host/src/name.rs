//! Names of inputs, outputs and secrets: the one rule for what a name may be.
//!
//! A name is 1–64 ASCII characters: a letter first, then letters, digits, `-`
//! or `_`. Names end up in file names, policy entity IDs and audit records, so
//! nothing else is allowed (no dots, no slashes, no spaces).

use core::fmt;

/// The longest name allowed, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A validated name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a valid name: use 1-64 ASCII letters, digits, `-` or `_`, starting with a letter"
)]
pub struct InvalidName(pub String);

impl Name {
    /// Validate `s` as a name.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when `s` breaks the rule in the module documentation.
    pub fn new(s: &str) -> Result<Self, InvalidName> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if first_ok && rest_ok && s.len() <= MAX_NAME_LEN {
            Ok(Self(s.to_owned()))
        } else {
            // Keep hostile input short in messages.
            Err(InvalidName(s.chars().take(MAX_NAME_LEN + 1).collect()))
        }
    }

    /// The name of element `key` of a fan-out of `base`: `base[key]`
    /// (`key` is a [`is_key`] key or an index).
    #[must_use]
    pub fn fanned(base: &Self, key: &str) -> Self {
        Self(format!("{}[{key}]", base.0))
    }

    /// `s` as a name, or as a fanned-out one (`base[key]`, see
    /// [`Name::fanned`]): what a guest may ask for as an input's name.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when it is neither.
    pub fn new_fanned(s: &str) -> Result<Self, InvalidName> {
        if let Some((base, rest)) = s.split_once('[')
            && let Some(key) = rest.strip_suffix(']')
            && is_key(key)
        {
            let base = Self::new(base)?;
            return Ok(Self::fanned(&base, key));
        }
        Self::new(s)
    }

    /// `unnamed`: stands in for a missing or invalid name so that checking
    /// can go on (the problem itself is reported separately).
    #[must_use]
    pub fn stand_in() -> Self {
        Self("unnamed".to_owned())
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest key of a fanned-out task, in bytes.
pub const MAX_KEY_LEN: usize = 64;

/// Whether `key` can name an element of a fan-out (`fetch[eu-west]`):
/// 1–64 ASCII letters, digits, `-`, `_` or `.`.
#[must_use]
pub fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl core::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["a", "orders", "warehouse-token", "X_1", &"a".repeat(64)] {
            assert!(Name::new(ok).is_ok(), "{ok:?} rejected");
        }
        for bad in [
            "",
            "1a",
            "-a",
            "a.b",
            "a/b",
            "../x",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(Name::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
