//! The inbound pipeline's loop guard. The pipeline applies it to every automatic reply, from
//! whichever stage (keyword rules, plugins, reply webhooks): stages only decide what to answer.
//!
//! Two bots answering each other (or a contact whose phone echoes what it gets) would trade
//! messages forever, each one counted against the tenant's monthly allowance and each one a
//! risk for the number. So:
//!
//! - no reply to a message whose text this gateway sent into the chat in the last
//!   [`ECHO_WINDOW`], nor to an automatic reply another device of this gateway sent to this
//!   device's number (an echo of our own message, or two gateway devices answering each other);
//! - at most `[rules] max_replies_per_chat_per_minute` automatic replies per chat of a device
//!   per minute, all stages together ([`ReplyWindow`]): the backstop that holds whatever the
//!   texts are.
//!
//! The window lives in memory: it is short (a minute), a device's inbound messages are all
//! handled by the one process that holds its session, and a check-and-take under one lock is
//! atomic without a database round trip per message. A restart forgets it, which at worst
//! allows one more minute's worth of replies.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::inbound::InboundContext;
use crate::db::{now_ms, Db};

/// The span the limit counts over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How far back the echo check looks for text the gateway sent.
pub const ECHO_WINDOW: Duration = Duration::from_secs(600);
/// Chats tracked before the ones quiet for a whole window are dropped.
const PRUNE_AT: usize = 10_000;

/// What the guard says about one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// The message answered is the gateway's own text coming back.
    Echo,
    /// The chat had its automatic replies for this minute.
    TooMany,
}

/// The loop guard of the pipeline.
pub struct ReplyGuard {
    db: Db,
    window: ReplyWindow,
}

impl ReplyGuard {
    /// At most `max_per_minute` automatic replies per chat of a device per minute.
    pub fn new(db: Db, max_per_minute: u32) -> ReplyGuard {
        ReplyGuard { db, window: ReplyWindow::new(max_per_minute) }
    }

    /// The guard for the replies to one message: the echo check runs at the first reply, once.
    pub fn for_message(&self) -> MessageGuard<'_> {
        MessageGuard { guard: self, echo: None }
    }
}

/// [`ReplyGuard`] for one message.
pub struct MessageGuard<'a> {
    guard: &'a ReplyGuard,
    echo: Option<bool>,
}

impl MessageGuard<'_> {
    /// Whether one more reply to `ctx`'s message may go out; `Send` takes its place in the
    /// chat's window.
    pub async fn admit(&mut self, ctx: &InboundContext) -> Verdict {
        let echo = match self.echo {
            Some(echo) => echo,
            None => *self.echo.insert(self.is_echo(ctx).await),
        };
        if echo {
            return Verdict::Echo;
        }
        if !self.guard.window.try_take(ctx.device.id, &ctx.message.chat, Instant::now()) {
            return Verdict::TooMany;
        }
        Verdict::Send
    }

    async fn is_echo(&self, ctx: &InboundContext) -> bool {
        let m = &ctx.message;
        let Some(text) = m.text.as_deref() else { return false };
        let since = now_ms() - ECHO_WINDOW.as_millis() as i64;
        match self
            .guard
            .db
            .is_gateway_echo(ctx.device.id, &ctx.device.phone, &m.chat, &m.sender, text, since)
            .await
        {
            Ok(echo) => echo,
            Err(e) => {
                // Answering is the safe side: the window still bounds a loop.
                tracing::warn!(message_id = m.id, error = %e, "loop guard: cannot run the echo check");
                false
            }
        }
    }
}

/// Counts automatic replies per (device, chat) over a sliding minute.
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
