//! The inbox and the groups pages.
//!
//! `/chats` lists the tenant's conversations (name or number, unread count, latest message)
//! and, with `?device=<id>&chat=<jid>`, shows one conversation's latest messages, oldest
//! first, with a reply box for text (optionally quoting a message), media and a location.
//! Opening a conversation marks it read, as the API's read mark does. The page follows the
//! live message stream: app.js asks this page again for `fragment=messages` (the open
//! conversation's newer messages) and `fragment=list` (the list) and swaps them in, so the
//! fragments are rendered from the same templates as the page.
//!
//! `/groups?device=<id>` lists a device's groups; `/groups/{device}/{jid}` shows a group's
//! members and, when the device is an admin, its invite link.

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{as_value, device_list, failure_page, localize, numeric, query};
use super::session::{FileForm, Form, Signed, Viewer, Visitor};
use super::{local_time, not_found, render, tz_of, ApiFailure};
use crate::content::Location;
use crate::db::MessageRow;
use crate::error::ApiError;
use crate::messages::service::chats::{Chat, ChatsWanted};
use crate::messages::service::{HistorySearch, MediaSend, MediaSource, SendCommon, Shared, TextSend};
use crate::messages::view::MessageOut;
use crate::tenants::Tenant;

/// Conversations the list shows, the latest first.
const CHATS_LISTED: i64 = 50;
/// Messages a conversation shows, the latest ones.
const MESSAGES_SHOWN: i64 = 50;

/// What the inbox URL (or a reply form) says: the list's filters, the open conversation, the
/// message being answered, and which fragment is asked for.
#[derive(Default, Clone)]
struct Params {
    /// The device id: filters the list and, with `chat`, names the conversation's device.
    device: String,
    /// The conversation's chat id (a JID).
    chat: String,
    q: String,
    /// Which chats the list shows: the main list (empty: not archived, as the phone shows
    /// it), `unread`, `pinned`, `muted` or `archived`.
    show: String,
    reply_to: String,
    fragment: String,
    after: i64,
}

