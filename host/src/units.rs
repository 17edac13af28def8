//! Durations (`30s`, `1m30s`, `250ms`) and sizes (`64MiB`, `512KiB`) as
//! people write them in flags and manifests.
//!
//! Pure parsing; the one place these formats are defined.

use std::fmt;
use std::str::FromStr;

/// A duration written like `30s`, `1m30s`, `250ms`, `2h` or `30d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub std::time::Duration);

/// A size in bytes written like `64MiB`, `512KiB`, `1GiB`, `100MB` or `4096`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

/// Why a duration or size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error(
        "`{0}` is not a duration: write a number and a unit, e.g. `30s`, `1m30s`, `250ms`, `2h`"
    )]
    Duration(String),
    #[error("`{0}` is not a size: write a number and a unit, e.g. `64MiB`, `512KiB`, `1GiB`")]
    Size(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnitError::Duration(s.chars().take(40).collect());
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total_ms: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let (number, tail) = rest.split_at(digits);
            let number: u64 = number.parse().map_err(|_| bad())?;
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let ms_per = match unit {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            let part = number
                .checked_mul(ms_per)
                .ok_or_else(|| UnitError::Overflow(s.to_owned()))?;
            total_ms = total_ms
                .checked_add(part)
                .ok_or_else(|| UnitError::Overflow(s.to_owned()))?;
            rest = tail;
        }
        Ok(Self(std::time::Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The form people write: `250ms`, `45s`, `2m`, `1m30s`, `1h`.
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let secs = ms / 1000;
        let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        let mut wrote = false;
        for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
                wrote = true;
            }
        }
        if !wrote {
            f.write_str("0s")?;
        }
        Ok(())
    }
}

impl FromStr for Size {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnitError::Size(s.chars().take(40).collect());
        let text = s.trim();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(bad()),
        };
        number
            .checked_mul(factor)
            .map(Self)
            .ok_or_else(|| UnitError::Overflow(s.to_owned()))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::sandbox::bytes(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        let parse = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("30d"), Ok(Duration::from_secs(30 * 86_400)));
        for bad in ["", "30", "s", "1.5s", "-1s", "1w", "1 s"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            parse("99999999999999999h"),
            Err(UnitError::Overflow(_))
        ));
        for text in ["250ms", "45s", "2m", "1m30s", "1h", "1h0m5s", "0s"] {
            let shown = text.parse::<HumanDuration>().map(|d| d.to_string());
            let expected = if text == "1h0m5s" { "1h5s" } else { text };
            assert_eq!(shown.as_deref(), Ok(expected));
        }
    }

    #[test]
    fn sizes() {
        let parse = |s: &str| s.parse::<Size>().map(|d| d.0);
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("1GB"), Ok(1_000_000_000));
        for bad in ["", "MiB", "1.5MiB", "1mib", "-1"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            parse("99999999999GiB"),
            Err(UnitError::Overflow(_))
        ));
    }
}
