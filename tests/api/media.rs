//! `POST /api/send-media`: uploads, base64, URLs fetched through the hardened client, size caps
//! and the errors a client can cause.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, TestApp, TestTenant};

const PHONE: &str = "6281381830651";
const RECIPIENT: &str = "6281234567890";

/// A 1×1 PNG.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\
\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82";

/// Creates a device for `tenant` and pairs it through the simulator; returns its id.
async fn pair_device(app: &TestApp, tenant: &TestTenant, phone: &str) -> i64 {
    let id = create_device(app, tenant, phone).await;
    let (status, body) = app.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "qr: {body}");
    let (status, body) = app.admin_post("/api/admin/simulator/scan", &json!({ "device": id })).await;
    assert_eq!(status, StatusCode::OK, "scan: {body}");
    poll_until(Duration::from_secs(10), || async {
        let (_, device) = app.get(&format!("/api/user/devices/{id}"), &tenant.api_key).await;
        (device["status"] == "connected").then_some(())
    })
    .await;
    id
}

async fn create_device(app: &TestApp, tenant: &TestTenant, phone: &str) -> i64 {
    let (status, body) = app.post("/api/user/devices", &tenant.api_key, &json!({ "phone": phone })).await;
    assert_eq!(status, StatusCode::CREATED, "create device: {body}");
    body["id"].as_i64().expect("the device has an id")
}

/// A tenant with a connected device.
async fn connected(app: &TestApp) -> (TestTenant, i64) {
    let tenant = app.create_tenant("premium").await;
    let device = pair_device(app, &tenant, PHONE).await;
    (tenant, device)
}

/// A `multipart/form-data` body, built by hand so malformed ones can be built too.
pub struct Form {
    boundary: &'static str,
    body: Vec<u8>,
}

#[allow(clippy::new_without_default)]
impl Form {
    pub fn new() -> Form {
        Form { boundary: "wa-gateway-test-boundary-7d2f", body: Vec::new() }
    }

    pub fn text(mut self, name: &str, value: &str) -> Form {
        let part = format!(
            "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
            self.boundary
        );
        self.body.extend(part.as_bytes());
        self
    }

    pub fn file(mut self, name: &str, filename: &str, content_type: &str, bytes: &[u8]) -> Form {
        let head = format!(
            "--{}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
             Content-Type: {content_type}\r\n\r\n",
            self.boundary
        );
        self.body.extend(head.as_bytes());
        self.body.extend(bytes);
        self.body.extend(b"\r\n");
        self
    }

    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body.extend(format!("--{}--\r\n", self.boundary).as_bytes());
        (format!("multipart/form-data; boundary={}", self.boundary), self.body)
    }
}

async fn post_form(app: &TestApp, key: &str, form: Form) -> (StatusCode, Value) {
    let (content_type, body) = form.finish();
    post_raw(app, key, &content_type, body).await
}

async fn post_raw(app: &TestApp, key: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    app.send(
        app.request(Method::POST, "/api/send-media")
            .header("x-api-key", key)
            .header(header::CONTENT_TYPE, content_type)
            .body(body),
    )
    .await
}

