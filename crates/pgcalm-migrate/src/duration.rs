//! Durations as people write them (`2s`, `500ms`, `5min`, `1.5h`): the one parser of the
//! workspace, for flags (clap's `value_parser = parse_duration`), pgcalm.toml (serde,
//! through [`HumanDuration`]) and environment variables alike.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The units [`parse_duration`] takes, as its errors list them.
const UNITS: &str = "ms, s, min or h";

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number where the duration starts.
    #[error("`{text}` is not a duration (examples: 2s, 500ms, 5min)")]
    NotANumber {
        /// As written.
        text: String,
    },
    /// A number followed by something that is no unit.
    #[error("unknown unit `{unit}` in `{text}` (use {UNITS})")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// More than a `Duration` holds.
    #[error("`{text}` is too long a duration")]
    TooLong {
        /// As written.
        text: String,
    },
}

/// Parses `2s`, `500ms`, `1.5s`, `5min` (or `5m`), `1h`, `0`; a bare number is seconds
/// and a space may stand between number and unit (`30 s`).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| DurationError::NotANumber {
        text: text.to_string(),
    })?;
    let seconds_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(DurationError::UnknownUnit {
                unit: other.to_string(),
                text: text.to_string(),
            });
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| DurationError::TooLong {
        text: text.to_string(),
    })
}

/// A duration as written in pgcalm.toml or on a command line: parsed by
/// [`parse_duration`], shown back by [`human`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(HumanDuration)
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Duration {
        d.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"2s\", \"500ms\" or \"5min\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A duration for people, as short as it is exact: `0`, `250ms`, `2s`, `600s`.
pub fn human(d: Duration) -> String {
    if d.is_zero() {
        "0".to_string()
    } else if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_write() {
        let d = |t: &str| parse_duration(t).unwrap();
        assert_eq!(d("2s"), Duration::from_secs(2));
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("1m"), Duration::from_secs(60));
        assert_eq!(d("5min"), Duration::from_secs(300));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("3"), Duration::from_secs(3));
        assert_eq!(d(" 30 s "), Duration::from_secs(30));
        assert_eq!(d("0"), Duration::ZERO);
    }

    #[test]
    fn says_what_is_wrong() {
        let e = |t: &str| parse_duration(t).unwrap_err().to_string();
        assert_eq!(
            e("fast"),
            "`fast` is not a duration (examples: 2s, 500ms, 5min)"
        );
        assert_eq!(
            e("-1s"),
            "`-1s` is not a duration (examples: 2s, 500ms, 5min)"
        );
        assert_eq!(
            e("2 parsecs"),
            "unknown unit `parsecs` in `2 parsecs` (use ms, s, min or h)"
        );
        assert_eq!(
            e("1e300h"),
            "unknown unit `e300h` in `1e300h` (use ms, s, min or h)"
        );
        let huge = format!("{}h", "9".repeat(30));
        assert_eq!(e(&huge), format!("`{huge}` is too long a duration"));
    }

    #[test]
    fn shows_durations_back_exactly() {
        assert_eq!(human(Duration::ZERO), "0");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(2)), "2s");
        assert_eq!(human(Duration::from_secs(600)), "600s");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human(Duration::from_micros(1500)), "0.0015s");
        assert_eq!("5min".parse::<HumanDuration>().unwrap().to_string(), "300s");
    }
}
