//! `business-hours`: answers messages that arrive outside business hours.
//!
//! Inside the hours the plugin does nothing (the message goes on to later plugins, webhooks
//! and people); outside them it replies with `reply`. The time is the gateway's clock
//! (`clock.now-ms`), shifted by `utc_offset_minutes`. Messages without text are answered too.
//!
//! Configuration, every field optional (the defaults are shown: office hours in Jakarta, WIB):
//!
//! ```json
//! {
//!   "utc_offset_minutes": 420,
//!   "open": "08:00",
//!   "close": "17:00",
//!   "days": [1, 2, 3, 4, 5],
//!   "reply": "Terima kasih, pesan Anda sudah kami terima. Kami buka Senin–Jumat pukul 08.00–17.00 WIB dan akan membalas pada jam kerja."
//! }
//! ```
//!
//! - `utc_offset_minutes`: the business's offset from UTC (WIB 420, WITA 480, WIT 540), at
//!   most ±1080.
//! - `open`, `close`: `HH:MM`, local time; `close` may be `24:00`. Open from `open` up to, not
//!   including, `close`. A `close` before `open` spans midnight (`"22:00"`–`"06:00"`: the
//!   night belongs to the day it starts on). `open` and `close` must differ.
//! - `days`: the days the business opens, 1 = Monday … 7 = Sunday. `[]` means always closed
//!   (every message is answered); `"00:00"`–`"24:00"` on all seven days means never closed.
//! - `reply`: the text sent outside the hours.

use serde::Deserialize;
use wa_gateway_plugin_sdk::{config, export_plugin, now_ms, Context, Decision, Message, Plugin, PluginError};

const MINUTES_PER_DAY: i64 = 24 * 60;
const MS_PER_DAY: i64 = MINUTES_PER_DAY * 60_000;

/// The configuration as written by the tenant.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    utc_offset_minutes: i32,
    open: String,
    close: String,
    days: Vec<u8>,
    reply: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            utc_offset_minutes: 7 * 60,
            open: "08:00".into(),
            close: "17:00".into(),
            days: vec![1, 2, 3, 4, 5],
            reply: "Terima kasih, pesan Anda sudah kami terima. Kami buka Senin–Jumat pukul \
                    08.00–17.00 WIB dan akan membalas pada jam kerja."
                .into(),
        }
    }
}

/// The configuration, checked: minutes since local midnight and a day mask.
#[derive(Debug)]
struct Hours {
    offset_minutes: i64,
    open: i64,
    close: i64,
    /// `days[d]` for ISO weekday `d` (index 0 unused).
    days: [bool; 8],
}

impl Hours {
    fn parse(config: &Config) -> Result<Hours, PluginError> {
        if config.utc_offset_minutes.abs() > 18 * 60 {
            return Err(PluginError::bad_config("utc_offset_minutes must be within ±1080"));
        }
        let open = parse_time(&config.open, "open")?;
        let close = parse_time(&config.close, "close")?;
        if open == close || open == MINUTES_PER_DAY {
            return Err(PluginError::bad_config("open must be before 24:00 and differ from close"));
        }
        let mut days = [false; 8];
        for &day in &config.days {
            if !(1..=7).contains(&day) {
                return Err(PluginError::bad_config(format!("days: {day} is not 1 (Monday) to 7 (Sunday)")));
            }
            days[usize::from(day)] = true;
        }
        Ok(Hours { offset_minutes: i64::from(config.utc_offset_minutes), open, close, days })
    }

    /// Whether the business is open at `unix_ms`.
    fn is_open(&self, unix_ms: i64) -> bool {
        let local = unix_ms + self.offset_minutes * 60_000;
        let day_number = local.div_euclid(MS_PER_DAY);
        let minute = local.rem_euclid(MS_PER_DAY) / 60_000;
        let today = iso_weekday(day_number);
        let yesterday = iso_weekday(day_number - 1);
        if self.open < self.close {
            self.days[today] && (self.open..self.close).contains(&minute)
        } else {
            (self.days[today] && minute >= self.open) || (self.days[yesterday] && minute < self.close)
        }
    }
}

