//! The contacts pages.
//!
//! `/contacts` lists the people the tenant's devices have direct chats with (name, number or
//! LID, device, latest chat, blocked), with search, a device filter and pages of 25, as the
//! contacts API lists them. `/contacts/{device}/{jid}` shows one contact with the profile
//! WhatsApp shows (about text, picture, business and its verified name), which the contacts
//! service reads through the device when it has not read it in the last day (`?refresh=1`:
//! now), with buttons to block or unblock it and a link to its chat in the inbox.

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{device_list, failure_page, numeric, query};
use super::session::{Form, Signed, Viewer, Visitor};
use super::{local_time, not_found, render, tz_of, ApiFailure};
use crate::devices::contacts::Contact;

/// Contacts per page.
const PAGE_SIZE: i64 = 25;

/// A JID as one segment of a page's path: unreserved characters and `@` as they are, the
/// rest percent-encoded (JIDs hold none of them, but the list shows what the chats hold).
fn path_segment(jid: &str) -> String {
    jid.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A contact as the pages show it: the API's fields, times in the tenant's zone, the page's
/// link and the inbox link of its chat.
fn contact_value(c: Contact, me: &Viewer) -> Value {
    let tz = tz_of(me);
    let when = |at: Option<i64>| at.map(|at| local_time(&crate::time::rfc3339_ms(at), tz));
    let r = c.row;
    let device = r.device_id.to_string();
    json!({
        "device_id": r.device_id, "jid": r.jid, "phone": c.phone, "lid": c.lid, "name": r.name,
        "about": r.about, "picture_url": r.picture_url, "business": r.business,
        "business_name": r.business_name, "blocked": r.blocked, "last_at": when(r.last_at),
        "fetched_at": when(r.fetched_at),
        "href": format!("/contacts/{device}/{}", path_segment(&r.jid)),
        "chat_href": format!("/chats?{}", query(&[("device", &device), ("chat", &r.jid)])),
    })
}

/// The list: `?device=<id>&q=<text>&offset=<n>`.
pub async fn contacts(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let given = |name: &str| {
        form_urlencoded::parse(raw.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let (device, q) = (given("device"), given("q"));
    if !device.is_empty() && numeric(&device).is_none() {
        return not_found(&v);
    }
    let offset = given("offset").parse::<i64>().unwrap_or(0).max(0);
    let devices = match device_list(&v, &me).await {
        Ok(d) => d,
        Err(f) => return failure_page(&v, &f),
    };
    let listed = match crate::api::extract::page(Some(PAGE_SIZE), Some(offset)) {
        Ok((limit, offset)) => {
            let filter = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
            let (device, q) = (filter(&device), filter(&q));
            v.state.contacts.list(&v.tenant(&me), device.as_deref(), q.as_deref(), limit, offset).await
        }
        Err(e) => Err(e),
    };
    let (rows, total, status, error) = match listed.map_err(ApiFailure::from) {
        Ok((rows, total)) => (rows, total, StatusCode::OK, None),
        // Another tenant's device, or one that is gone.
        Err(f) if f.status == StatusCode::NOT_FOUND => return not_found(&v),
        // A search the service refuses: the page says why, above an empty list.
        Err(f) if f.status.is_client_error() => (Vec::new(), 0, f.status, Some(f.text(&v))),
        Err(f) => return failure_page(&v, &f),
    };
    let several = devices.as_array().is_some_and(|d| d.len() > 1);
    let shown = rows.len() as i64;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|c| {
            let device_name = several
                .then(|| {
                    devices.as_array()?.iter().find(|d| d["id"] == c.row.device_id).map(|d| d["name"].clone())
                })
                .flatten();
            let mut row = contact_value(c, &me);
            row["device_name"] = device_name.unwrap_or(Value::Null);
            row
        })
        .collect();
    let link = |offset: i64| {
        let offset = offset.to_string();
        query(&[("device", &device), ("q", &q), ("offset", &offset)])
    };
    let prev = (offset > 0).then(|| link((offset - PAGE_SIZE).max(0)));
    let next = (offset + shown < total).then(|| link(offset + PAGE_SIZE));
    render(
        &v,
        status,
        "contacts.html",
        context! {
            nav => "contacts", devices, contacts => list, total, error, prev, next,
            from => if shown > 0 { offset + 1 } else { 0 }, to => offset + shown,
            f => context! { device, q },
        },
    )
}

/// One contact (`?refresh=1`: its profile read from WhatsApp now).
pub async fn contact(
    Signed { v, me }: Signed,
    Path((device, jid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(device) = numeric(&device) else { return not_found(&v) };
    let raw = raw.unwrap_or_default();
    let refresh = form_urlencoded::parse(raw.as_bytes()).any(|(k, v)| k == "refresh" && v == "1");
    contact_page(&v, &me, device, &jid, refresh, StatusCode::OK, None).await
}

async fn contact_page(
    v: &Visitor,
    me: &Viewer,
    device: i64,
    jid: &str,
    refresh: bool,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let tenant = v.tenant(me);
    let found = v.state.contacts.get(&tenant, &device.to_string(), jid, refresh).await;
    let contact = match found.map_err(ApiFailure::from) {
        Ok(c) => contact_value(c, me),
        Err(f) => return failure_page(v, &f),
    };
    let device_row = match v.state.devices.find(&tenant, &device.to_string()).await {
        Ok(d) => json!({ "id": d.id, "name": d.name, "phone": d.phone }),
        Err(e) => return failure_page(v, &e.into()),
    };
    render(
        v,
        status,
        "contact.html",
        context! { nav => "contacts", c => contact, device => device_row, error },
    )
}

/// Blocks (`block`) or unblocks (`unblock`) a contact through the device, then shows the
/// contact again; an error (the device is not connected) shows on the contact's page.
pub async fn contact_action(
    Path((device, jid, action)): Path<(String, String, String)>,
    form: Form,
) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(device) = numeric(&device) else { return not_found(v) };
    let blocked = match action.as_str() {
        "block" => true,
        "unblock" => false,
        _ => return not_found(v),
    };
    let done = v.state.contacts.block(&v.tenant(&me), &device.to_string(), &jid, blocked).await;
    match done.map_err(ApiFailure::from) {
        // Blocking goes by number: a LID's contact is shown under its number afterwards.
        Ok(c) => Redirect::to(&format!("/contacts/{device}/{}", path_segment(&c.row.jid))).into_response(),
        // The contact's page says why (another tenant's device is not found there either).
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            contact_page(v, &me, device, &jid, false, status, Some(f.text(v))).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::path_segment;

    #[test]
    fn jids_stay_readable_in_paths_and_anything_else_is_encoded() {
        assert_eq!(path_segment("6281234567890@s.whatsapp.net"), "6281234567890@s.whatsapp.net");
        assert_eq!(path_segment("123456789012345@lid"), "123456789012345@lid");
        assert_eq!(path_segment("a/b c?d#é"), "a%2Fb%20c%3Fd%23%C3%A9");
    }
}
