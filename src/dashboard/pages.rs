//! The tenant's pages: home, devices (with live pairing and the pair-code, reset, logout and
//! delete actions), send message, history.
//!
//! Each page asks the tenant API (see the module docs of `dashboard`) and renders the answer;
//! an API error is shown next to the form or as a page in the visitor's language.

use axum::extract::{Path, RawQuery};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{TimeZone, Utc};
use minijinja::context;
use serde_json::{json, Value};

use super::session::{FileForm, Form, Signed, Viewer, Visitor};
use super::{local_time, not_found, render, tz_of, ApiFailure};

/// The usage bars of the home page, in this order.
const RESOURCES: [&str; 6] =
    ["devices", "messages_per_month", "auto_replies", "scheduled_messages", "plugins", "webhook_endpoints"];

/// History rows per page.
const PAGE_SIZE: i64 = 25;

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

pub(super) async fn device_list(v: &Visitor, me: &Viewer) -> Result<Value, ApiFailure> {
    let mut page = v.dash.json(v, me, Method::GET, "/api/user/devices?limit=100", None).await?;
    localize(&mut page["data"], &["created_at", "updated_at"], me);
    Ok(page["data"].take())
}

/// Home: devices with their status, usage against the package, today's counts, recent messages.
pub async fn home(Signed { v, me }: Signed) -> Response {
    let devices = match device_list(&v, &me).await {
        Ok(d) => d,
        Err(f) => return failure_page(&v, &f),
    };
    let limits = match v.dash.json(&v, &me, Method::GET, "/api/user/limits", None).await {
        Ok(l) => l,
        Err(f) => return failure_page(&v, &f),
    };
    let usage: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            let used = limits["usage"][*r].as_i64().unwrap_or(0);
            let limit = limits["limits"][*r].as_i64();
            let percent = limit.map(|l| if l <= 0 { 100 } else { (used * 100 / l).clamp(0, 100) });
            json!({ "key": r, "used": used, "limit": limit, "percent": percent })
        })
        .collect();
    let tz = tz_of(&me);
    let midnight = Utc::now().with_timezone(&tz).date_naive().and_hms_opt(0, 0, 0).unwrap_or_default();
    let since = tz
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc).to_rfc3339())
        .unwrap_or_default();
    let mut today = serde_json::Map::new();
    for direction in ["out", "in"] {
        let q = query(&[("direction", direction), ("since", &since), ("limit", "1")]);
        let count =
            match v.dash.json(&v, &me, Method::GET, &format!("/api/user/chat-history?{q}"), None).await {
                Ok(p) => {
                    let total = p["total"].as_i64().unwrap_or(0);
                    if p["total_exact"].as_bool().unwrap_or(true) {
                        total.to_string()
                    } else {
                        format!("{total}+")
                    }
                }
                Err(f) => return failure_page(&v, &f),
            };
        today.insert(direction.to_string(), Value::String(count));
    }
    let mut recent = match v.dash.json(&v, &me, Method::GET, "/api/user/chat-history?limit=10", None).await {
        Ok(p) => p["data"].clone(),
        Err(f) => return failure_page(&v, &f),
    };
    localize(&mut recent, &["created_at"], &me);
    let live = format!("/live/messages?devices=1&after={}", newest_id(&recent));
    let period_end = limits["period_end"].as_str().map(|s| local_time(s, tz)).unwrap_or_default();
    render(
        &v,
        StatusCode::OK,
        "home.html",
        context! { nav => "home", devices, usage, today, recent, package => limits["package"].clone(), period_end, live },
    )
}

/// The highest message id in a list (0 when empty): live updates start after it.
fn newest_id(messages: &Value) -> i64 {
    messages.as_array().into_iter().flatten().filter_map(|m| m["id"].as_i64()).max().unwrap_or(0)
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
    let body = json!({ "phone": form.get("phone"), "name": form.get("name") });
    match v.dash.json(v, &me, Method::POST, "/api/user/devices", Some(&body)).await {
        Ok(device) => {
            Redirect::to(&format!("/devices/{}", device["id"].as_i64().unwrap_or(0))).into_response()
        }
        Err(f) => {
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
    pair_code: Option<Value>,
) -> Response {
    match v.dash.json(v, me, Method::GET, &format!("/api/user/devices/{id}"), None).await {
        Ok(mut device) => {
            localize(&mut device, &["created_at", "updated_at"], me);
            let code = pair_code.as_ref().map(|c| c["code"].clone());
            let expires =
                pair_code.as_ref().and_then(|c| c["expires_at"].as_str()).map(|t| local_time(t, tz_of(me)));
            render(
                v,
                status,
                "device.html",
                context! { nav => "devices", device, error, pair_code => code, pair_code_expires => expires },
            )
        }
        Err(f) => failure_page(v, &f),
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
    let (method, uri, body) = match action.as_str() {
        "pair-code" => (Method::POST, format!("/api/user/devices/{id}/pair-code"), None),
        "reset" => {
            (Method::POST, "/api/reset-session".to_string(), Some(json!({ "device": id.to_string() })))
        }
        "logout" => (Method::POST, format!("/api/user/devices/{id}/logout"), None),
        "delete" => (Method::DELETE, format!("/api/user/devices/{id}"), None),
        _ => return not_found(v),
    };
    match v.dash.json(v, &me, method, &uri, body.as_ref()).await {
        Ok(_) if action == "delete" => Redirect::to("/devices").into_response(),
        Ok(code) if action == "pair-code" => device_page(v, &me, id, StatusCode::OK, None, Some(code)).await,
        Ok(_) => Redirect::to(&format!("/devices/{id}")).into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => not_found(v),
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            device_page(v, &me, id, status, Some(f.text(v)), None).await
        }
    }
}

/// The device's Server-Sent Events (status changes and QR rotations), from the API.
pub async fn device_events(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return not_found(&v) };
    let response = v.dash.call(&v, &me, Method::GET, &format!("/api/user/devices/{id}/events"), None).await;
    if response.status().is_success() {
        response
    } else {
        not_found(&v)
    }
}

/// The device's current QR code as an SVG image (409 when it is already connected).
pub async fn device_qr(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return not_found(&v) };
    match v.dash.json(&v, &me, Method::GET, &format!("/api/user/devices/{id}/qr"), None).await {
        Ok(qr) => (
            [(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")],
            qr["svg"].as_str().unwrap_or_default().to_string(),
        )
            .into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => not_found(&v),
        Err(f) => (f.status, [(header::CACHE_CONTROL, "no-store")]).into_response(),
    }
}

/// The send form (`?sent=<id>` after a send).
pub async fn send_page(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let sent = form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == "sent")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    send_form(&v, &me, StatusCode::OK, None, sent, &Default::default()).await
}

#[derive(Default)]
struct SendValues {
    device: String,
    to: String,
    text: String,
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
            context! { nav => "send", devices, error, sent, device => values.device, to => values.to, text => values.text },
        ),
        Err(f) => failure_page(v, &f),
    }
}

