//! Wake-ups between the gateway processes on one database.
//!
//! A signal only says "look again": rows in the database stay the truth, and every consumer
//! also polls, so a lost signal costs a delay, never a message. Each process receives its own
//! signals at once through an in-process broadcast; on PostgreSQL they are also sent with
//! `NOTIFY` to the other processes, whose listener (one dedicated connection each) feeds them
//! into their broadcast. After the listener lost its connection it reports
//! [`Signal::Resync`], because notifications sent meanwhile are gone.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::db::tenant_cache::{TenantCache, NOTIFY_CHANNEL as CHANNEL};
use crate::db::Db;

/// What a signal asks its receivers to look at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The device has new queued messages: its owner's sender should look at its queue.
    Queued(i64),
    /// Another process stored a command for the device: its holder should run it.
    Command(i64),
    /// A device lease was given up: processes below their share may take it now.
    LeaseFree,
    /// Signals may have been lost (the listener reconnected): look at everything again.
    Resync,
    /// A device's live state changed in the process running it (status, QR or pairing code),
    /// for the live views of the others; the payload is the devices module's.
    Update(Arc<str>),
    /// A tenant's API key, row or limit overrides changed (sent by the database layer in the
    /// transaction that changed it): the listener has already made this process's tenant
    /// cache forget the tenant when the signal is seen.
    TenantChanged(i64),
}

impl Signal {
    fn encode(&self) -> String {
        match self {
            Signal::Queued(device) => format!("q:{device}"),
            Signal::Command(device) => format!("c:{device}"),
            Signal::LeaseFree => "l".into(),
            Signal::Resync => "r".into(),
            Signal::Update(payload) => format!("u:{payload}"),
            Signal::TenantChanged(tenant) => crate::db::tenant_cache::tenant_changed_payload(*tenant),
        }
    }

    /// The signal a payload carries; `None` for anything else (another version's signal).
    fn decode(payload: &str) -> Option<Signal> {
        let (kind, id) = payload.split_once(':').unwrap_or((payload, ""));
        match kind {
            "q" => id.parse().ok().map(Signal::Queued),
            "c" => id.parse().ok().map(Signal::Command),
            "l" if id.is_empty() => Some(Signal::LeaseFree),
            "r" if id.is_empty() => Some(Signal::Resync),
            "u" if !id.is_empty() => Some(Signal::Update(id.into())),
            "t" => id.parse().ok().map(Signal::TenantChanged),
            _ => None,
        }
    }
}

/// Sends and receives [`Signal`]s. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    local: broadcast::Sender<Signal>,
    postgres: Option<PgPool>,
    /// The database handle's tenant cache, which the listener keeps in step with the others.
    tenants: Arc<TenantCache>,
}

impl Bus {
    pub fn new(db: &Db) -> Bus {
        let (local, _) = broadcast::channel(4096);
        Bus { local, postgres: db.postgres_pool().cloned(), tenants: db.tenants.clone() }
    }

    /// Signals this process at once and, on PostgreSQL, every other process. A signal that
    /// cannot be sent to the others is logged: their polls cover it.
    pub async fn publish(&self, signal: Signal) {
        let payload = signal.encode();
        let _ = self.local.send(signal.clone());
        if let Some(pool) = &self.postgres {
            let sent =
                sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(pool).await;
            if let Err(e) = sent {
                tracing::debug!(error = %e, ?signal, "could not notify the other gateway processes");
            }
        }
    }

    /// Whether other processes may share the database (PostgreSQL): only then is there anyone
    /// to tell about what happens here.
    pub fn is_shared(&self) -> bool {
        self.postgres.is_some()
    }

    /// Signals from now on, this process's and (on PostgreSQL) every other's. A receiver that
    /// falls behind gets `Lagged`: it should look at everything again.
    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.local.subscribe()
    }

    /// Starts listening to the other processes (PostgreSQL only) until shutdown.
    pub fn start(&self, shutdown: CancellationToken, tasks: &TaskTracker) {
        let Some(pool) = self.postgres.clone() else { return };
        let local = self.local.clone();
        let tenants = self.tenants.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = listen(pool, local, tenants) => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

/// Feeds notifications into the local broadcast for ever, reconnecting after failures.
async fn listen(pool: PgPool, local: broadcast::Sender<Signal>, tenants: Arc<TenantCache>) {
    let mut pause = Duration::from_millis(200);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other gateway processes; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for other gateway processes; trying again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            continue;
        }
        pause = Duration::from_millis(200);
        // Whatever was sent before the listener (re)started is unknown.
        tenants.forget_all();
        let _ = local.send(Signal::Resync);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Some(signal) = Signal::decode(n.payload()) {
                        if let Signal::TenantChanged(tenant) = signal {
                            tenants.forget_tenant(tenant);
                        }
                        let _ = local.send(signal);
                    }
                }
                // The connection was lost; the next call reconnects and keeps listening.
                Ok(None) => {
                    tenants.forget_all();
                    let _ = local.send(Signal::Resync);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the listener for other gateway processes");
                    break;
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Signal;

    #[test]
    fn signals_survive_their_encoding_and_strangers_are_ignored() {
        for s in [
            Signal::Queued(7),
            Signal::Queued(1 << 40),
            Signal::Command(3),
            Signal::LeaseFree,
            Signal::Resync,
            Signal::Update("n1:{\"a\":1}".into()),
            Signal::TenantChanged(42),
        ] {
            assert_eq!(Signal::decode(&s.encode()), Some(s));
        }
        for odd in ["", "q:", "q:x", "f:-", "l:1", "z:1", "q", "u:", "t:", "t:x"] {
            assert_eq!(Signal::decode(odd), None, "{odd}");
        }
    }
}
