//! Pairing and the life of a connection: QR codes (JSON, SVG, PNG), pair codes, the event
//! stream, logout, reset, the phone unlinking, dropped connections and restarts.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant, WAIT};

const PHONE: &str = "6281381830651";

/// Reads a Server-Sent Events response event by event.
pub(crate) struct EventStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl EventStream {
    pub(crate) async fn open(app: &TestApp, tenant: &TestTenant, device: i64) -> EventStream {
        let response = app
            .request(Method::GET, &format!("/api/user/devices/{device}/events"))
            .header("x-api-key", &tenant.api_key)
            .header("accept", "text/event-stream")
            // The harness client times whole requests out; a stream must outlive that.
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .expect("the event stream opens");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        EventStream { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event with a name: `(event, data)`. Comments (keep-alives) are skipped.
    async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(WAIT, async {
            loop {
                let normalised = self.buffer.replace("\r\n", "\n");
                if let Some(end) = normalised.find("\n\n") {
                    let block = normalised[..end].to_string();
                    self.buffer = normalised[end + 2..].to_string();
                    let mut name = None;
                    let mut data = Vec::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            name = Some(v.trim().to_string());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                        }
                    }
                    if let Some(name) = name {
                        let data = serde_json::from_str(&data.join("\n")).expect("event data is JSON");
                        return (name, data);
                    }
                    continue;
                }
                let chunk = self
                    .body
                    .next()
                    .await
                    .expect("the event stream stays open")
                    .expect("the event stream reads");
                self.buffer.push_str(std::str::from_utf8(&chunk).expect("events are UTF-8"));
            }
        })
        .await
        .expect("an event arrives in time")
    }

    /// Skips events until `accept` takes one; returns its data.
    pub(crate) async fn until(&mut self, mut accept: impl FnMut(&str, &Value) -> bool) -> Value {
        loop {
            let (name, data) = self.next().await;
            if accept(&name, &data) {
                return data;
            }
        }
    }
}

async fn create_device(app: &TestApp, tenant: &TestTenant, phone: &str) -> i64 {
    let (status, body) = app.post("/api/user/devices", &tenant.api_key, &json!({"phone": phone})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

async fn send(app: &TestApp, tenant: &TestTenant, device: i64) -> (StatusCode, Value) {
    app.post(
        "/api/send-message",
        &tenant.api_key,
        &json!({"device": device, "to": "6281234567890", "text": "halo"}),
    )
    .await
}

#[tokio::test]
async fn a_new_device_offers_a_qr_code_as_json_with_an_svg() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = create_device(&app, &tenant, PHONE).await;

    let (status, qr) = app.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{qr}");
    assert!(qr["qr"].as_str().is_some_and(|q| q.len() > 20), "{qr}");
    assert!(qr["svg"].as_str().is_some_and(|s| s.contains("<svg")), "{qr}");
    let expires = chrono::DateTime::parse_from_rfc3339(qr["expires_at"].as_str().unwrap())
        .expect("expires_at is an RFC 3339 time");
    assert!(expires > chrono::Utc::now(), "the code is still valid: {qr}");

    // Asking again while the code is valid shows the same code; the device waits for a scan.
    let (_, again) = app.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
    assert_eq!(again["qr"], qr["qr"]);
    app.wait_for_device_status(&tenant, id, "qr").await;
}

#[tokio::test]
async fn the_qr_code_is_a_png_when_the_client_accepts_one() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = create_device(&app, &tenant, PHONE).await;

    let response = app
        .request(Method::GET, &format!("/api/user/devices/{id}/qr"))
        .header("x-api-key", &tenant.api_key)
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    let png = response.bytes().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
    assert!(png.len() > 100);
}

