//! New messages as this process stores them, for live views (the dashboard's live history):
//! they wait for a notice instead of polling the database.

use tokio::sync::broadcast;

/// A message that was just stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub tenant_id: i64,
    pub message_id: i64,
}

/// Where stored messages are announced. Cheap to clone; a subscriber that falls more than
/// 1,024 notices behind misses some (and should re-read).
#[derive(Clone)]
pub struct MessageFeed {
    tx: broadcast::Sender<Stored>,
}

impl Default for MessageFeed {
    fn default() -> Self {
        MessageFeed { tx: broadcast::channel(1024).0 }
    }
}

impl MessageFeed {
    pub fn publish(&self, tenant_id: i64, message_id: i64) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(Stored { tenant_id, message_id });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Stored> {
        self.tx.subscribe()
    }
}
