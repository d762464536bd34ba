//! The tenant's pages: home, devices (with live pairing and the pair-code, reset, logout and
//! delete actions), send message (text, media, a location or a contact), history (with every
//! kind of message and what happened to it).
//!
//! Each page calls the services as the logged-in tenant and renders what they answer as the
//! API shows it; an error is shown next to the form or as a page in the visitor's language.

use axum::extract::{Path, RawQuery};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{TimeZone, Utc};
use minijinja::context;
use serde_json::{json, Value};

use super::session::{FileForm, Form, Signed, Viewer, Visitor};
use super::{local_time, not_found, render, tz_of, ApiFailure};
use crate::api::devices::DeviceOut;
use crate::api::messages::message_detail;
use crate::content::{ContactCard, Location};
use crate::db::MessageRow;
use crate::devices::manager::Offered;
use crate::error::ApiError;
use crate::limits::{month_period, Resource};
use crate::messages::service::{HistorySearch, MediaSend, MediaSource, SendCommon, Shared, TextSend};
use crate::messages::view::{is_change, MessageOut};

/// The usage bars of the home page, in this order.
const RESOURCES: [Resource; 6] = [
    Resource::Devices,
    Resource::MessagesPerMonth,
    Resource::AutoReplies,
    Resource::ScheduledMessages,
    Resource::Plugins,
    Resource::WebhookEndpoints,
];

/// History rows per page.
const PAGE_SIZE: i64 = 25;

/// Message kinds, in the order the history's type filter offers them; each has a `kind_`
/// label.
pub(super) use crate::messages::service::KINDS;

/// Query string of `pairs`, skipping empty values.
pub(super) fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Rewrites the RFC 3339 times of `keys` in each object of `items` to the tenant's zone.
pub(super) fn localize(items: &mut Value, keys: &[&str], me: &Viewer) {
    let tz = tz_of(me);
    let mut fix = |item: &mut Value| {
        for key in keys {
            if let Some(s) = item.get(*key).and_then(Value::as_str) {
                let local = local_time(s, tz);
                item[*key] = Value::String(local);
            }
        }
    };
    match items {
        Value::Array(list) => list.iter_mut().for_each(&mut fix),
        other => fix(other),
    }
}

/// An API failure as a whole page (404 for another tenant's ids, a readable error otherwise).
pub(super) fn failure_page(v: &Visitor, f: &ApiFailure) -> Response {
    if f.status == StatusCode::NOT_FOUND {
        return not_found(v);
    }
    let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
    render(v, status, "error.html", context! { title => v.lang.t("error_title"), text => f.text(v) })
}

/// How many devices the pages list.
const DEVICES_LISTED: i64 = 100;

/// Rows as the API shows them, for the templates.
pub(super) fn as_json<T: serde::Serialize>(rows: impl IntoIterator<Item = T>) -> Value {
    Value::Array(rows.into_iter().filter_map(|r| serde_json::to_value(r).ok()).collect())
}

/// One row as the API shows it, for the templates.
pub(super) fn as_value<T: serde::Serialize>(row: T) -> Value {
    serde_json::to_value(row).unwrap_or_default()
}

pub(super) async fn device_list(v: &Visitor, me: &Viewer) -> Result<Value, ApiFailure> {
    let (devices, _) = v.state.devices.list(&v.tenant(me), DEVICES_LISTED, 0).await?;
    let mut list = as_json(devices.into_iter().map(DeviceOut::from));
    localize(&mut list, &["created_at", "updated_at"], me);
    Ok(list)
}

