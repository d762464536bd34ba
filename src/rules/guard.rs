//! The loop guard's rate part: at most N auto-replies per chat of a device per minute.
//!
//! Two bots answering each other (or a contact whose phone echoes what it gets) would trade
//! messages forever, each one counted against the tenant's monthly allowance and each one a
//! risk for the number. The echo check in the stage catches the plain cases; this window is
//! the backstop that holds whatever the texts are.
//!
//! The window lives in memory: it is short (a minute), a device's inbound messages are all
//! handled by the one process that holds its session, and a check-and-take under one lock is
//! atomic without a database round trip per message. A restart forgets it, which at worst
//! allows one more minute's worth of replies.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The span the limit counts over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Chats tracked before the ones quiet for a whole window are dropped.
const PRUNE_AT: usize = 10_000;

/// Counts auto-replies per (device, chat) over a sliding minute.
#[derive(Debug)]
pub struct ReplyWindow {
    max: u32,
    chats: Mutex<HashMap<(i64, String), VecDeque<Instant>>>,
}

impl ReplyWindow {
    /// At most `max` replies per chat per minute; 0 allows none.
    pub fn new(max: u32) -> Self {
        ReplyWindow { max, chats: Mutex::new(HashMap::new()) }
    }

    /// Takes one reply from the chat's allowance at `now`; false when the minute's allowance
    /// is used up (then nothing is taken).
    pub fn try_take(&self, device_id: i64, chat: &str, now: Instant) -> bool {
        let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        if chats.len() >= PRUNE_AT {
            chats.retain(|_, stamps| {
                stamps.back().is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
            });
        }
        let stamps = chats.entry((device_id, chat.to_string())).or_default();
        while stamps.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
            stamps.pop_front();
        }
        if stamps.len() >= self.max as usize {
            return false;
        }
        stamps.push_back(now);
        true
    }

    /// Gives back the reply taken last for the chat (it was not sent after all).
    pub fn give_back(&self, device_id: i64, chat: &str) {
        let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stamps) = chats.get_mut(&(device_id, chat.to_string())) {
            stamps.pop_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_allowance_refills_after_a_minute() {
        let w = ReplyWindow::new(2);
        let t0 = Instant::now();
        assert!(w.try_take(1, "a", t0));
        assert!(w.try_take(1, "a", t0 + Duration::from_secs(10)));
        assert!(!w.try_take(1, "a", t0 + Duration::from_secs(20)));
        assert!(w.try_take(1, "b", t0 + Duration::from_secs(20)), "another chat has its own allowance");
        assert!(w.try_take(2, "a", t0 + Duration::from_secs(20)), "so does the same chat on another device");
        assert!(w.try_take(1, "a", t0 + Duration::from_secs(60)), "the first reply left the window");
        assert!(!w.try_take(1, "a", t0 + Duration::from_secs(61)));
    }

    #[test]
    fn a_reply_given_back_frees_its_slot() {
        let w = ReplyWindow::new(1);
        let t0 = Instant::now();
        assert!(w.try_take(1, "a", t0));
        w.give_back(1, "a");
        assert!(w.try_take(1, "a", t0));
        assert!(!w.try_take(1, "a", t0));
    }

    #[test]
    fn zero_allows_nothing() {
        assert!(!ReplyWindow::new(0).try_take(1, "a", Instant::now()));
    }

    proptest! {
        #[test]
        fn no_minute_ever_holds_more_than_the_maximum(max in 0u32..6, gaps in prop::collection::vec(0u64..30_000, 1..80)) {
            let w = ReplyWindow::new(max);
            let t0 = Instant::now();
            let mut at = t0;
            let mut taken: Vec<Instant> = Vec::new();
            for gap in gaps {
                at += Duration::from_millis(gap);
                if w.try_take(7, "chat", at) {
                    taken.push(at);
                }
            }
            for (i, start) in taken.iter().enumerate() {
                let within = taken[i..].iter().filter(|t| t.duration_since(*start) < WINDOW).count();
                prop_assert!(within <= max as usize);
            }
        }
    }
}