/// Sends a text through the API's send path; back to the form with the result.
pub async fn send(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let values = SendValues {
        device: form.get("device").into(),
        to: form.get("to").into(),
        text: form.get("text").into(),
    };
    let body = json!({ "device": values.device, "to": values.to, "text": values.text });
    match v.dash.json(v, &me, Method::POST, "/api/send-message", Some(&body)).await {
        Ok(m) => Redirect::to(&format!("/send?sent={}", m["id"].as_i64().unwrap_or(0))).into_response(),
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            send_form(v, &me, status, Some(f.text(v)), None, &values).await
        }
    }
}

/// Sends an uploaded image or document with its caption through the API's send-media path.
pub async fn send_media(upload: FileForm) -> Response {
    let form = &upload.form;
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let values =
        SendValues { device: form.get("device").into(), to: form.get("to").into(), text: String::new() };
    let texts = [("device", form.get("device")), ("to", form.get("to")), ("caption", form.get("caption"))];
    let files: Vec<(&str, _)> = upload.file("file").map(|f| ("file", f)).into_iter().collect();
    match v.dash.upload(v, &me, "/api/send-media", &texts, &files).await {
        Ok(m) => Redirect::to(&format!("/send?sent={}", m["id"].as_i64().unwrap_or(0))).into_response(),
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            send_form(v, &me, status, Some(f.text(v)), None, &values).await
        }
    }
}

/// The history filters the page understands, in a fixed order.
const FILTERS: [&str; 4] = ["device", "direction", "status", "q"];

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
    let api_query =
        filter_query(&filters, &[("limit", &PAGE_SIZE.to_string()), ("offset", &offset.to_string())]);
    let (messages, total, exact, error) =
        match v.dash.json(&v, &me, Method::GET, &format!("/api/user/chat-history?{api_query}"), None).await {
            Ok(mut p) => {
                localize(&mut p["data"], &["created_at"], &me);
                let total = p["total"].as_i64().unwrap_or(0);
                (p["data"].take(), total, p["total_exact"].as_bool().unwrap_or(true), None)
            }
            Err(f) if f.status.is_client_error() => (json!([]), 0, true, Some(f.text(&v))),
            Err(f) => return failure_page(&v, &f),
        };
    let shown = messages.as_array().map(|a| a.len() as i64).unwrap_or(0);
    let prev =
        (offset > 0).then(|| filter_query(&filters, &[("offset", &(offset - PAGE_SIZE).max(0).to_string())]));
    let next = (offset + shown < total || (!exact && shown == PAGE_SIZE))
        .then(|| filter_query(&filters, &[("offset", &(offset + PAGE_SIZE).to_string())]));
    let f: std::collections::BTreeMap<String, String> = filters.iter().cloned().collect();
    let newest = newest_id(&messages).to_string();
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
            prev, next, export => filter_query(&filters, &[]), live,
        },
    )
}

/// One message with its status history.
pub async fn message(Signed { v, me }: Signed, Path(id): Path<String>) -> Response {
    let Some(id) = numeric(&id) else { return not_found(&v) };
    match v.dash.json(&v, &me, Method::GET, &format!("/api/user/chat-history/{id}"), None).await {
        Ok(mut m) => {
            localize(&mut m, &["created_at", "updated_at"], &me);
            localize(&mut m["status_history"], &["at"], &me);
            render(&v, StatusCode::OK, "message.html", context! { nav => "history", m })
        }
        Err(f) => failure_page(&v, &f),
    }
}

/// The CSV of the current filter, streamed by the API's export.
pub async fn export_history(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let q = filter_query(&filters(&raw.unwrap_or_default()), &[]);
    let response =
        v.dash.call(&v, &me, Method::GET, &format!("/api/user/chat-history/export.csv?{q}"), None).await;
    if response.status().is_success() {
        return response;
    }
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1024 * 1024).await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let f = ApiFailure {
        status,
        code: body["error"]["code"].as_str().unwrap_or("internal").into(),
        message: body["error"]["message"].as_str().unwrap_or("").into(),
        field: body["error"]["field"].as_str().map(str::to_string),
    };
    failure_page(&v, &f)
}