/// Home: devices with their status, usage against the package, today's counts, recent messages.
pub async fn home(Signed { v, me }: Signed) -> Response {
    let devices = match device_list(&v, &me).await {
        Ok(d) => d,
        Err(f) => return failure_page(&v, &f),
    };
    let tenant = v.tenant(&me);
    let report = async {
        let limits = v.state.limits.limits(tenant.id, &tenant.package).await?;
        let usage = v.state.limits.usage(tenant.id).await?;
        Ok::<_, crate::limits::LimitError>((limits, usage))
    };
    let (limits, used) = match report.await {
        Ok(l) => l,
        Err(e) => return failure_page(&v, &ApiError::from(e).into()),
    };
    let usage: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            let used = used.of(*r);
            let limit = limits.get(*r);
            let percent = limit.map(|l| if l <= 0 { 100 } else { (used * 100 / l).clamp(0, 100) });
            json!({ "key": r.name(), "used": used, "limit": limit, "percent": percent })
        })
        .collect();
    let tz = tz_of(&me);
    let midnight = Utc::now().with_timezone(&tz).date_naive().and_hms_opt(0, 0, 0).unwrap_or_default();
    let since = tz.from_local_datetime(&midnight).earliest().map(crate::time::rfc3339).unwrap_or_default();
    let mut today = serde_json::Map::new();
    for direction in ["out", "in"] {
        let search = HistorySearch {
            direction: Some(direction.into()),
            since: Some(since.clone()),
            ..HistorySearch::default()
        };
        let count = match v.state.messages.history(&tenant, &search, 1, 0).await {
            Ok(found) if found.exact => found.total.to_string(),
            Ok(found) => format!("{}+", found.total),
            Err(e) => return failure_page(&v, &e.into()),
        };
        today.insert(direction.to_string(), Value::String(count));
    }
    let (mut recent, newest) = match v.state.messages.history(&tenant, &HistorySearch::default(), 10, 0).await
    {
        Ok(found) => (as_json(found.rows.iter().map(MessageOut::of)), newest_id(&found.rows)),
        Err(e) => return failure_page(&v, &e.into()),
    };
    localize(&mut recent, &["created_at"], &me);
    let live = format!("/live/messages?devices=1&after={newest}");
    let (_, _, period_end) = month_period(Utc::now());
    let period_end = local_time(&crate::time::rfc3339(period_end), tz);
    render(
        &v,
        StatusCode::OK,
        "home.html",
        context! {
            nav => "home", devices, usage, today, recent, package => tenant.package, period_end, live,
            kinds => KINDS,
        },
    )
}

/// The highest message id in a list (0 when empty): live updates start after it.
fn newest_id(messages: &[MessageRow]) -> i64 {
    messages.iter().map(|m| m.id).max().unwrap_or(0)
}

/// The device list with the form to add one.
pub async fn devices(Signed { v, me }: Signed) -> Response {
    devices_page(&v, &me, StatusCode::OK, None, "", "").await
}

async fn devices_page(
    v: &Visitor,
    me: &Viewer,
    status: StatusCode,
    error: Option<String>,
    phone: &str,
    name: &str,
) -> Response {
    match device_list(v, me).await {
        Ok(devices) => {
            render(v, status, "devices.html", context! { nav => "devices", devices, error, phone, name })
        }
        Err(f) => failure_page(v, &f),
    }
}

/// Adds a device (within the package's limit) and opens its pairing page.
pub async fn add_device(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    match v.state.devices.create(&v.tenant(&me), form.get("phone"), Some(form.get("name"))).await {
        Ok(device) => Redirect::to(&format!("/devices/{}", device.row.id)).into_response(),
        Err(e) => {
            let f = ApiFailure::from(e);
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            devices_page(v, &me, status, Some(f.text(v)), form.get("phone"), form.get("name")).await
        }
    }
}

/// Only numeric ids reach the API from a page URL (a phone number there would also match).
pub(super) fn numeric(id: &str) -> Option<i64> {
    id.parse::<i64>().ok().filter(|n| *n > 0)
}

/// One device: its status, live, and its rotating QR code until it is connected.
pub async fn device(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return not_found(&v) };
    device_page(&v, &me, id, StatusCode::OK, None, None).await
}

async fn device_page(
    v: &Visitor,
    me: &Viewer,
    id: i64,
    status: StatusCode,
    error: Option<String>,
    pair_code: Option<Offered>,
) -> Response {
    match v.state.devices.get(&v.tenant(me), &id.to_string()).await {
        Ok(device) => {
            let mut device = as_value(DeviceOut::from(device));
            localize(&mut device, &["created_at", "updated_at"], me);
            let code = pair_code.as_ref().map(|c| c.code.clone());
            let expires =
                pair_code.as_ref().map(|c| local_time(&crate::time::rfc3339(c.expires_at), tz_of(me)));
            render(
                v,
                status,
                "device.html",
                context! { nav => "devices", device, error, pair_code => code, pair_code_expires => expires },
            )
        }
        Err(e) => failure_page(v, &e.into()),
    }
}