impl Params {
    fn of(raw: &str) -> Params {
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            let v = v.trim().to_string();
            match k.as_ref() {
                "device" => p.device = v,
                "chat" => p.chat = v,
                "q" => p.q = v,
                "show" => p.show = v,
                "reply_to" => p.reply_to = v,
                "fragment" => p.fragment = v,
                "after" => p.after = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        p
    }

    fn of_form(form: &Form) -> Params {
        Params {
            device: form.get("device").trim().into(),
            chat: form.get("chat").trim().into(),
            q: form.get("q").trim().into(),
            show: form.get("show").trim().into(),
            reply_to: form.get("reply_to").trim().into(),
            ..Params::default()
        }
    }

    /// The query string of the list with `chat` open (none when empty).
    fn link(&self, chat: &str, extra: &[(&str, &str)]) -> String {
        let mut pairs = vec![
            ("device", self.device.as_str()),
            ("chat", chat),
            ("q", self.q.as_str()),
            ("show", self.show.as_str()),
        ];
        pairs.extend_from_slice(extra);
        query(&pairs)
    }

    /// The device id as a number: only numeric ids come from the page.
    fn device_id(&self) -> Result<Option<i64>, ()> {
        if self.device.is_empty() {
            return Ok(None);
        }
        numeric(&self.device).map(Some).ok_or(())
    }
}

/// What the reply boxes were filled with, shown again with an error.
#[derive(Default)]
struct Typed {
    /// The box that was sent (`text`, `media`, `location`): its error shows there.
    form: &'static str,
    text: String,
    caption: String,
    latitude: String,
    longitude: String,
    place_name: String,
}

/// The inbox (`fragment=list`: only the chat list; `fragment=messages&after=<id>`: only the
/// open conversation's messages newer than `after`).
pub async fn chats(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let p = Params::of(&raw.unwrap_or_default());
    match p.fragment.as_str() {
        "list" => list_fragment(&v, &me, &p).await,
        "messages" => messages_fragment(&v, &me, &p).await,
        _ => inbox_page(&v, &me, &p, StatusCode::OK, None, &Typed::default()).await,
    }
}

async fn inbox_page(
    v: &Visitor,
    me: &Viewer,
    p: &Params,
    status: StatusCode,
    error: Option<String>,
    typed: &Typed,
) -> Response {
    let Ok(device_id) = p.device_id() else { return not_found(v) };
    let tenant = v.tenant(me);
    let devices = match device_list(v, me).await {
        Ok(d) => d,
        Err(f) => return failure_page(v, &f),
    };
    // The conversation first: opening it marks it read, so the list shows it read.
    let open = match (device_id, p.chat.is_empty()) {
        (Some(device_id), false) => match conversation(v, me, &tenant, device_id, p).await {
            Ok(c) => Some(c),
            Err(f) => return failure_page(v, &f),
        },
        _ => None,
    };
    // Links name the chat as the list stores it, however the URL gave it.
    let mut p = p.clone();
    if let Some(chat) = open.as_ref().and_then(|c| c.head["chat"].as_str()) {
        p.chat = chat.to_string();
    }
    let (list, total) = match chat_list(v, me, &tenant, &devices, &p).await {
        Ok(l) => l,
        Err(f) => return failure_page(v, &f),
    };
    let newest = match newest_id(v, &tenant, device_id).await {
        Ok(n) => n,
        Err(f) => return failure_page(v, &f),
    };
    let mut live = vec![("after", newest.to_string())];
    if let Some(d) = device_id {
        live.insert(0, ("device", d.to_string()));
    }
    let live: Vec<(&str, &str)> = live.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let live = format!("/live/messages?{}", query(&live));
    let list_url = format!("/chats?{}", p.link(&p.chat, &[("fragment", "list")]));
    let base = format!("/chats?{}", p.link(&p.chat, &[]));
    let (conversation, messages, quoted, more_url, device_phone) = match open {
        Some(c) => {
            let more = format!("/chats?{}", p.link(&p.chat, &[("fragment", "messages")]));
            (Some(c.head), c.messages, c.quoted, Some(more), c.device_phone)
        }
        None => (None, json!([]), None, None, String::new()),
    };
    render(
        v,
        status,
        "chats.html",
        context! {
            nav => "chats", devices, chats => list, total, p => context! {
                device => p.device, chat => p.chat, q => p.q, show => p.show, reply_to => p.reply_to,
            },
            conversation, messages, quoted, error, form => typed.form, text => typed.text,
            caption => typed.caption, latitude => typed.latitude, longitude => typed.longitude,
            place_name => typed.place_name, live, list_url, more_url, device_phone,
            base, back => format!("/chats?{}", p.link("", &[])),
        },
    )
}

/// The chat list alone, for the page to swap in when another conversation gets a message.
async fn list_fragment(v: &Visitor, me: &Viewer, p: &Params) -> Response {
    if p.device_id().is_err() {
        return not_found(v);
    }
    let tenant = v.tenant(me);
    let devices = match device_list(v, me).await {
        Ok(d) => d,
        Err(f) => return failure_page(v, &f),
    };
    match chat_list(v, me, &tenant, &devices, p).await {
        Ok((chats, total)) => {
            render(v, StatusCode::OK, "chats_parts.html", context! { fragment => "list", chats, total })
        }
        Err(f) => failure_page(v, &f),
    }
}

/// The open conversation's messages newer than `after`, oldest first; they are being seen,
/// so the conversation is marked read again.
async fn messages_fragment(v: &Visitor, me: &Viewer, p: &Params) -> Response {
    let (Ok(Some(device_id)), false) = (p.device_id(), p.chat.is_empty()) else { return not_found(v) };
    let tenant = v.tenant(me);
    match conversation(v, me, &tenant, device_id, p).await {
        Ok(c) => {
            let fresh: Vec<Value> = c
                .messages
                .as_array()
                .map(|all| {
                    all.iter().filter(|m| m["id"].as_i64().is_some_and(|id| id > p.after)).cloned().collect()
                })
                .unwrap_or_default();
            let base = format!("/chats?{}", p.link(c.head["chat"].as_str().unwrap_or_default(), &[]));
            render(
                v,
                StatusCode::OK,
                "chats_parts.html",
                context! {
                    fragment => "messages", messages => fresh, conversation => c.head,
                    base,
                },
            )
        }
        Err(f) => failure_page(v, &f),
    }
}

/// The tenant's conversations (of the device when one is chosen), as the templates show them.
async fn chat_list(
    v: &Visitor,
    me: &Viewer,
    tenant: &Tenant,
    devices: &Value,
    p: &Params,
) -> Result<(Value, i64), ApiFailure> {
    let device = Some(p.device.as_str()).filter(|d| !d.is_empty());
    let q = Some(p.q.as_str()).filter(|q| !q.is_empty());
    let mut wanted = ChatsWanted { device, q, ..ChatsWanted::default() };
    match p.show.as_str() {
        "unread" => (wanted.unread, wanted.archived) = (true, Some(false)),
        "pinned" => wanted.pinned = Some(true),
        "muted" => wanted.muted = Some(true),
        "archived" => wanted.archived = Some(true),
        // The main list, and anything a hand-made link names.
        _ => wanted.archived = Some(false),
    }
    let (chats, total) = v.state.messages.chats_where(tenant, &wanted, CHATS_LISTED, 0).await?;
    let several = devices.as_array().is_some_and(|d| d.len() > 1);
    let tz = tz_of(me);
    let rows = chats
        .into_iter()
        .map(|c| {
            let device_name = several
                .then(|| {
                    devices.as_array().and_then(|all| {
                        all.iter().find(|d| d["id"] == c.row.device_id).map(|d| d["name"].clone())
                    })
                })
                .flatten();
            let device_id = c.row.device_id.to_string();
            let href =
                query(&[("device", &device_id), ("chat", &c.row.chat), ("q", &p.q), ("show", &p.show)]);
            let open = c.row.chat == p.chat && device_id == p.device;
            let mut row = chat_row(&c);
            row["last_at"] = Value::String(local_time(&crate::time::rfc3339_ms(c.row.last_at), tz));
            row["href"] = Value::String(format!("/chats?{href}"));
            row["open"] = Value::Bool(open);
            row["device_name"] = device_name.unwrap_or(Value::Null);
            row
        })
        .collect();
    Ok((Value::Array(rows), total))
}

/// A chat as the templates show it: its name or number, and its latest message as the
/// message lists show it.
fn chat_row(c: &Chat) -> Value {
    let r = &c.row;
    let phone = (!r.is_group).then(|| r.chat.strip_suffix("@s.whatsapp.net")).flatten();
    json!({
        "device_id": r.device_id, "chat": r.chat, "is_group": r.is_group, "phone": phone,
        "name": r.name, "unread": r.unread, "last": c.last.as_ref().map(|m| as_value(MessageOut::of(m))),
        "archived": r.archived, "pinned": r.pinned, "muted": r.muted_at(crate::db::now_ms()),
    })
}

/// The id of the newest message of the tenant (of the device when given): the live stream
/// starts after it.
async fn newest_id(v: &Visitor, tenant: &Tenant, device: Option<i64>) -> Result<i64, ApiFailure> {
    let search = HistorySearch { device: device.map(|d| d.to_string()), ..HistorySearch::default() };
    let found = v.state.messages.history(tenant, &search, 1, 0).await?;
    Ok(found.rows.iter().map(|m| m.id).max().unwrap_or(0))
}

/// An open conversation.
struct Conversation {
    /// The chat as the list shows it.
    head: Value,
    /// The latest messages, oldest first.
    messages: Value,
    /// The message being answered.
    quoted: Option<Value>,
    /// The device's phone number, as the live stream names it.
    device_phone: String,
}

/// Opens the conversation: marks it read and reads its latest messages. A chat without
/// messages yet (a new conversation, or a group nobody wrote in) opens empty.
async fn conversation(
    v: &Visitor,
    me: &Viewer,
    tenant: &Tenant,
    device_id: i64,
    p: &Params,
) -> Result<Conversation, ApiFailure> {
    let device = device_id.to_string();
    let device_phone = v.state.devices.find(tenant, &device).await?.phone;
    let (mut head, chat) = match v.state.messages.read_chat(tenant, &device, &p.chat).await {
        Ok(read) => (chat_row(&read.chat), read.chat.row.chat),
        Err(ApiError::NotFound(_)) => {
            let chat = v.state.messages.chat_id(&p.chat)?;
            let phone = chat.strip_suffix("@s.whatsapp.net");
            let head = json!({
                "chat": chat, "is_group": chat.ends_with("@g.us"), "phone": phone, "name": null,
                "unread": 0, "last": null,
            });
            (head, chat)
        }
        Err(e) => return Err(e.into()),
    };
    head["device_id"] = json!(device_id);
    let search = HistorySearch { device: Some(device), chat: Some(chat.clone()), ..HistorySearch::default() };
    let found = v.state.messages.history(tenant, &search, MESSAGES_SHOWN, 0).await?;
    let mut rows = found.rows;
    rows.sort_by_key(|m| m.id);
    let quoted = match numeric(&p.reply_to) {
        Some(id) => match rows.iter().find(|m| m.id == id) {
            Some(m) => Some(bubble(m, me)),
            None => v
                .state
                .messages
                .message(tenant, id)
                .await
                .ok()
                .map(|(m, _)| m)
                .filter(|m| m.device_id == device_id && m.chat == chat)
                .map(|m| bubble(&m, me)),
        },
        None => None,
    };
    let messages = Value::Array(rows.iter().map(|m| bubble(m, me)).collect());
    Ok(Conversation { head, messages, quoted, device_phone })
}

/// One message as a conversation shows it: the API's view, its time in the tenant's zone and
/// a map link for a location.
fn bubble(m: &MessageRow, me: &Viewer) -> Value {
    let map_url = m.details().location.map(|l| l.map_url());
    let mut out = as_value(MessageOut::of(m));
    localize(&mut out, &["created_at"], me);
    if let (Some(url), Some(location)) = (map_url, out.get_mut("location")) {
        location["map_url"] = Value::String(url);
    }
    out
}

impl Typed {
    fn common(p: &Params) -> SendCommon {
        SendCommon {
            device: p.device.clone(),
            to: p.chat.clone(),
            reply_to: Some(p.reply_to.clone()).filter(|r| !r.is_empty()),
            ..SendCommon::default()
        }
    }
}

/// Where a reply ends: back in the conversation at the new message, or the page again with
/// the error next to the box that was sent and what was typed in it.
async fn replied(
    v: &Visitor,
    me: &Viewer,
    p: &Params,
    sent: Result<MessageRow, ApiError>,
    typed: &Typed,
) -> Response {
    match sent.map_err(ApiFailure::from) {
        Ok(m) => Redirect::to(&format!("/chats?{}#m-{}", p.link(&p.chat, &[]), m.id)).into_response(),
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            inbox_page(v, me, p, status, Some(f.text(v)), typed).await
        }
    }
}

