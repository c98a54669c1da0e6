//! Human-friendly units used in config files: durations (`30s`, `5m`, `24h`,
//! `90d`) and byte sizes (`1MB`, `512KiB`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written as a number followed by a unit: `ms`, `s`, `m`, `h` or `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| duration_error(text))?;
        let (number, unit) = trimmed.split_at(split);
        let value: f64 = number.parse().map_err(|_| duration_error(text))?;
        let seconds_per_unit = match unit {
            // Not advertised, but what `format_duration` prints below a
            // millisecond, so every printed duration reads back.
            "us" | "µs" => 0.000_001,
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(duration_error(text)),
        };
        let seconds = value * seconds_per_unit;
        if !seconds.is_finite() || seconds > 10.0 * 365.0 * 86400.0 {
            return Err(format!("duration {text:?} is out of range"));
        }
        Ok(HumanDuration(Duration::from_secs_f64(seconds)))
    }
}

fn duration_error(text: &str) -> String {
    format!("invalid duration {text:?}: expected a number followed by ms, s, m, h or d (e.g. 30s)")
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_duration(self.0).fmt(f)
    }
}

/// Formats a duration in the largest unit that keeps it exact or short:
/// `90d`, `24h`, `5m`, `30s`, `1.5s`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000)] {
        if millis >= size && millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    if millis >= 1000 {
        if millis.is_multiple_of(1000) {
            return format!("{}s", millis / 1000);
        }
        let seconds = format!("{:.3}", duration.as_secs_f64());
        return format!("{}s", seconds.trim_end_matches('0').trim_end_matches('.'));
    }
    if duration.as_micros().is_multiple_of(1000) || millis > 0 {
        return format!("{millis}ms");
    }
    format!("{}µs", duration.as_micros())
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 5m, 24h or 90d")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                HumanDuration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: a unit is required (e.g. {v}s)"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: a unit is required (e.g. {v}s)"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: a unit is required (e.g. {v}s)"
                )))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// A byte size: a plain number of bytes, or a number with a decimal (`kB`,
/// `MB`, `GB`, `TB`) or binary (`KiB`, `MiB`, `GiB`, `TiB`) unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let value: f64 = number.parse().map_err(|_| size_error(text))?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            _ => return Err(size_error(text)),
        };
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
            return Err(format!("size {text:?} is out of range"));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl ByteSize {
    /// The size rounded for people: `941.9KiB`, `3.9MiB`, `512B`.
    pub fn approx(self) -> String {
        let bytes = self.0 as f64;
        for (unit, size) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= size {
                let text = format!("{:.1}", bytes / size as f64);
                return format!("{}{unit}", text.trim_end_matches(".0"));
            }
        }
        format!("{}B", self.0)
    }
}

fn size_error(text: &str) -> String {
    format!("invalid size {text:?}: expected a number with an optional unit B, kB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 1MB)")
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if bytes >= size && bytes.is_multiple_of(size) {
                return write!(f, "{}{unit}", bytes / size);
            }
        }
        for (unit, size) in [("GB", 1_000_000_000u64), ("MB", 1_000_000), ("kB", 1_000)] {
            if bytes >= size && bytes.is_multiple_of(size) {
                return write!(f, "{}{unit}", bytes / size);
            }
        }
        write!(f, "{bytes}B")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 1MB or 512KiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A share of a limit, written as a percentage (`80%`) or a fraction
/// between 0 and 1 (`0.8`). Held as the fraction.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Ratio(pub f64);

impl Ratio {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let value = match trimmed.strip_suffix('%') {
            Some(number) => number
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && (0.0..=100.0).contains(v))
                .map(|v| v / 100.0),
            None => trimmed
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && (0.0..=1.0).contains(v)),
        };
        value.map(Ratio).ok_or_else(|| ratio_error(text))
    }

    fn from_number(value: f64) -> Result<Self, String> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Ratio(value))
        } else {
            Err(ratio_error(&value.to_string()))
        }
    }
}