/// A device action from its page: `pair-code` (shows the code), `reset`, `logout`, `delete`.
pub async fn device_action(Path((id, action)): Path<(String, String)>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return not_found(v) };
    let tenant = v.tenant(&me);
    let reference = id.to_string();
    let devices = &v.state.devices;
    let done = match action.as_str() {
        "pair-code" => match devices.pair_code(&tenant, &reference, None).await {
            Ok(code) => return device_page(v, &me, id, StatusCode::OK, None, Some(code)).await,
            Err(e) => Err(e),
        },
        "reset" => devices.reset(&tenant, &reference).await.map(|_| format!("/devices/{id}")),
        "logout" => devices.logout(&tenant, &reference).await.map(|_| format!("/devices/{id}")),
        "delete" => devices.delete(&tenant, &reference).await.map(|()| "/devices".to_string()),
        _ => return not_found(v),
    };
    match done.map_err(ApiFailure::from) {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => not_found(v),
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            device_page(v, &me, id, status, Some(f.text(v)), None).await
        }
    }
}

/// The device's Server-Sent Events (status changes and QR rotations), as the API sends them.
pub async fn device_events(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return not_found(&v) };
    match v.state.devices.find(&v.tenant(&me), &id.to_string()).await {
        Ok(row) => crate::api::devices::event_stream(&v.state, &row).into_response(),
        Err(_) => not_found(&v),
    }
}

/// The device's current QR code as an SVG image (409 when it is already connected).
pub async fn device_qr(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return not_found(&v) };
    let svg = match v.state.devices.qr(&v.tenant(&me), &id.to_string()).await {
        Ok(offered) => crate::devices::qr::svg(&offered.code).map_err(ApiError::internal),
        Err(e) => Err(e),
    };
    match svg.map_err(ApiFailure::from) {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg)
            .into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => not_found(&v),
        Err(f) => (f.status, [(header::CACHE_CONTROL, "no-store")]).into_response(),
    }
}

/// The send page (`?sent=<id>` after a send): text, media, location and contact forms.
pub async fn send_page(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let sent = form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == "sent")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    send_form(&v, &me, StatusCode::OK, None, sent, &Default::default()).await
}

/// What the send page's forms were filled with, shown again with an error.
#[derive(Default)]
struct SendValues {
    /// The form that was sent (`text`, `media`, `location`, `contact`): its error shows there.
    form: &'static str,
    device: String,
    to: String,
    text: String,
    latitude: String,
    longitude: String,
    place_name: String,
    place_address: String,
    contact_name: String,
    contact_phone: String,
}

impl SendValues {
    /// The device and recipient every form has.
    fn of(form: &Form, which: &'static str) -> SendValues {
        SendValues {
            form: which,
            device: form.get("device").into(),
            to: form.get("to").into(),
            ..SendValues::default()
        }
    }

    fn common(&self) -> SendCommon {
        SendCommon { device: self.device.clone(), to: self.to.clone(), ..SendCommon::default() }
    }
}

async fn send_form(
    v: &Visitor,
    me: &Viewer,
    status: StatusCode,
    error: Option<String>,
    sent: Option<i64>,
    values: &SendValues,
) -> Response {
    match device_list(v, me).await {
        Ok(devices) => render(
            v,
            status,
            "send.html",
            context! {
                nav => "send", devices, error, sent, form => values.form,
                device => values.device, to => values.to, text => values.text,
                latitude => values.latitude, longitude => values.longitude,
                place_name => values.place_name, place_address => values.place_address,
                contact_name => values.contact_name, contact_phone => values.contact_phone,
            },
        ),
        Err(f) => failure_page(v, &f),
    }
}