/// Sends a text into the open conversation, quoting `reply_to` when given.
pub async fn reply(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let p = Params::of_form(&form);
    let typed = Typed { form: "text", text: form.get("text").into(), ..Typed::default() };
    let send = TextSend { common: Typed::common(&p), text: typed.text.clone(), ..TextSend::default() };
    let sent = v.state.messages.send_text(&v.tenant(&me), send).await;
    replied(v, &me, &p, sent, &typed).await
}

/// Sends an uploaded file with its caption into the open conversation.
pub async fn reply_media(upload: FileForm) -> Response {
    let form = &upload.form;
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let p = Params::of_form(form);
    let typed = Typed { form: "media", caption: form.get("caption").into(), ..Typed::default() };
    let sent = match upload.file("file") {
        Some(file) => {
            let send = MediaSend {
                common: Typed::common(&p),
                caption: Some(typed.caption.clone()).filter(|c| !c.is_empty()),
                filename: None,
                kind: None,
                source: MediaSource::Upload {
                    bytes: file.bytes.clone(),
                    filename: Some(file.filename.clone()).filter(|n| !n.is_empty()),
                    content_type: Some(file.content_type.clone()).filter(|t| !t.is_empty()),
                },
            };
            v.state.messages.send_media(&v.tenant(&me), send).await
        }
        None => Err(ApiError::validation("file", "choose a file to send")),
    };
    replied(v, &me, &p, sent, &typed).await
}

