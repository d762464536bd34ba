//! New messages, live: a Server-Sent Events stream for the home and history pages.
//!
//! The stream waits for the message feed to announce one of the tenant's new messages (and,
//! with `devices=1`, for the device manager's status changes); then it reads the newest
//! messages with the page's filters and sends a `message` event for each one newer than the
//! newest the page has (`after`). It checks the login every few seconds and ends when the
//! session ends or the gateway shuts down.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::session::{Signed, Viewer, Visitor};
use super::{local_time, tz_of};
use crate::devices::manager::DeviceUpdate;
use crate::messages::feed::Stored;
use crate::messages::service::HistorySearch;
use crate::messages::view::MessageOut;
use crate::state::AppState;
use crate::tenants::Tenant;

/// How often the stream checks that the login still holds.
const SESSION_CHECK: Duration = Duration::from_secs(3);
/// Messages read per round; more arriving at once show after a reload.
const BATCH: i64 = 20;
/// Devices whose status the home page follows.
const DEVICES_LISTED: i64 = 100;

/// What woke the stream.
enum Wake {
    Messages,
    Devices,
    Check,
    Stop,
}

struct Poller {
    state: AppState,
    me: Viewer,
    tenant: Tenant,
    search: HistorySearch,
    after: Option<i64>,
    messages: broadcast::Receiver<Stored>,
    /// Each device's last status sent, when the page asked for device events.
    devices: Option<(HashMap<i64, String>, broadcast::Receiver<DeviceUpdate>)>,
    ready: VecDeque<Event>,
    first: bool,
}

impl Poller {
    /// Whether the login still holds.
    async fn logged_in(&self) -> bool {
        match self.state.db.dashboard_session(&self.me.token_hash).await {
            Ok(found) => found.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "live messages: session check failed");
                true
            }
        }
    }

    /// Waits for something to report: a new message of this tenant, a status change of one
    /// of its devices, the next session check, or shutdown.
    async fn wait(&mut self) -> Wake {
        let tenant = self.tenant.id;
        let check = tokio::time::sleep(SESSION_CHECK);
        tokio::pin!(check);
        loop {
            let device = async {
                match self.devices.as_mut() {
                    Some((_, updates)) => updates.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.state.shutdown.cancelled() => return Wake::Stop,
                _ = &mut check => return Wake::Check,
                got = self.messages.recv() => match got {
                    Ok(m) if m.tenant_id != tenant => continue,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return Wake::Messages,
                    Err(broadcast::error::RecvError::Closed) => return Wake::Stop,
                },
                got = device => match got {
                    Ok(u) if u.tenant_id() != tenant => continue,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return Wake::Devices,
                    Err(broadcast::error::RecvError::Closed) => return Wake::Stop,
                },
            }
        }
    }

    /// The newest messages matching the page's filters, newest first.
    async fn newest(&self) -> Vec<MessageOut> {
        match self.state.messages.history(&self.tenant, &self.search, BATCH, 0).await {
            Ok(found) => found.rows.iter().map(MessageOut::of).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Queues a `message` event for each message newer than the page's newest.
    async fn message_changes(&mut self) {
        let rows = self.newest().await;
        let newest = rows.iter().map(|m| m.id).max();
        let Some(after) = self.after else {
            self.after = Some(newest.unwrap_or(0));
            return;
        };
        let mut fresh: Vec<MessageOut> = rows.into_iter().filter(|m| m.id > after).collect();
        fresh.sort_by_key(|m| m.id);
        self.after = Some(newest.unwrap_or(after).max(after));
        let tz = tz_of(&self.me);
        self.ready.extend(fresh.into_iter().map(|m| {
            let data = json!({
                "id": m.id, "created_at": local_time(&m.created_at, tz), "device": m.device,
                "direction": m.direction, "chat": m.chat, "text": list_text(&m), "status": m.status,
                "type": m.kind, "edited": m.edited_at.is_some(), "revoked": m.revoked_at.is_some(),
                "forwarded": m.forwarded,
            });
            Event::default().event("message").id(m.id.to_string()).data(data.to_string())
        }));
    }

    /// Queues a `device` event for each device whose status changed (all of them at first).
    async fn device_changes(&mut self) {
        if self.devices.is_none() {
            return;
        }
        let Ok((devices, _)) = self.state.devices.list(&self.tenant, DEVICES_LISTED, 0).await else { return };
        let Some((known, _)) = self.devices.as_mut() else { return };
        for d in devices {
            let status = serde_json::to_value(d.live.status).ok();
            let Some(status) = status.as_ref().and_then(Value::as_str) else { continue };
            if known.get(&d.row.id).map(String::as_str) != Some(status) {
                known.insert(d.row.id, status.to_string());
                let data = json!({ "id": d.row.id, "status": status });
                self.ready.push_back(Event::default().event("device").data(data.to_string()));
            }
        }
    }

    /// The next event: a queued one, or the next news.
    async fn next(mut self) -> Option<(Event, Poller)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((event, self));
            }
            if self.first {
                self.first = false;
                self.message_changes().await;
                self.device_changes().await;
                continue;
            }
            match self.wait().await {
                Wake::Stop => return None,
                Wake::Check => {
                    if !self.logged_in().await {
                        return None;
                    }
                }
                Wake::Messages => self.message_changes().await,
                Wake::Devices => self.device_changes().await,
            }
        }
    }
}

/// The text the message lists show: the message's own, or for a location, contact or poll
/// without one, what it holds (as the `marks.html` template shows it).
fn list_text(m: &MessageOut) -> Option<String> {
    if let Some(text) = m.text.as_ref().filter(|t| !t.is_empty()) {
        return Some(text.clone());
    }
    if let Some(l) = &m.location {
        let label = l.name.clone().or_else(|| l.address.clone());
        return Some(label.unwrap_or_else(|| format!("{}, {}", l.latitude, l.longitude)));
    }
    if !m.contacts.is_empty() {
        return Some(m.contacts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "));
    }
    m.poll.as_ref().map(|p| p.question.clone())
}

/// `GET /live/messages?after=<id>&<history filters>`: `message` events for the logged-in
/// tenant's new messages (oldest first), each with the message's id, time in the tenant's
/// zone, device, direction, chat, text, status, type and whether it was edited, deleted or
/// forwarded. Without `after` (or `Last-Event-ID`) it
/// starts from the newest message there is. With `devices=1` it also sends a `device` event
/// (`{"id", "status"}`) for every device at first and then whenever a status changes.
pub async fn message_events(
    State(state): State<AppState>,
    Signed { v, me }: Signed,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let given: Vec<(String, String)> =
        form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let value = |name: &str| given.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string());
    // A reconnecting EventSource says where it stopped.
    let resumed =
        headers.get("last-event-id").and_then(|h| h.to_str().ok()).and_then(|h| h.parse::<i64>().ok());
    let after = value("after").and_then(|a| a.parse::<i64>().ok()).max(resumed);
    let search = HistorySearch {
        device: value("device"),
        direction: value("direction"),
        status: value("status"),
        kind: value("type"),
        q: value("q"),
        ..HistorySearch::default()
    };
    let devices = (value("devices").as_deref() == Some("1"))
        .then(|| (HashMap::new(), state.device_manager.subscribe()));
    let tenant = Visitor::tenant(&v, &me);
    let messages = state.outbound.feed().subscribe();
    let poller =
        Poller { state, me, tenant, search, after, messages, devices, ready: VecDeque::new(), first: true };
    let stream = futures::stream::unfold(poller, Poller::next).map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
