//! New and changed messages, live: a Server-Sent Events stream for the home, history and
//! inbox pages.
//!
//! The stream waits for the message feed to announce one of the tenant's messages (and, with
//! `devices=1`, for the device manager's status changes). For new messages it reads the newest
//! messages with the page's filters and sends a `message` event for each one newer than the
//! newest the page has (`after`). For a message whose status or content changed it reads that
//! message (as the tenant) and sends a `change` event, which the page applies to the row or
//! bubble it shows, if any. A stream that fell behind the feed cannot know what it missed: it
//! reads the new messages again and sends `resync`, after which the page reads what it shows
//! again. It checks the login every few seconds and ends when the session ends or the gateway
//! shuts down.

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
use crate::messages::feed::{Change, Notice};
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
/// Changed messages read per round; a burst of more is taken in the next round.
const CHANGES: usize = 50;

/// What woke the stream.
enum Wake {
    Messages,
    /// Messages changed (their ids are in `Poller::changed`).
    Changed,
    /// Notices were missed.
    Lagged,
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
    messages: broadcast::Receiver<Notice>,
    /// Messages of the tenant that changed and have not been sent yet, with whether their
    /// content (not only their status) changed; in the order they were announced.
    changed: Vec<(i64, bool)>,
    /// Each device's last status sent, when the page asked for device events.
    devices: Option<(HashMap<i64, String>, broadcast::Receiver<DeviceUpdate>)>,
    /// A new message was announced while changes were being gathered.
    fresh: bool,
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

    /// Waits for something to report: a new or changed message of this tenant, a status change
    /// of one of its devices, the next session check, or shutdown.
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
                    Ok(n) if n.tenant_id != tenant => continue,
                    Ok(Notice { change: Change::Stored, .. }) => return Wake::Messages,
                    Ok(n) => {
                        self.note(n);
                        // Changes come in bursts (a receipt for many messages): take the ones
                        // already announced along, one read round for all of them.
                        while self.changed.len() < CHANGES {
                            match self.messages.try_recv() {
                                Ok(n) if n.tenant_id != tenant => {}
                                Ok(Notice { change: Change::Stored, .. }) => {
                                    self.fresh = true;
                                }
                                Ok(n) => self.note(n),
                                Err(broadcast::error::TryRecvError::Lagged(_)) => return Wake::Lagged,
                                Err(_) => break,
                            }
                        }
                        return Wake::Changed;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => return Wake::Lagged,
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

    /// Remembers a changed message once, with whether its content changed.
    fn note(&mut self, n: Notice) {
        let content = n.change == Change::Content;
        match self.changed.iter_mut().find(|(id, _)| *id == n.message_id) {
            Some((_, c)) => *c |= content,
            None => self.changed.push((n.message_id, content)),
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
            let data = row_json(&m, tz);
            Event::default().event("message").id(m.id.to_string()).data(data.to_string())
        }));
    }

    /// Queues a `change` event for each changed message still there: the message as the
    /// `message` events show it, with `content` (whether more than its status changed). It has
    /// no event id: a reconnecting page resumes after the last new message, not a change.
    async fn changes(&mut self) {
        let tz = tz_of(&self.me);
        for (id, content) in std::mem::take(&mut self.changed) {
            // Read as the tenant: a notice names a message, the tenant check is the read's.
            let row = match self.state.db.message(self.tenant.id, id).await {
                Ok(Some(row)) => row,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "live messages: could not read a changed message");
                    continue;
                }
            };
            let mut data = row_json(&MessageOut::of(&row), tz);
            data["content"] = Value::Bool(content);
            self.ready.push_back(Event::default().event("change").data(data.to_string()));
        }
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
                Wake::Changed => {
                    // New messages announced among the changes go first.
                    if std::mem::take(&mut self.fresh) {
                        self.message_changes().await;
                    }
                    self.changes().await;
                }
                Wake::Lagged => {
                    self.changed.clear();
                    self.fresh = false;
                    self.message_changes().await;
                    self.ready.push_back(Event::default().event("resync").data("{}"));
                }
                Wake::Devices => self.device_changes().await,
            }
        }
    }
}

/// A message as the live events carry it: id, time in the tenant's zone, device, direction,
/// chat, sender (and LID), text, status, type and whether it was edited, deleted or forwarded.
fn row_json(m: &MessageOut, tz: chrono_tz::Tz) -> Value {
    json!({
        "id": m.id, "created_at": local_time(&m.created_at, tz), "device": m.device,
        "direction": m.direction, "chat": m.chat, "from": m.from, "sender_lid": m.sender_lid,
        "text": list_text(m), "status": m.status, "type": m.kind, "edited": m.edited_at.is_some(),
        "revoked": m.revoked_at.is_some(), "forwarded": m.forwarded,
    })
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
/// zone, device, direction, chat, sender and its LID, text, status, type and whether it was
/// edited, deleted or forwarded. Without `after` (or `Last-Event-ID`) it starts from the newest
/// message there is. A `change` event (the same fields and `content`) follows each change of a
/// status, and each edit, deletion, reaction or vote, of any of the tenant's messages; `resync`
/// says changes may have been missed. With `devices=1` it also sends a `device` event
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
        .then(|| (HashMap::new(), state.device_manager.subscribe_everywhere()));
    let tenant = Visitor::tenant(&v, &me);
    let messages = state.outbound.feed().subscribe();
    let poller = Poller {
        state,
        me,
        tenant,
        search,
        after,
        messages,
        changed: Vec::new(),
        devices,
        fresh: false,
        ready: VecDeque::new(),
        first: true,
    };
    let stream = futures::stream::unfold(poller, Poller::next).map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