/// A coordinate as typed: decimal degrees, with a point or a decimal comma; anything else is
/// not a number, which the location check refuses in its own words.
fn coordinate(raw: &str) -> f64 {
    raw.trim().replace(',', ".").parse().unwrap_or(f64::NAN)
}

/// Sends a location (and a place name when given) into the open conversation.
pub async fn reply_location(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let p = Params::of_form(&form);
    let typed = Typed {
        form: "location",
        latitude: form.get("latitude").into(),
        longitude: form.get("longitude").into(),
        place_name: form.get("name").into(),
        ..Typed::default()
    };
    let location = Location {
        latitude: coordinate(&typed.latitude),
        longitude: coordinate(&typed.longitude),
        name: Some(typed.place_name.trim().to_string()).filter(|n| !n.is_empty()),
        address: None,
    };
    let sent =
        v.state.messages.send_shared(&v.tenant(&me), Typed::common(&p), Shared::Location(location)).await;
    replied(v, &me, &p, sent, &typed).await
}

/// A device's groups (`?device=<id>`; the first device when none is chosen): subject, size
/// and whether the device is an admin.
pub async fn groups(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let given = form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == "device")
        .map(|(_, d)| d.trim().to_string())
        .filter(|d| !d.is_empty());
    let devices = match device_list(&v, &me).await {
        Ok(d) => d,
        Err(f) => return failure_page(&v, &f),
    };
    let device = match given {
        Some(d) => match numeric(&d) {
            Some(id) => Some(id),
            None => return not_found(&v),
        },
        None => devices.as_array().and_then(|all| all.first()).and_then(|d| d["id"].as_i64()),
    };
    let (list, cached_at, error) = match device {
        Some(id) => {
            match v.state.groups.list(&v.tenant(&me), &id.to_string()).await.map_err(ApiFailure::from) {
                Ok(found) => {
                    let cached = found.iter().filter_map(|g| g.cached_at).max();
                    let rows: Vec<Value> = found
                        .iter()
                        .map(|g| {
                            json!({
                                "jid": g.info.jid, "subject": g.info.subject,
                                "size": g.info.participants.len(), "is_admin": g.is_admin,
                                "href": format!("/groups/{id}/{}", g.info.jid),
                            })
                        })
                        .collect();
                    (rows, cached, None)
                }
                Err(f) if f.status == StatusCode::NOT_FOUND => return not_found(&v),
                Err(f) => (Vec::new(), None, Some(f.text(&v))),
            }
        }
        None => (Vec::new(), None, None),
    };
    let cached_at = cached_at.map(|at| local_time(&crate::time::rfc3339_ms(at), tz_of(&me)));
    render(
        &v,
        StatusCode::OK,
        "groups.html",
        context! { nav => "groups", devices, device, groups => list, cached_at, error },
    )
}

