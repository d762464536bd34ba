//! Scheduled messages: one-off at `send_at`, or recurring by `cron` in an IANA time
//! zone; text, or media fetched by URL when the message goes out.
//!
//! Durable work is rows: the worker ([`worker::Scheduler`]) claims due rows with a lease and
//! hands each to the outbound queue with an idempotency key made of the row and the run time,
//! so a send repeated after a crash, or by a second process that took over an expired lease,
//! finds the message already queued and sends nothing. See `worker.rs` for the whole story.

pub mod cron;
pub mod service;
pub mod worker;

pub use worker::Scheduler;

use crate::db::schedules::ScheduleRow;
use crate::db::MessageRow;
use crate::time::rfc3339_ms as rfc3339;
use crate::webhooks::events::{EventType, ScheduledSentData};
use crate::webhooks::Events;

/// Statuses of a scheduled message.
pub const STATUSES: [&str; 5] = ["pending", "sent", "failed", "missed", "cancelled"];

pub use crate::db::schedules::ScheduledMedia;

/// The idempotency key of one run: the same for every attempt at that run, different for the
/// next run of a recurring message.
pub fn run_key(schedule_id: i64, run_at_ms: i64) -> String {
    format!("scheduled:{schedule_id}:{run_at_ms}")
}

/// Emits `scheduled.sent` once a run of a scheduled message has been handed to the outbound
/// queue and recorded. The event follows the record: a crash between the two loses this
/// notification (the message itself is sent, and its `message.sent` event comes from the
/// durable status pump).
pub async fn on_scheduled_sent(
    events: &Events,
    schedule: &ScheduleRow,
    message: &MessageRow,
    run_at_ms: i64,
    next_run_ms: Option<i64>,
) {
    tracing::info!(
        tenant = schedule.user_id,
        schedule_id = schedule.id,
        message_id = message.id,
        recurring = schedule.cron.is_some(),
        "scheduled message sent"
    );
    let data = ScheduledSentData {
        schedule_id: schedule.id,
        message_id: message.id,
        device_id: schedule.device_id,
        device: schedule.device_phone.clone(),
        to: schedule.recipient.clone(),
        text: schedule.text.clone(),
        run_at: rfc3339(run_at_ms),
        next_run_at: next_run_ms.map(rfc3339),
    };
    if let Err(e) =
        events.emit(schedule.user_id, Some(schedule.device_id), EventType::ScheduledSent, &data).await
    {
        tracing::warn!(schedule_id = schedule.id, error = %e, "could not queue the scheduled.sent event");
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_documented_defaults_load_and_unknown_keys_are_refused() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.scheduler.poll_interval_ms, 1000);
        assert_eq!(c.scheduler.missed_grace, 3600);
        assert_eq!(c.scheduler.claim_lease, 60);
        assert_eq!(c.rules.max_replies_per_chat_per_minute, 5);
        let err = Config::from_toml("[scheduler]\nmissed_grase = 1").unwrap_err().to_string();
        assert!(err.contains("scheduler.missed_grase"), "{err}");
        let err = Config::from_toml("[rules]\nmax_replies = 1").unwrap_err().to_string();
        assert!(err.contains("rules.max_replies"), "{err}");
        let err = Config::from_toml("[scheduler]\nclaim_lease = 0").unwrap_err().to_string();
        assert!(err.contains("scheduler.claim_lease"), "{err}");
    }

    #[test]
    fn a_run_key_names_the_row_and_the_run() {
        assert_eq!(super::run_key(7, 1_764_000_000_000), "scheduled:7:1764000000000");
        assert_ne!(super::run_key(7, 1), super::run_key(7, 2));
    }
}