/// Where a send ends: the confirmation on success, else the page again with the error next to
/// the form that was sent and what was typed in it.
async fn sent_or_form(
    v: &Visitor,
    me: &Viewer,
    sent: Result<MessageRow, ApiError>,
    values: &SendValues,
) -> Response {
    match sent.map_err(ApiFailure::from) {
        Ok(m) => Redirect::to(&format!("/send?sent={}", m.id)).into_response(),
        Err(mut f) => {
            // A contact's fields are named as the form names them, not by their place in the
            // API's list of cards.
            if let Some(field) = f.field.as_mut() {
                if let Some(part) = field.strip_prefix("contacts[0].") {
                    *field = v.lang.t(&format!("contact_{part}")).to_string();
                }
            }
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            send_form(v, me, status, Some(f.text(v)), None, values).await
        }
    }
}

/// Sends a text through the API's send path; back to the form with the result.
pub async fn send(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let values = SendValues { text: form.get("text").into(), ..SendValues::of(&form, "text") };
    let send = TextSend { common: values.common(), text: values.text.clone(), ..TextSend::default() };
    let sent = v.state.messages.send_text(&v.tenant(&me), send).await;
    sent_or_form(v, &me, sent, &values).await
}

/// Sends an uploaded image or document with its caption through the API's send-media path.
pub async fn send_media(upload: FileForm) -> Response {
    let form = &upload.form;
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let values = SendValues::of(form, "media");
    let sent = match upload.file("file") {
        Some(file) => {
            let send = MediaSend {
                common: values.common(),
                caption: Some(form.get("caption").to_string()),
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
        None => {
            Err(ApiError::validation("file", "give the media as a multipart `file`, a `url` or `base64`"))
        }
    };
    sent_or_form(v, &me, sent, &values).await
}

/// A coordinate as typed: decimal degrees, with a point or a decimal comma. Anything else is
/// not a number, which the location check refuses in its own words.
fn coordinate(raw: &str) -> f64 {
    raw.trim().replace(',', ".").parse().unwrap_or(f64::NAN)
}

/// Sends a location (coordinates, and a place name and address when given) through the
/// API's send-location path.
pub async fn send_location(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let values = SendValues {
        latitude: form.get("latitude").into(),
        longitude: form.get("longitude").into(),
        place_name: form.get("name").into(),
        place_address: form.get("address").into(),
        ..SendValues::of(&form, "location")
    };
    let location = Location {
        latitude: coordinate(&values.latitude),
        longitude: coordinate(&values.longitude),
        name: Some(values.place_name.clone()),
        address: Some(values.place_address.clone()),
    };
    let sent =
        v.state.messages.send_shared(&v.tenant(&me), values.common(), Shared::Location(location)).await;
    sent_or_form(v, &me, sent, &values).await
}

/// Sends one contact card (a name and a phone number) through the API's send-contact path.
pub async fn send_contact(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let values = SendValues {
        contact_name: form.get("contact_name").into(),
        contact_phone: form.get("contact_phone").into(),
        ..SendValues::of(&form, "contact")
    };
    let card = ContactCard { name: values.contact_name.clone(), phone: values.contact_phone.clone() };
    let sent =
        v.state.messages.send_shared(&v.tenant(&me), values.common(), Shared::Contacts(vec![card])).await;
    sent_or_form(v, &me, sent, &values).await
}

/// The history filters the page understands, in a fixed order.
const FILTERS: [&str; 5] = ["device", "direction", "status", "type", "q"];

fn filters(raw: &str) -> Vec<(String, String)> {
    let given: Vec<(String, String)> =
        form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    FILTERS
        .iter()
        .map(|f| {
            let value =
                given.iter().find(|(k, _)| k == f).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
            (f.to_string(), value)
        })
        .collect()
}

fn filter_query(filters: &[(String, String)], extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = filters.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.extend_from_slice(extra);
    query(&pairs)
}

/// History: filters, pages of 25, links to details and to the CSV of the same filter.
pub async fn history(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let filters = filters(&raw);
    let offset = form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == "offset")
        .and_then(|(_, v)| v.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let devices = match device_list(&v, &me).await {
        Ok(d) => d,
        Err(f) => return failure_page(&v, &f),
    };
    let listed = match crate::api::extract::page(Some(PAGE_SIZE), Some(offset)) {
        Ok((limit, offset)) => {
            v.state.messages.history(&v.tenant(&me), &search_of(&filters), limit, offset).await
        }
        Err(e) => Err(e),
    };
    let (messages, shown, newest, total, exact, error) = match listed.map_err(ApiFailure::from) {
        Ok(found) => {
            let mut rows = as_json(found.rows.iter().map(MessageOut::of));
            localize(&mut rows, &["created_at"], &me);
            (rows, found.rows.len() as i64, newest_id(&found.rows), found.total, found.exact, None)
        }
        Err(f) if f.status.is_client_error() => (json!([]), 0, 0, 0, true, Some(f.text(&v))),
        Err(f) => return failure_page(&v, &f),
    };
    let prev =
        (offset > 0).then(|| filter_query(&filters, &[("offset", &(offset - PAGE_SIZE).max(0).to_string())]));
    let next = (offset + shown < total || (!exact && shown == PAGE_SIZE))
        .then(|| filter_query(&filters, &[("offset", &(offset + PAGE_SIZE).to_string())]));
    let f: std::collections::BTreeMap<String, String> = filters.iter().cloned().collect();
    let newest = newest.to_string();
    let live =
        (offset == 0).then(|| format!("/live/messages?{}", filter_query(&filters, &[("after", &newest)])));
    render(
        &v,
        StatusCode::OK,
        "history.html",
        context! {
            nav => "history", devices, messages, error, f,
            total => if exact { total.to_string() } else { format!("{total}+") },
            from => if shown > 0 { offset + 1 } else { 0 }, to => offset + shown,
            prev, next, export => filter_query(&filters, &[]), live, kinds => KINDS,
        },
    )
}

/// One message with its status history.
pub async fn message(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return not_found(&v) };
    match v.state.messages.message(&v.tenant(&me), id).await {
        Ok((row, history)) => {
            let map_url = row.details().location.map(|l| l.map_url());
            let mut m = as_value(message_detail(row, history));
            localize(&mut m, &["created_at", "updated_at", "edited_at", "revoked_at", "read_at"], &me);
            if let Some(reactions) = m.get_mut("reactions") {
                localize(reactions, &["at"], &me);
            }
            if let (Some(url), Some(location)) = (map_url, m.get_mut("location")) {
                location["map_url"] = Value::String(url);
            }
            if let Some(history) = m.get_mut("status_history") {
                localize(history, &["at"], &me);
                readable_changes(history);
            }
            render(&v, StatusCode::OK, "message.html", context! { nav => "history", m })
        }
        Err(e) => failure_page(&v, &e.into()),
    }
}

/// The bytes of a message's media for the signed-in tenant (the detail page's picture, player
/// or download link), served as the API serves them.
pub async fn message_media(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return not_found(&v) };
    match v.state.messages.media(&v.tenant(&me), id).await {
        Ok(media) => crate::api::actions::media_response(media),
        Err(e) => failure_page(&v, &e.into()),
    }
}