async fn outbox(app: &TestApp, device: i64) -> Vec<Value> {
    let (status, body) = app.admin_get(&format!("/api/admin/simulator/outbox?device={device}")).await;
    assert_eq!(status, StatusCode::OK, "outbox: {body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A web server on 127.0.0.1 serving a PNG at `/files/photo.png` and a redirect to it at
/// `/moved`.
async fn media_server() -> SocketAddr {
    let router = axum::Router::new()
        .route(
            "/files/photo.png",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], PNG).into_response() }),
        )
        .route("/moved", get(|| async { Redirect::temporary("/files/photo.png") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port for the media server");
    let addr = listener.local_addr().expect("the media server's address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test]
async fn an_uploaded_image_reaches_the_phone_and_the_history() {
    let app = TestApp::spawn().await;
    let (tenant, device) = connected(&app).await;

    let form = Form::new()
        .text("pengirim", PHONE)
        .text("nomor", RECIPIENT)
        .text("pesan", "Our new menu")
        .file("file", "menu.png", "image/png", PNG);
    let (status, body) = post_form(&app, &tenant.api_key, form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "sent", "{body}");
    assert_eq!(body["type"], "image", "{body}");
    assert_eq!(body["text"], "Our new menu", "{body}");
    assert_eq!(body["media"]["mime"], "image/png", "{body}");

    let sent = outbox(&app, device).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let media = &sent[0]["media"];
    assert_eq!(media["kind"], "image", "{media}");
    assert_eq!(media["size"], PNG.len(), "{media}");
    assert_eq!(media["caption"], "Our new menu", "{media}");
    assert_eq!(sent[0]["to"], format!("{RECIPIENT}@s.whatsapp.net"));

    let (status, history) =
        app.get(&format!("/api/user/chat-history?device={device}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["total"], 1, "{history}");
    assert_eq!(history["data"][0]["type"], "image", "{history}");
    assert_eq!(history["data"][0]["direction"], "out", "{history}");
    assert_eq!(history["data"][0]["media"]["size"], PNG.len(), "{history}");
}

#[tokio::test]
async fn a_base64_document_keeps_its_filename() {
    let app = TestApp::spawn().await;
    let (tenant, device) = connected(&app).await;
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": device, "to": RECIPIENT, "base64": b64(pdf), "filename": "../invoice-42.pdf",
                     "caption": "Your invoice" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "document", "{body}");

    let sent = outbox(&app, device).await;
    let media = &sent[0]["media"];
    assert_eq!(media["kind"], "document", "{media}");
    assert_eq!(media["mime"], "application/pdf", "{media}");
    assert_eq!(media["filename"], "invoice-42.pdf", "the path is stripped: {media}");
    assert_eq!(media["size"], pdf.len(), "{media}");
}

#[tokio::test]
async fn a_data_url_is_decoded_and_async_answers_queued() {
    let app = TestApp::spawn().await;
    let (tenant, device) = connected(&app).await;
    let data_url = format!("data:image/png;base64,{}", b64(PNG));
    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "from": PHONE, "to": RECIPIENT, "base64": data_url, "async": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
    let sent = poll_until(Duration::from_secs(10), || async {
        let sent = outbox(&app, device).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(sent[0]["media"]["kind"], "image");
}

#[tokio::test]
async fn a_url_is_fetched_when_private_targets_are_allowed() {
    let server = media_server().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let (tenant, device) = connected(&app).await;

    let url = format!("http://{server}/files/photo.png");
    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": PHONE, "to": RECIPIENT, "url": url, "caption": "From the web" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let media = &outbox(&app, device).await[0]["media"];
    assert_eq!(media["kind"], "image", "{media}");
    assert_eq!(media["size"], PNG.len(), "{media}");
    assert_eq!(media["filename"], "photo.png", "{media}");
    assert_eq!(media["caption"], "From the web", "{media}");
}

#[tokio::test]
async fn a_loopback_url_is_refused_by_default() {
    let server = media_server().await;
    let app = TestApp::spawn().await;
    let (tenant, device) = connected(&app).await;

    for url in [
        format!("http://{server}/files/photo.png"),
        format!("http://localhost:{}/files/photo.png", server.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::ffff:127.0.0.1]/".to_string(),
    ] {
        let (status, body) = app
            .post(
                "/api/send-media",
                &tenant.api_key,
                &json!({ "device": PHONE, "to": RECIPIENT, "url": url }),
            )
            .await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["error"]["field"], "url", "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("internal addresses are not allowed"), "{url}: {body}");
    }
    assert!(outbox(&app, device).await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_redirecting_url_is_refused() {
    let server = media_server().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let (tenant, device) = connected(&app).await;

    let url = format!("http://{server}/moved");
    let (status, body) = app
        .post("/api/send-media", &tenant.api_key, &json!({ "device": PHONE, "to": RECIPIENT, "url": url }))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "url", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("redirect"), "{body}");
    assert!(outbox(&app, device).await.is_empty());
}

#[tokio::test]
async fn an_image_over_its_cap_is_too_large() {
    let server = media_server().await;
    let app = TestApp::spawn_with(|c| {
        c.whatsapp.max_image_bytes = 40;
        c.webhooks.allow_private_targets = true;
    })
    .await;
    let (tenant, device) = connected(&app).await;
    assert!(PNG.len() > 40);

    let form =
        Form::new().text("device", PHONE).text("to", RECIPIENT).file("file", "a.png", "image/png", PNG);
    let (status, body) = post_form(&app, &tenant.api_key, form).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": PHONE, "to": RECIPIENT, "type": "image",
                     "url": format!("http://{server}/files/photo.png") }),
        )
        .await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // The same bytes are within the document cap.
    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": PHONE, "to": RECIPIENT, "type": "document", "base64": b64(PNG) }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(outbox(&app, device).await.len(), 1);
}

#[tokio::test]
async fn a_body_over_the_server_limit_is_too_large() {
    let app = TestApp::spawn_with(|c| c.server.body_limit = 4096).await;
    let (tenant, _) = connected(&app).await;
    let big = vec![b'x'; 16 * 1024];
    let form =
        Form::new().text("device", PHONE).text("to", RECIPIENT).file("file", "big.bin", "text/plain", &big);
    let (status, body) = post_form(&app, &tenant.api_key, form).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn malformed_multipart_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let (tenant, _) = connected(&app).await;

    let (status, body) =
        post_raw(&app, &tenant.api_key, "multipart/form-data", b"no boundary".to_vec()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");

    let truncated = b"--xyz\r\nContent-Disposition: form-data; name=\"device\"\r\n\r\n6281381830651".to_vec();
    let (status, body) =
        post_raw(&app, &tenant.api_key, "multipart/form-data; boundary=xyz", truncated).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");

    let two = Form::new()
        .text("device", PHONE)
        .text("to", RECIPIENT)
        .file("file", "a.png", "image/png", PNG)
        .file("file", "b.png", "image/png", PNG);
    let (status, body) = post_form(&app, &tenant.api_key, two).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "file", "{body}");
}

#[tokio::test]
async fn media_is_required() {
    let app = TestApp::spawn().await;
    let (tenant, _) = connected(&app).await;

    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": PHONE, "to": RECIPIENT, "caption": "hi" }),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "url", "{body}");

    let form = Form::new().text("device", PHONE).text("to", RECIPIENT).text("caption", "hi");
    let (status, body) = post_form(&app, &tenant.api_key, form).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "file", "{body}");

    let form = Form::new().text("to", RECIPIENT).file("file", "a.png", "image/png", PNG);
    let (status, body) = post_form(&app, &tenant.api_key, form).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "device", "{body}");
}

#[tokio::test]
async fn bad_base64_and_bad_types_name_their_field() {
    let app = TestApp::spawn().await;
    let (tenant, device) = connected(&app).await;

    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": PHONE, "to": RECIPIENT, "base64": "this is not base64!" }),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "base64", "{body}");

    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": PHONE, "to": RECIPIENT, "type": "image", "base64": b64(b"%PDF-1.4 not an image") }),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "type", "{body}");

    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": PHONE, "to": RECIPIENT, "type": "hologram", "base64": b64(PNG) }),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "type", "{body}");

    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": PHONE, "to": RECIPIENT, "base64": b64(PNG), "caption": "x".repeat(1025) }),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "caption", "{body}");
    assert!(outbox(&app, device).await.is_empty());
}

#[tokio::test]
async fn a_device_that_is_not_connected_is_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let device = create_device(&app, &tenant, PHONE).await;

    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": device, "to": RECIPIENT, "base64": b64(PNG) }),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");
    let (_, history) = app.get("/api/user/chat-history", &tenant.api_key).await;
    assert_eq!(history["total"], 0, "{history}");
}

#[tokio::test]
async fn a_repeated_idempotency_key_sends_once() {
    let app = TestApp::spawn().await;
    let (tenant, device) = connected(&app).await;
    let send = || async {
        app.send(
            app.request(Method::POST, "/api/send-media")
                .header("x-api-key", &tenant.api_key)
                .header("Idempotency-Key", "media-once")
                .json(&json!({ "device": PHONE, "to": RECIPIENT, "base64": b64(PNG) })),
        )
        .await
    };
    let (first_status, first) = send().await;
    let (second_status, second) = send().await;
    assert_eq!((first_status, second_status), (StatusCode::OK, StatusCode::OK), "{first} {second}");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(outbox(&app, device).await.len(), 1);
}

#[tokio::test]
async fn the_openapi_document_describes_both_request_forms() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let content = &doc["paths"]["/api/send-media"]["post"]["requestBody"]["content"];
    assert!(content["application/json"].is_object(), "{content}");
    assert!(content["multipart/form-data"].is_object(), "{content}");
}
