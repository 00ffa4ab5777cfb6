//! Memory sizes on the command line: `2GB`, `1.5GiB`, `512MiB`, `1000000` (bytes), a
//! percentage of the no-recompute peak (`60%`), or a percentage of the activation memory to
//! keep (`50%act`: the no-recompute peak minus half of the activations the backward reads).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Budget {
    Bytes(u64),
    /// A fraction of the peak without recomputation, in percent (0 < p <= 100).
    Percent(f64),
    /// The peak without recomputation minus (100 − p)% of the activation memory (the forward
    /// values the backward reads), in percent (0 <= p <= 100).
    ActivationPercent(f64),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid size '{input}': {reason} (examples: 2GB, 1.5GiB, 512MiB, 1000000B, 60%, 50%act)")]
pub struct SizeError {
    pub input: String,
    pub reason: String,
}

impl FromStr for Budget {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Budget, SizeError> {
        let err = |reason: &str| SizeError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        if let Some(p) = lower
            .strip_suffix("%act")
            .or_else(|| lower.strip_suffix("%activations"))
        {
            let v: f64 = p.trim().parse().map_err(|_| err("not a number"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(err("a percentage of activations must be in [0, 100]"));
            }
            return Ok(Budget::ActivationPercent(v));
        }
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| err("not a number"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(err("a percentage must be in (0, 100]"));
            }
            return Ok(Budget::Percent(v));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let v: f64 = num.parse().map_err(|_| err("not a number"))?;
        let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kb" | "k" => 1e3,
            "mb" | "m" => 1e6,
            "gb" | "g" => 1e9,
            "tb" | "t" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0f64.powi(4),
            _ => return Err(err("unknown unit")),
        };
        let bytes = v * mult;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(err("out of range"));
        }
        Ok(Budget::Bytes(bytes.round() as u64))
    }
}

impl Budget {
    /// The budget as it was asked for, exactly: `2000000000B`, `60%`, `30%act`.
    pub fn spec(&self) -> String {
        match self {
            Budget::Bytes(b) => format!("{b}B"),
            Budget::Percent(p) => format!("{p}%"),
            Budget::ActivationPercent(p) => format!("{p}%act"),
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Bytes(b) => f.write_str(&human_bytes(*b)),
            Budget::Percent(p) => write!(f, "{p}%"),
            Budget::ActivationPercent(p) => write!(f, "{p}%act"),
        }
    }
}

/// Bytes in binary units with three significant digits: `1.50 MiB`.
pub fn human_bytes(b: u64) -> String {
    human_bytes_rounded(b, false)
}

/// [`human_bytes`] rounded up at the printed precision: a suggested budget read back is never
/// below the bytes it was made from.
pub fn human_bytes_up(b: u64) -> String {
    human_bytes_rounded(b, true)
}

fn human_bytes_rounded(b: u64, up: bool) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        if up {
            v = (v * 100.0).ceil() / 100.0;
        }
        format!("{v:.2} {}", UNITS[u])
    }
}

/// One binary unit for every byte figure of a report, chosen from its largest figure (the
/// largest unit that figure reaches, `human_bytes`'s choice for it): a report never mixes
/// `GiB` with `MiB`, and its small figures read as fractions of the big ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteScale {
    shift: u32,
}

impl ByteScale {
    const UNITS: [&'static str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

    /// The scale for figures up to `largest` bytes.
    pub fn for_largest(largest: u64) -> ByteScale {
        let mut shift = 0;
        while (shift as usize) + 1 < Self::UNITS.len() && largest >> (10 * (shift + 1)) > 0 {
            shift += 1;
        }
        ByteScale { shift }
    }

    pub fn unit(&self) -> &'static str {
        Self::UNITS[self.shift as usize]
    }

    /// `b` in this scale: `12.34 MiB` (bytes as an integer: `512 B`); a size that is not
    /// zero never reads as zero: `<0.01 GiB`.
    pub fn format(&self, b: u64) -> String {
        let v = b as f64 / (1u64 << (10 * self.shift)) as f64;
        if self.shift == 0 {
            format!("{b} B")
        } else if b > 0 && v < 0.005 {
            format!("<0.01 {}", self.unit())
        } else {
            format!("{v:.2} {}", self.unit())
        }
    }

    /// A signed difference with its sign always shown: `-12.34 MiB`, `+0.50 MiB`.
    pub fn format_signed(&self, d: i64) -> String {
        let sign = if d < 0 { '-' } else { '+' };
        format!("{sign}{}", self.format(d.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_binary_and_percent() {
        assert_eq!("2GB".parse(), Ok(Budget::Bytes(2_000_000_000)));
        assert_eq!("1.5GiB".parse(), Ok(Budget::Bytes(1_610_612_736)));
        assert_eq!("512 MiB".parse(), Ok(Budget::Bytes(536_870_912)));
        assert_eq!("1000".parse(), Ok(Budget::Bytes(1000)));
        assert_eq!("10kb".parse(), Ok(Budget::Bytes(10_000)));
        assert_eq!("60%".parse(), Ok(Budget::Percent(60.0)));
        assert_eq!("30%act".parse(), Ok(Budget::ActivationPercent(30.0)));
        assert_eq!("0%activations".parse(), Ok(Budget::ActivationPercent(0.0)));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "", "GB", "2XB", "0%", "101%", "-1GB", "0", "1e400GB", "101%act", "x%act",
        ] {
            assert!(bad.parse::<Budget>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn human_readable() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.00 GiB");
    }

    #[test]
    fn one_scale_for_a_report() {
        const MIB: u64 = 1 << 20;
        let s = ByteScale::for_largest(248 * MIB);
        assert_eq!(s.unit(), "MiB");
        assert_eq!(s.format(248 * MIB), "248.00 MiB");
        assert_eq!(s.format(65 * 1024), "0.06 MiB");
        assert_eq!(s.format_signed(-(3 * MIB as i64)), "-3.00 MiB");
        assert_eq!(s.format_signed(MIB as i64 / 2), "+0.50 MiB");
        assert_eq!(
            ByteScale::for_largest(5 << 30).format(512 * MIB),
            "0.50 GiB"
        );
        assert_eq!(ByteScale::for_largest(1023).format(1000), "1000 B");
        assert_eq!(s.format(1), "<0.01 MiB");
        assert_eq!(s.format(0), "0.00 MiB");
        assert_eq!(ByteScale::for_largest(1024).unit(), "KiB");
        assert_eq!(ByteScale::for_largest(u64::MAX).unit(), "TiB");
    }
}