/// Status-history entries that record a change (a reaction, an edit, a vote, ...) carry
/// what changed as JSON; the page shows its parts (`change`) rather than the JSON text.
fn readable_changes(history: &mut Value) {
    let Some(entries) = history.as_array_mut() else { return };
    for entry in entries {
        if !entry.get("status").and_then(Value::as_str).is_some_and(is_change) {
            continue;
        }
        let change =
            entry.get("detail").and_then(Value::as_str).and_then(|d| serde_json::from_str::<Value>(d).ok());
        entry["change"] = change.filter(Value::is_object).unwrap_or(Value::Null);
        entry["detail"] = Value::Null;
    }
}

/// The CSV of the current filter, streamed as the API's export does.
pub async fn export_history(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let search = search_of(&filters(&raw.unwrap_or_default()));
    let tenant = v.tenant(&me);
    match v.state.messages.export(&tenant, &search).await {
        Ok(filter) => crate::api::messages::export_response(&v.state, &tenant, filter),
        Err(e) => failure_page(&v, &e.into()),
    }
}

/// The history filters of the page as the message service takes them.
fn search_of(filters: &[(String, String)]) -> HistorySearch {
    let get = |name: &str| filters.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    HistorySearch {
        device: get("device"),
        direction: get("direction"),
        status: get("status"),
        kind: get("type"),
        q: get("q"),
        ..HistorySearch::default()
    }
}
