//! The plugins page and the media form of the send page over plain HTTP, with the real
//! components `plugins/build.sh` builds into `target/plugins/` and the simulator.

use reqwest::StatusCode;
use serde_json::json;

use crate::agent::{tenant, Agent, PASSWORD};
use crate::helpers::{poll_until, TestApp, TestTenant, WAIT};

/// A component built by `plugins/build.sh`.
fn component(name: &str) -> Vec<u8> {
    let path = format!("{}/target/plugins/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}; run plugins/build.sh first"))
}

/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\
\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82";

const CUSTOMER: &str = "6281277770031";

#[tokio::test]
async fn a_plugin_uploaded_on_the_page_is_tried_answers_is_disabled_and_deleted() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "premium").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&api, "6281288880031").await;
    let device_id = device.to_string();
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    assert!(agent.get("/plugins").await.body.contains("No plugins yet."));

    let bad = agent
        .upload("/plugins", "/plugins", &[("name", "junk")], ("file", "junk.wasm", "application/wasm", b"no"))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body.contains("id=\"form-error\""), "{}", bad.body);

    let echo = component("echo");
    let made = agent
        .upload(
            "/plugins",
            "/plugins",
            &[("name", "echo"), ("order", "3"), ("devices", &device_id), ("config", "{\"x\": 1}")],
            ("file", "echo.wasm", "application/wasm", &echo),
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let (_, list) = app.get("/api/user/plugins", &t.api_key).await;
    let id = list["data"][0]["id"].as_i64().unwrap();
    assert_eq!(made.location(), format!("/plugins/{id}"));
    assert_eq!(list["data"][0]["size"], echo.len(), "{list}");
    assert_eq!(list["data"][0]["order"], 3, "{list}");
    assert_eq!(list["data"][0]["devices"], json!([device]), "{list}");
    assert_eq!(list["data"][0]["config"], json!({ "x": 1 }), "{list}");
    let page = agent.get("/plugins").await;
    assert!(
        page.body.contains(&format!("id=\"plugin-{id}\"")) && page.body.contains("never run"),
        "{}",
        page.body
    );

    let page_path = format!("/plugins/{id}");
    let tried = agent.submit(&page_path, &format!("/plugins/{id}/test"), &[("text", "halo uji")]).await;
    assert_eq!(tried.status, StatusCode::OK, "{}", tried.body);
    assert!(tried.body.contains("id=\"test-result\""), "{}", tried.body);
    assert!(tried.body.contains("echo: halo uji"), "the decision is shown: {}", tried.body);
    assert!(app.outbox(device).await.is_empty(), "a dry run sends nothing");

    let wrong = agent
        .submit(&page_path, &format!("/plugins/{id}/settings"), &[("order", "1"), ("config", "{oops")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", wrong.body);
    assert!(wrong.body.contains("id=\"form-error\"") && wrong.body.contains("{oops"), "{}", wrong.body);
    let saved = agent
        .submit(
            &page_path,
            &format!("/plugins/{id}/settings"),
            &[("order", "7"), ("config", "{\"y\": true}")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, p) = app.get(&format!("/api/user/plugins/{id}"), &t.api_key).await;
    assert_eq!(p["order"], 7, "{p}");
    assert_eq!(p["config"], json!({ "y": true }), "{p}");
    assert_eq!(p["devices"], json!([]), "no device ticked: every device: {p}");

    app.inbound(device, CUSTOMER, "halo plugin", None).await;
    let sent = poll_until(WAIT, || async {
        let sent = app.outbox(device).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(sent[0]["text"], "echo: halo plugin", "{sent:?}");
    let page = poll_until(WAIT, || async {
        let page = agent_page(&app, &t.email, &page_path).await;
        page.contains("id=\"runs\"").then_some(page)
    })
    .await;
    assert!(page.contains("message.received") && page.contains(">success</span>"), "{page}");

    let off = agent.submit("/plugins", &format!("/plugins/{id}/toggle"), &[("enabled", "false")]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.body);
    let (_, p) = app.get(&format!("/api/user/plugins/{id}"), &t.api_key).await;
    assert_eq!(p["enabled"], false, "{p}");
    assert!(agent.get(&page_path).await.body.contains(">disabled</span>"));

    let stranger = tenant(&app, "premium").await;
    let mut other = Agent::new(&app);
    other.login(&stranger.email, PASSWORD).await;
    assert_eq!(other.get(&page_path).await.status, StatusCode::NOT_FOUND);
    for action in ["toggle", "test", "settings", "delete"] {
        let foreign =
            other.submit("/plugins", &format!("/plugins/{id}/{action}"), &[("enabled", "true")]).await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{action}: {}", foreign.body);
    }
    assert!(!other.get("/plugins").await.body.contains("echo"));

    let gone = agent.submit(&page_path, &format!("/plugins/{id}/delete"), &[]).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.body);
    let (_, list) = app.get("/api/user/plugins", &t.api_key).await;
    assert_eq!(list["total"], 0, "{list}");
}

/// A page as a fresh login of `email` sees it.
async fn agent_page(app: &TestApp, email: &str, path: &str) -> String {
    let mut agent = Agent::new(app);
    agent.login(email, PASSWORD).await;
    agent.get(path).await.body
}

#[tokio::test]
async fn an_image_uploaded_on_the_send_page_is_sent_with_its_caption() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&api, "6281288880032").await;
    let device_id = device.to_string();
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    assert!(agent.get("/send").await.body.contains("action=\"/send/media\""));

    let fields = [("device", device_id.as_str()), ("to", CUSTOMER), ("caption", "Menu baru kami")];
    let sent = agent.upload("/send", "/send/media", &fields, ("file", "menu.png", "image/png", PNG)).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert!(sent.location().starts_with("/send?sent="), "{}", sent.location());
    let out = app.outbox(device).await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["media"]["kind"], "image", "{out:?}");
    assert_eq!(out[0]["media"]["size"], PNG.len(), "{out:?}");
    assert_eq!(out[0]["media"]["caption"], "Menu baru kami", "{out:?}");

    let refused = agent
        .upload(
            "/send",
            "/send/media",
            &[("device", &device_id), ("to", "12")],
            ("file", "a.png", "image/png", PNG),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert!(refused.body.contains("id=\"form-error\""), "{}", refused.body);
    let file = ("file", "menu.png", "image/png", PNG);
    let forged = agent.post_multipart("/send/media", &[("csrf", &"0".repeat(64))], file).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "the multipart form checks the token too");
    let tokenless = agent.post_multipart("/plugins", &fields, file).await;
    assert_eq!(tokenless.status, StatusCode::FORBIDDEN);
    assert_eq!(app.outbox(device).await.len(), 1);
}

#[tokio::test]
async fn a_document_larger_than_two_megabytes_goes_through_the_send_page() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&api, "6281288880033").await;
    let device_id = device.to_string();
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let mut pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    pdf.resize(3 * 1024 * 1024, b' ');
    pdf.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    let fields = [("device", device_id.as_str()), ("to", CUSTOMER), ("caption", "Katalog")];
    let sent =
        agent.upload("/send", "/send/media", &fields, ("file", "katalog.pdf", "application/pdf", &pdf)).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let out = app.outbox(device).await;
    assert_eq!(out[0]["media"]["kind"], "document", "{out:?}");
    assert_eq!(out[0]["media"]["size"], pdf.len(), "{out:?}");
}

