//! New messages, live: a Server-Sent Events stream for the home and history pages.
//!
//! There is no message notification to subscribe to, so the stream asks the tenant API's
//! history (with the page's filters) once a second and sends a `message` event for each
//! message newer than the newest the page has (`after`). It checks the login on every round
//! and ends when the session ends or the gateway shuts down. The home page also asks for its
//! devices' statuses the same way.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};

use super::pages::{localize, query};
use super::session::{Signed, Viewer, Visitor};
use crate::app::AppState;

/// How often the stream looks for new messages.
const POLL: Duration = Duration::from_secs(1);
/// Messages fetched per round; more arriving within one round show after a reload.
const BATCH: &str = "20";
/// The history filters a live page may pass on.
const FILTERS: [&str; 4] = ["device", "direction", "status", "q"];

struct Poller {
    state: AppState,
    v: Visitor,
    me: Viewer,
    uri: String,
    after: Option<i64>,
    /// Each device's last status sent, when the page asked for device events.
    devices: Option<HashMap<i64, String>>,
    ready: VecDeque<Event>,
    first: bool,
}

impl Poller {
    /// The newest messages (newest first), or `None` when the login has ended.
    async fn fetch(&self) -> Option<Vec<Value>> {
        match self.state.db.dashboard_session(&self.me.token_hash).await {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "live messages: session check failed");
                return Some(Vec::new());
            }
        }
        match self.v.dash.json(&self.v, &self.me, Method::GET, &self.uri, None).await {
            Ok(mut page) => {
                localize(&mut page["data"], &["created_at"], &self.me);
                Some(page["data"].as_array().cloned().unwrap_or_default())
            }
            Err(_) => Some(Vec::new()),
        }
    }

    /// Queues a `device` event for each device whose status changed (all of them at first).
    async fn device_changes(&mut self) {
        let Some(known) = self.devices.as_mut() else { return };
        let uri = "/api/user/devices/status?limit=100";
        let Ok(page) = self.v.dash.json(&self.v, &self.me, Method::GET, uri, None).await else { return };
        for d in page["data"].as_array().into_iter().flatten() {
            let (Some(id), Some(status)) = (d["id"].as_i64(), d["status"].as_str()) else { continue };
            if known.get(&id).map(String::as_str) != Some(status) {
                known.insert(id, status.to_string());
                let data = json!({ "id": id, "status": status });
                self.ready.push_back(Event::default().event("device").data(data.to_string()));
            }
        }
    }

    /// The next event: a queued one, or the next round's news.
    async fn next(mut self) -> Option<(Event, Poller)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((event, self));
            }
            if !self.first {
                tokio::select! {
                    _ = self.state.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            self.first = false;
            let rows = self.fetch().await?;
            self.device_changes().await;
            let newest = rows.iter().filter_map(|m| m["id"].as_i64()).max();
            match self.after {
                None => self.after = Some(newest.unwrap_or(0)),
                Some(after) => {
                    let mut fresh: Vec<Value> =
                        rows.into_iter().filter(|m| m["id"].as_i64().is_some_and(|id| id > after)).collect();
                    fresh.sort_by_key(|m| m["id"].as_i64());
                    self.after = Some(newest.unwrap_or(after).max(after));
                    self.ready.extend(fresh.into_iter().map(|m| {
                        let data = json!({
                            "id": m["id"], "created_at": m["created_at"], "device": m["device"],
                            "direction": m["direction"], "chat": m["chat"], "text": m["text"],
                            "status": m["status"],
                        });
                        Event::default().event("message").id(m["id"].to_string()).data(data.to_string())
                    }));
                }
            }
        }
    }
}

/// `GET /live/messages?after=<id>&<history filters>`: `message` events for the logged-in
/// tenant's new messages (oldest first), each with the message's id, time in the tenant's
/// zone, device, direction, chat, text and status. Without `after` (or `Last-Event-ID`) it
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
    let filters: Vec<(&str, String)> = FILTERS.iter().map(|f| (*f, value(f).unwrap_or_default())).collect();
    let mut pairs: Vec<(&str, &str)> = filters.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("limit", BATCH));
    let uri = format!("/api/user/chat-history?{}", query(&pairs));
    let devices = (value("devices").as_deref() == Some("1")).then(HashMap::new);
    let poller = Poller { state, v, me, uri, after, devices, ready: VecDeque::new(), first: true };
    let stream = futures::stream::unfold(poller, Poller::next).map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