/// One group: its members (number or LID, role) and, when the device is an admin, the
/// invite link.
pub async fn group(Signed { v, me }: Signed, Path((device, jid)): Path<(String, String)>) -> Response {
    let Some(device) = numeric(&device) else { return not_found(&v) };
    let tenant = v.tenant(&me);
    let reference = device.to_string();
    let g = match v.state.groups.get(&tenant, &reference, &jid).await {
        Ok(g) => g,
        Err(e) => return failure_page(&v, &e.into()),
    };
    let invite = if g.is_admin && g.cached_at.is_none() {
        match v.state.groups.invite(&tenant, &reference, &g.info.jid, false).await {
            Ok(link) => Some(link),
            Err(e) => {
                tracing::warn!(error = %e, "group page: no invite link");
                None
            }
        }
    } else {
        None
    };
    let members: Vec<Value> = g
        .info
        .participants
        .iter()
        .map(|m| json!({ "phone": m.phone, "lid": m.lid, "role": m.role }))
        .collect();
    let cached_at = g.cached_at.map(|at| local_time(&crate::time::rfc3339_ms(at), tz_of(&me)));
    let chat = format!("/chats?{}", query(&[("device", &reference), ("chat", &g.info.jid)]));
    let group = json!({
        "jid": g.info.jid, "subject": g.info.subject, "description": g.info.description,
        "is_admin": g.is_admin, "size": members.len(),
    });
    render(
        &v,
        StatusCode::OK,
        "group.html",
        context! { nav => "groups", device, group, members, invite, cached_at, chat },
    )
}