#[tokio::test]
async fn scanning_the_qr_connects_the_device_and_then_no_qr_is_offered() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = app.pair_device(&tenant, PHONE).await;

    let device = app.wait_for_device_status(&tenant, id, "connected").await;
    assert_eq!(device["jid"], format!("{PHONE}@s.whatsapp.net"), "{device}");
    let (status, body) = app.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) =
        app.post(&format!("/api/user/devices/{id}/pair-code"), &tenant.api_key, &json!({})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    // The simulator refuses a second scan too: nothing is waiting for one.
    let (status, _) = app.admin_post("/api/admin/simulator/scan", &json!({"device": id})).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_pair_code_links_a_device_without_a_qr_scan() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = create_device(&app, &tenant, PHONE).await;

    let (status, body) =
        app.post(&format!("/api/user/devices/{id}/pair-code"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = body["code"].as_str().unwrap();
    assert_eq!(code.len(), 9, "ABCD-EFGH: {code}");
    assert_eq!(&code[4..5], "-", "{code}");
    assert!(chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).is_ok());

    // Without a body too (old clients post nothing).
    let response = app
        .request(Method::POST, &format!("/api/user/devices/{id}/pair-code"))
        .header("x-api-key", &tenant.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // The phone confirms the code: the device connects.
    let (status, body) = app.admin_post("/api/admin/simulator/scan", &json!({"device": id})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.wait_for_device_status(&tenant, id, "connected").await;
}

#[tokio::test]
async fn the_event_stream_shows_the_qr_code_and_then_the_connection() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = create_device(&app, &tenant, PHONE).await;

    let mut events = EventStream::open(&app, &tenant, id).await;
    let (first, data) = events.next().await;
    assert_eq!(first, "status", "the first event is the current status: {data}");
    assert_eq!(data["device_id"], id);

    let qr = events.until(|name, _| name == "qr").await;
    assert_eq!(qr["device_id"], id);
    assert!(qr["qr"].as_str().is_some_and(|q| !q.is_empty()), "{qr}");
    let (_, current) = app.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
    assert_eq!(current["qr"], qr["qr"], "the stream shows the code the API offers");

    let (status, _) = app.admin_post("/api/admin/simulator/scan", &json!({"device": id})).await;
    assert_eq!(status, StatusCode::OK);
    events.until(|name, data| name == "status" && data["status"] == "connected").await;
}

#[tokio::test]
async fn a_logged_out_device_refuses_sends_until_it_is_paired_again() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = app.pair_device(&tenant, PHONE).await;
    let (status, body) = send(&app, &tenant, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) =
        app.post(&format!("/api/user/devices/{id}/logout"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "logged_out", "{body}");
    let (status, body) = send(&app, &tenant, id).await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");
    let (_, statuses) = app.get("/api/user/devices/status", &tenant.api_key).await;
    assert_eq!(statuses["data"][0]["status"], "logged_out", "{statuses}");

    // Its keys are gone: a restart does not bring it back by itself.
    let app = app.restart().await;
    let (_, device) = app.get(&format!("/api/user/devices/{id}"), &tenant.api_key).await;
    assert_ne!(device["status"], "connected", "{device}");
    let (status, body) = send(&app, &tenant, id).await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");

    // A new QR and a new scan link it again.
    app.scan_device(&tenant, id).await;
    let (status, body) = send(&app, &tenant, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn reset_session_by_id_or_by_phone_starts_a_fresh_pairing() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = app.pair_device(&tenant, PHONE).await;

    let (status, body) = app.post("/api/reset-session", &tenant.api_key, &json!({"device": id})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.wait_for_device_status(&tenant, id, "qr").await;
    let (status, qr) = app.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "a new QR code: {qr}");
    let (status, body) = send(&app, &tenant, id).await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");

    app.scan_device(&tenant, id).await;
    // The seed's field name and a local number work as well.
    let (status, body) =
        app.post("/api/reset-session", &tenant.api_key, &json!({"pengirim": "081381830651"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id);
    app.wait_for_device_status(&tenant, id, "qr").await;
    let (status, qr2) = app.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{qr2}");
    assert_ne!(qr2["qr"], qr["qr"], "each pairing round has its own codes");
}

#[tokio::test]
async fn the_phone_unlinking_the_device_logs_it_out() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = app.pair_device(&tenant, PHONE).await;

    let (status, body) = app.admin_post("/api/admin/simulator/logout", &json!({"device": id})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let device = app.wait_for_device_status(&tenant, id, "logged_out").await;
    assert!(device["detail"].as_str().is_some_and(|d| !d.is_empty()), "{device}");
    let (status, body) = send(&app, &tenant, id).await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");
}

#[tokio::test]
async fn a_dropped_connection_reconnects_by_itself() {
    let app = TestApp::spawn_with(|c| {
        c.whatsapp.reconnect_min_ms = 100;
        c.whatsapp.reconnect_max_ms = 1000;
    })
    .await;
    let tenant = app.create_tenant("basic").await;
    let id = app.pair_device(&tenant, PHONE).await;
    let mut events = EventStream::open(&app, &tenant, id).await;
    events.until(|name, data| name == "status" && data["status"] == "connected").await;

    let (status, body) = app.admin_post("/api/admin/simulator/disconnect", &json!({"device": id})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dropped = events.until(|name, data| name == "status" && data["status"] != "connected").await;
    assert_eq!(dropped["status"], "connecting", "{dropped}");
    events.until(|name, data| name == "status" && data["status"] == "connected").await;

    app.wait_for_device_status(&tenant, id, "connected").await;
    let (status, body) = send(&app, &tenant, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "sent", "{body}");
}

#[tokio::test]
async fn a_paired_device_reconnects_after_a_restart_without_a_new_qr() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let id = app.pair_device(&tenant, PHONE).await;

    let app = app.restart().await;
    // No QR fetched, nothing scanned: the stored session brings it back.
    let device = app.wait_for_device_status(&tenant, id, "connected").await;
    assert_eq!(device["jid"], format!("{PHONE}@s.whatsapp.net"));
    let (status, body) = app.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = send(&app, &tenant, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "sent", "{body}");
    poll_until(WAIT, || async { (app.outbox(id).await.len() == 1).then_some(()) }).await;
}
