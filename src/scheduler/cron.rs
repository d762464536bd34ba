//! Cron expressions and IANA time zones for recurring messages.
//!
//! An expression has the five classic fields (minute, hour, day of month, month, day of week,
//! with names like `MON` and `JAN`, ranges, lists, steps, `L`, `W` and `#`) or is a nickname
//! (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`). Seconds and years are refused: a
//! message per second is never what a tenant means. Next runs are computed in the schedule's
//! time zone by `croner`, which moves along real time across daylight-saving changes: a run
//! that falls in a skipped hour goes at the first minute after the gap, and a run in a repeated
//! hour goes once.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// The time zone of a schedule that names none (the seed's users are Indonesian).
pub const DEFAULT_TIMEZONE: &str = "Asia/Jakarta";
/// Longest expression accepted, in bytes.
const MAX_CRON_LEN: usize = 200;

/// A parsed cron expression. No public fields: a value always has a future run.
#[derive(Clone)]
pub struct CronExpr {
    source: String,
    cron: Cron,
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronExpr").field(&self.source).finish()
    }
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_CRON_LEN} characters")]
    TooLong,
    #[error(
        "needs five fields (minute hour day-of-month month day-of-week), e.g. `0 9 * * MON-FRI`; found {0}"
    )]
    FieldCount(usize),
    #[error("not a valid cron expression: {0}")]
    Invalid(String),
    #[error("never runs (no date matches it)")]
    NeverRuns,
}

impl CronExpr {
    /// Parses an expression (five fields or a nickname) and checks that it runs at all.
    pub fn parse(raw: &str) -> Result<CronExpr, CronError> {
        let source = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if source.is_empty() {
            return Err(CronError::Empty);
        }
        if source.len() > MAX_CRON_LEN {
            return Err(CronError::TooLong);
        }
        if !source.starts_with('@') {
            let fields = source.split(' ').count();
            if fields != 5 {
                return Err(CronError::FieldCount(fields));
            }
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(&source).map_err(|e| CronError::Invalid(e.to_string()))?;
        let expr = CronExpr { source, cron };
        // Patterns such as `0 0 30 2 *` parse but name no real day.
        if expr.next_after(chrono_tz::UTC, Utc::now()).is_none() {
            return Err(CronError::NeverRuns);
        }
        Ok(expr)
    }

    /// The expression as given, with its spacing tidied.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first run strictly after `after`, reading the fields as wall-clock time in `tz`.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn runs_are_wall_clock_times_in_the_schedule_zone() {
        let daily_nine = CronExpr::parse("0 9 * * *").unwrap();
        // 09:00 in Jakarta (UTC+7) is 02:00 UTC.
        let next = daily_nine.next_after(chrono_tz::Asia::Jakarta, utc(2026, 11, 25, 12, 0)).unwrap();
        assert_eq!(next, utc(2026, 11, 26, 2, 0));
        let next = daily_nine.next_after(chrono_tz::Asia::Jakarta, next).unwrap();
        assert_eq!(next, utc(2026, 11, 27, 2, 0), "strictly after the previous run");
    }

    #[test]
    fn a_daily_run_keeps_its_local_time_across_daylight_saving_changes() {
        let tz = chrono_tz::Europe::Amsterdam;
        let e = CronExpr::parse("30 9 * * *").unwrap();
        // The clocks go forward on 2026-03-29: 09:30 is 08:30 UTC before, 07:30 UTC after.
        let before = e.next_after(tz, utc(2026, 3, 27, 12, 0)).unwrap();
        assert_eq!(before, utc(2026, 3, 28, 8, 30));
        let after = e.next_after(tz, before).unwrap();
        assert_eq!(after, utc(2026, 3, 29, 7, 30));
        // And back on 2026-10-25.
        let e = CronExpr::parse("30 9 * * *").unwrap();
        assert_eq!(e.next_after(tz, utc(2026, 10, 24, 12, 0)).unwrap(), utc(2026, 10, 25, 8, 30));
    }

    #[test]
    fn a_run_in_the_skipped_hour_goes_once_right_after_it_and_a_repeated_hour_runs_once() {
        let tz = chrono_tz::Europe::Amsterdam;
        // 02:30 does not exist on 2026-03-29 (02:00 jumps to 03:00 CEST = 01:00 UTC).
        let e = CronExpr::parse("30 2 * * *").unwrap();
        let gap = e.next_after(tz, utc(2026, 3, 28, 12, 0)).unwrap();
        assert_eq!(gap, utc(2026, 3, 29, 1, 0), "the first minute after the gap");
        assert_eq!(e.next_after(tz, gap).unwrap(), utc(2026, 3, 30, 0, 30));
        // 02:30 happens twice on 2026-10-25 (00:30 and 01:30 UTC): one run.
        let first = e.next_after(tz, utc(2026, 10, 24, 12, 0)).unwrap();
        assert_eq!(first, utc(2026, 10, 25, 0, 30));
        assert_eq!(e.next_after(tz, first).unwrap(), utc(2026, 10, 26, 1, 30));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        assert_eq!(CronExpr::parse(" ").unwrap_err(), CronError::Empty);
        assert_eq!(CronExpr::parse("* * * *").unwrap_err(), CronError::FieldCount(4));
        assert_eq!(CronExpr::parse("0 0 9 * * *").unwrap_err(), CronError::FieldCount(6));
        assert!(matches!(CronExpr::parse("61 * * * *").unwrap_err(), CronError::Invalid(_)));
        assert!(matches!(CronExpr::parse("every day").unwrap_err(), CronError::FieldCount(2)));
        assert!(matches!(CronExpr::parse("a b c d e").unwrap_err(), CronError::Invalid(_)));
        assert_eq!(CronExpr::parse("0 0 30 2 *").unwrap_err(), CronError::NeverRuns);
        assert!(CronExpr::parse("@daily").is_ok());
        assert!(CronExpr::parse("0  9 * *   MON-FRI").is_ok());
        assert_eq!(CronExpr::parse("0  9 * *   MON-FRI").unwrap().as_str(), "0 9 * * MON-FRI");
    }

    proptest! {
        #[test]
        fn the_next_run_is_always_later_and_matches_minute_steps(
            step in 1u32..30, secs in 0i64..4_000_000_000, tz in prop::sample::select(vec![
                chrono_tz::Asia::Jakarta, chrono_tz::Europe::Amsterdam, chrono_tz::America::New_York,
                chrono_tz::Australia::Lord_Howe, chrono_tz::UTC,
            ]),
        ) {
            let e = CronExpr::parse(&format!("*/{step} * * * *")).unwrap();
            let after = Utc.timestamp_opt(secs, 0).unwrap();
            let next = e.next_after(tz, after).unwrap();
            prop_assert!(next > after);
            prop_assert!(next - after <= chrono::Duration::hours(2));
        }
    }
}