/// The allowed hosts and the body switch are set on the plugin's page; a dry run and the run
/// log show each HTTP request the plugin made.
#[tokio::test]
async fn a_plugins_http_hosts_are_set_on_its_page_and_its_requests_are_shown() {
    let app = TestApp::spawn_with(|c| c.plugins.allow_private_targets = true).await;
    let shop = axum::Router::new()
        .route("/orders/1234", axum::routing::get(|| async { axum::Json(json!({"status": "dikirim"})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, shop).await });

    let t = tenant(&app, "premium").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&api, "6281288880032").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let made = agent
        .upload(
            "/plugins",
            "/plugins",
            &[("name", "http-probe")],
            ("file", "http-probe.wasm", "application/wasm", &component("http-probe")),
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let page_path = made.location().to_string();
    let id = page_path.trim_start_matches("/plugins/").to_string();
    let config = json!({"requests": [
        {"url": format!("http://{shop_addr}/orders/1234")},
        {"url": "http://example.com/"},
    ]})
    .to_string();

    let wrong = agent
        .submit(
            &page_path,
            &format!("/plugins/{id}/settings"),
            &[("config", &config), ("allowed_hosts", "https://127.0.0.1/")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", wrong.body);
    // The hosts as typed stay in the form.
    assert!(wrong.body.contains("id=\"form-error\"") && wrong.body.contains(">https:"), "{}", wrong.body);
    let saved = agent
        .submit(
            &page_path,
            &format!("/plugins/{id}/settings"),
            &[
                ("config", &config),
                ("allowed_hosts", "127.0.0.1\r\n*.toko.id\r\n"),
                ("log_http_bodies", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, p) = app.get(&page_path.replace("/plugins", "/api/user/plugins"), &t.api_key).await;
    assert_eq!(p["allowed_hosts"], json!(["127.0.0.1", "*.toko.id"]), "{p}");
    assert_eq!(p["log_http_bodies"], true, "{p}");
    let page = agent.get(&page_path).await.body;
    assert!(page.contains("127.0.0.1\n*.toko.id</textarea>"), "{page}");

    let tried = agent.submit(&page_path, &format!("/plugins/{id}/test"), &[("text", "halo")]).await;
    assert_eq!(tried.status, StatusCode::OK, "{}", tried.body);
    assert!(tried.body.contains("id=\"test-http\""), "{}", tried.body);
    assert!(tried.body.contains(&format!("{shop_addr} → 200")), "{}", tried.body);
    assert!(tried.body.contains("example.com → host-not-allowed"), "{}", tried.body);

    app.inbound(device, CUSTOMER, "halo", None).await;
    let page = poll_until(WAIT, || async {
        let page = agent_page(&app, &t.email, &page_path).await;
        page.contains("class=\"http-calls\"").then_some(page)
    })
    .await;
    assert!(page.contains(&format!("{shop_addr} → 200")), "{page}");
}