fn ratio_error(text: &str) -> String {
    format!(
        "invalid ratio {text:?}: expected a percentage from 0% to 100% (e.g. 80%) or a fraction from 0 to 1 (e.g. 0.8)"
    )
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = format!("{:.2}", self.0 * 100.0);
        write!(
            f,
            "{}%",
            percent.trim_end_matches('0').trim_end_matches('.')
        )
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RatioVisitor;
        impl Visitor<'_> for RatioVisitor {
            type Value = Ratio;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a ratio such as 80% or 0.8")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ratio, E> {
                Ratio::parse(v).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ratio, E> {
                Ratio::from_number(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ratio, E> {
                Ratio::from_number(v as f64).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ratio, E> {
                Ratio::from_number(v as f64).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(RatioVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_parse_as_percentages_and_fractions() {
        assert_eq!(Ratio::parse("80%").unwrap().0, 0.8);
        assert_eq!(Ratio::parse("0.9").unwrap().0, 0.9);
        assert_eq!(Ratio::parse("100%").unwrap().0, 1.0);
        for bad in ["80", "120%", "-5%", "x%", "", "1.5"] {
            let err = Ratio::parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(Ratio(0.8).to_string(), "80%");
        assert_eq!(Ratio(0.125).to_string(), "12.5%");
    }

    #[test]
    fn durations_parse_in_every_unit() {
        let cases = [
            ("250ms", 0.25),
            ("30s", 30.0),
            ("5m", 300.0),
            ("24h", 86400.0),
            ("90d", 7_776_000.0),
            ("1.5s", 1.5),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                HumanDuration::parse(text).unwrap().0.as_secs_f64(),
                seconds,
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations_are_rejected_with_the_text() {
        for text in ["30", "5x", "s", "", "1w", "-1s"] {
            let err = HumanDuration::parse(text).unwrap_err();
            assert!(err.contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn printed_durations_read_back() {
        // Found by the `units` fuzz target: ".5ms" printed as "500µs".
        for text in [".5ms", "0.001ms", "1.5s", "250ms", "90d", "1.0005s"] {
            let parsed = HumanDuration::parse(text).unwrap();
            let printed = format_duration(parsed.0);
            let again = HumanDuration::parse(&printed)
                .unwrap_or_else(|err| panic!("{text} printed as {printed}: {err}"));
            assert!(
                parsed.0.abs_diff(again.0) < Duration::from_millis(1),
                "{text} -> {printed}"
            );
        }
        assert_eq!(
            HumanDuration::parse("500µs").unwrap().0,
            Duration::from_micros(500)
        );
    }

    #[test]
    fn durations_format_back_to_their_shortest_form() {
        for text in ["90d", "36h", "5m", "30s", "250ms", "1.5s"] {
            assert_eq!(HumanDuration::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(HumanDuration::parse("24h").unwrap().to_string(), "1d");
        {}
    }

    #[test]
    fn sizes_parse_decimal_and_binary_units() {
        assert_eq!(ByteSize::parse("1MB").unwrap().0, 1_000_000);
        assert_eq!(ByteSize::parse("512KiB").unwrap().0, 524_288);
        assert_eq!(ByteSize::parse("1MiB").unwrap().0, 1_048_576);
        assert_eq!(ByteSize::parse("42").unwrap().0, 42);
        assert!(ByteSize::parse("12XB").is_err());
        assert!(ByteSize::parse("MB").is_err());
        assert_eq!(ByteSize(1_048_576).to_string(), "1MiB");
        assert_eq!(ByteSize(1_000_000).to_string(), "1MB");
        assert_eq!(ByteSize(941_880).approx(), "919.8KiB");
        assert_eq!(ByteSize(4 << 20).approx(), "4MiB");
        assert_eq!(ByteSize(512).approx(), "512B");
    }
}
