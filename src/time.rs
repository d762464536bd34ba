//! Time as the gateway shows it: one timestamp format for every API answer and webhook, and
//! the tenants' time zones.
//!
//! Every timestamp the gateway stores is Unix milliseconds; every one it shows is RFC 3339 in
//! UTC with milliseconds (`2026-12-06T01:38:04.123Z`).

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;

/// A stored Unix-milliseconds time as shown: RFC 3339, UTC, milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    rfc3339(Utc.timestamp_millis_opt(ms).single().unwrap_or_default())
}

/// A time as shown: RFC 3339, UTC, milliseconds.
pub fn rfc3339<Z: TimeZone>(at: DateTime<Z>) -> String {
    at.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An IANA time-zone name (`Asia/Jakarta`, `Europe/Amsterdam`, `UTC`), case-insensitively.
pub fn parse_timezone(raw: &str) -> Result<Tz, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    Tz::from_str(raw)
        .ok()
        .or_else(|| chrono_tz::TZ_VARIANTS.iter().copied().find(|tz| tz.name().eq_ignore_ascii_case(raw)))
        .ok_or_else(|| {
            format!(
                "`{}` is not an IANA time zone (e.g. Asia/Jakarta)",
                raw.chars().take(60).collect::<String>()
            )
        })
}

/// The time zone named `name`, or the default one when the name is unknown (stored names were
/// checked when stored; this only guards against a zone database that lost one).
pub fn timezone_or_default(name: &str) -> Tz {
    parse_timezone(name).unwrap_or(chrono_tz::Asia::Jakarta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        let jakarta = chrono_tz::Asia::Jakarta.with_ymd_and_hms(2026, 1, 1, 7, 0, 0).unwrap();
        assert_eq!(rfc3339(jakarta), "2026-01-01T00:00:00.000Z");
    }

    #[test]
    fn zones_are_found_in_any_case_and_unknown_ones_fall_back() {
        assert_eq!(parse_timezone("asia/jakarta"), Ok(chrono_tz::Asia::Jakarta));
        assert!(parse_timezone("Mars/Phobos").is_err());
        assert!(parse_timezone(" ").is_err());
        assert_eq!(timezone_or_default("nope"), chrono_tz::Asia::Jakarta);
    }
}
