//! Messages as this process stores and changes them, for live views (the dashboard's live
//! history and inbox): they wait for a notice instead of polling the database.
//!
//! A notice names the tenant, the message and what happened to it, nothing more: a view reads
//! the message itself (as its tenant), so a notice never carries another tenant's data, and a
//! view that reads after the last notice of a message sees its latest state whatever order
//! concurrent notices arrived in.

use tokio::sync::broadcast;

/// What happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It was just stored.
    Stored,
    /// Its status moved: sent, delivered, read or failed.
    Status,
    /// What it shows changed: edited, deleted, reacted to, voted on, marked read.
    Content,
}

/// A message of a tenant that was stored or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    pub tenant_id: i64,
    pub message_id: i64,
    pub change: Change,
}

/// Where stored and changed messages are announced. Cheap to clone; a subscriber that falls
/// more than 1,024 notices behind misses some (its receiver says `Lagged`) and should re-read.
#[derive(Clone)]
pub struct MessageFeed {
    tx: broadcast::Sender<Notice>,
}

impl Default for MessageFeed {
    fn default() -> Self {
        MessageFeed { tx: broadcast::channel(1024).0 }
    }
}

impl MessageFeed {
    /// A message was stored.
    pub fn publish(&self, tenant_id: i64, message_id: i64) {
        self.send(tenant_id, message_id, Change::Stored);
    }

    /// A message's status moved.
    pub fn status_changed(&self, tenant_id: i64, message_id: i64) {
        self.send(tenant_id, message_id, Change::Status);
    }

    /// A message was edited, deleted, reacted to, voted on or marked read.
    pub fn content_changed(&self, tenant_id: i64, message_id: i64) {
        self.send(tenant_id, message_id, Change::Content);
    }

    fn send(&self, tenant_id: i64, message_id: i64, change: Change) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(Notice { tenant_id, message_id, change });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_hear_each_notice_in_order_with_its_tenant_and_kind() {
        let feed = MessageFeed::default();
        let mut rx = feed.subscribe();
        feed.publish(1, 10);
        feed.status_changed(2, 20);
        feed.content_changed(1, 10);
        let got: Vec<Notice> = (0..3).map(|_| rx.try_recv().unwrap()).collect();
        assert_eq!(
            got,
            [
                Notice { tenant_id: 1, message_id: 10, change: Change::Stored },
                Notice { tenant_id: 2, message_id: 20, change: Change::Status },
                Notice { tenant_id: 1, message_id: 10, change: Change::Content },
            ]
        );
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_so_and_then_hears_the_newest() {
        let feed = MessageFeed::default();
        let mut rx = feed.subscribe();
        for id in 0..1100 {
            feed.status_changed(1, id);
        }
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(76))));
        assert_eq!(rx.try_recv().unwrap().message_id, 76, "the oldest kept notice follows");
        // Nobody listening is fine.
        drop(rx);
        feed.publish(1, 1);
    }
}