/// 1 = Monday … 7 = Sunday for a count of days since 1970-01-01 (a Thursday).
fn iso_weekday(days_since_epoch: i64) -> usize {
    (days_since_epoch + 3).rem_euclid(7) as usize + 1
}

/// `HH:MM` as minutes since midnight; `24:00` is allowed.
fn parse_time(text: &str, field: &str) -> Result<i64, PluginError> {
    let bad = || PluginError::bad_config(format!("{field}: `{text}` is not HH:MM"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits =
        |s: &str, max_len| !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

struct BusinessHours;

impl Plugin for BusinessHours {
    fn handle(_msg: Message, ctx: Context) -> Result<Decision, PluginError> {
        let config: Config = config(&ctx)?;
        let hours = Hours::parse(&config)?;
        Ok(if hours.is_open(now_ms()) { Decision::none() } else { Decision::reply(config.reply) })
    }
}

export_plugin!(BusinessHours);

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-01 00:00 UTC, a Monday, in Unix milliseconds.
    const MONDAY_UTC: i64 = 1_704_067_200_000;
    const HOUR: i64 = 3_600_000;

    fn hours(open: &str, close: &str, days: &[u8]) -> Hours {
        let config =
            Config { open: open.into(), close: close.into(), days: days.into(), ..Config::default() };
        Hours::parse(&config).unwrap()
    }

    #[test]
    fn office_hours_in_jakarta() {
        let h = hours("08:00", "17:00", &[1, 2, 3, 4, 5]);
        // Monday 01:00 UTC is 08:00 WIB: open; 10:00 UTC is 17:00 WIB: closed.
        assert!(!h.is_open(MONDAY_UTC));
        assert!(h.is_open(MONDAY_UTC + HOUR));
        assert!(h.is_open(MONDAY_UTC + 10 * HOUR - 1));
        assert!(!h.is_open(MONDAY_UTC + 10 * HOUR));
        // Saturday 03:00 UTC (10:00 WIB): closed.
        assert!(!h.is_open(MONDAY_UTC + 5 * 24 * HOUR + 3 * HOUR));
    }

    #[test]
    fn a_night_shift_belongs_to_the_day_it_starts() {
        let h = hours("22:00", "06:00", &[1]);
        // Monday 23:00 WIB (16:00 UTC) and Tuesday 05:00 WIB (Monday 22:00 UTC) are open.
        assert!(h.is_open(MONDAY_UTC + 16 * HOUR));
        assert!(h.is_open(MONDAY_UTC + 22 * HOUR));
        // Monday 05:00 WIB belongs to Sunday's night, which is closed.
        assert!(!h.is_open(MONDAY_UTC - 2 * HOUR));
    }

    #[test]
    fn no_days_is_always_closed_and_all_day_every_day_is_always_open() {
        let closed = hours("08:00", "17:00", &[]);
        let open = hours("00:00", "24:00", &[1, 2, 3, 4, 5, 6, 7]);
        for hour in 0..24 * 7 {
            assert!(!closed.is_open(MONDAY_UTC + hour * HOUR));
            assert!(open.is_open(MONDAY_UTC + hour * HOUR));
        }
    }

    #[test]
    fn bad_times_and_days_are_bad_config() {
        for (open, close, days) in [
            ("8", "17:00", &[1][..]),
            ("08:00", "24:01", &[1]),
            ("08:00", "08:00", &[1]),
            ("08:00", "17:00", &[0]),
            ("08:00", "17:00", &[8]),
            ("24:00", "08:00", &[1]),
            ("08:5", "17:00", &[1]),
        ] {
            let config =
                Config { open: open.into(), close: close.into(), days: days.into(), ..Config::default() };
            assert!(
                matches!(Hours::parse(&config), Err(PluginError::BadConfig(_))),
                "{open}-{close} {days:?}"
            );
        }
    }
}
