//! Plugins written in JavaScript and Python through the real server: `echo-js` and
//! `order-status-js` (plugins/js, built with componentize-js), `echo-py` and `order-status-py`
//! (plugins/py, built with componentize-py), built by `plugins/build.sh`, uploaded raw, run on
//! simulator messages; the order-status ones ask a real HTTP API on 127.0.0.1. And webhook
//! transformations in both, `telegram-notify-js` and `discord-notify-py`, shaping a webhook
//! endpoint's requests for a receiver on 127.0.0.1 that stands in for Telegram's Bot API or a
//! Discord webhook.
//!
//! A test binary of its own: compiling a 12 to 18 MB component keeps the CPUs busy for many
//! seconds in a debug build, and cargo runs test binaries one after another, so those compiles
//! cannot starve the timing of the API tests.

#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/webhooks/receiver.rs"]
#[allow(dead_code)] // Shared with the API tests, which use all of it.
mod receiver;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use axum::response::IntoResponse;
use helpers::{poll_until, TestApp, WAIT};

const DEVICE: &str = "6281381830652";
const CUSTOMER: &str = "6281234567891";

/// A component built by `plugins/build.sh`.
fn component(name: &str) -> Vec<u8> {
    let path = format!("{}/target/plugins/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}; run plugins/build.sh first (it needs Node.js and npm, and Python 3 with venv)")
    })
}

/// One upload at a time: compiling one of these components keeps both CPUs of a small machine
/// busy for many seconds in a debug build, and several at once could outlast the server's
/// request timeout.
static COMPILING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Uploads the component `name` raw; its id.
async fn upload(app: &TestApp, api_key: &str, name: &str) -> i64 {
    let wasm = component(name);
    let _turn = COMPILING.acquire().await.expect("never closed");
    let request = app
        .request(Method::POST, &format!("/api/user/plugins?name={name}"))
        .header("x-api-key", api_key)
        .header("content-type", "application/wasm")
        .timeout(Duration::from_secs(300))
        .body(wasm.clone());
    let (status, plugin) = app.send(request).await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    assert_eq!(plugin["size"], wasm.len());
    plugin["id"].as_i64().unwrap()
}

/// The plugin's runs in the log, newest first, once there are at least `n`.
async fn runs(app: &TestApp, api_key: &str, id: i64, n: usize) -> Vec<Value> {
    poll_until(WAIT, || async {
        let request = app
            .request(Method::GET, "/api/user/webhook-logs")
            .header("x-api-key", api_key)
            .query(&[("kind", "plugin"), ("plugin", &id.to_string())]);
        let (status, body) = app.send(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rows = body["data"].as_array().unwrap().clone();
        (rows.len() >= n).then_some(rows)
    })
    .await
}

/// The device's outbox once it holds more than `n` messages.
async fn outbox_past(app: &TestApp, device: i64, n: usize) -> Vec<Value> {
    poll_until(WAIT, || async {
        let outbox = app.outbox(device).await;
        (outbox.len() > n).then_some(outbox)
    })
    .await
}

#[tokio::test]
async fn order_status_in_javascript_answers_from_the_shops_api() {
    order_status_answers_from_the_shops_api("order-status-js").await;
}

#[tokio::test]
async fn order_status_in_python_answers_from_the_shops_api() {
    order_status_answers_from_the_shops_api("order-status-py").await;
}

/// Uploads the order-status plugin `name`, points it at a real API on 127.0.0.1, and checks
/// its answers, its store's count, and the typed error it gets once the host is not allowed.
async fn order_status_answers_from_the_shops_api(name: &str) {
    let shop = axum::Router::new().route(
        "/orders/{id}",
        axum::routing::get(|axum::extract::Path(id): axum::extract::Path<String>| async move {
            if id == "1234" {
                axum::Json(json!({"status": "dikirim"})).into_response()
            } else {
                axum::http::StatusCode::NOT_FOUND.into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, shop).await });

    let app = TestApp::spawn_with(|c| c.plugins.allow_private_targets = true).await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let id = upload(&app, &tenant.api_key, name).await;
    let settings = json!({
        "config": {"url": format!("http://{shop_addr}/orders/{{order}}")},
        "allowed_hosts": ["127.0.0.1"],
    });
    let (status, body) = app.patch(&format!("/api/user/plugins/{id}"), &tenant.api_key, &settings).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    app.inbound(device, CUSTOMER, "status 1234", None).await;
    let outbox = outbox_past(&app, device, 0).await;
    assert_eq!(outbox[0]["text"], "Pesanan 1234: dikirim", "{name}: {outbox:?}");
    app.inbound(device, CUSTOMER, "Status #1234", None).await;
    let outbox = outbox_past(&app, device, 1).await;
    assert_eq!(outbox[1]["text"], "Pesanan 1234: dikirim", "{name}: {outbox:?}");
    app.inbound(device, CUSTOMER, "status 77", None).await;
    let outbox = outbox_past(&app, device, 2).await;
    assert_eq!(outbox[2]["text"], "Pesanan 77 tidak ditemukan.", "{name}: {outbox:?}");
    let rows = runs(&app, &tenant.api_key, id, 3).await;
    assert!(rows[1]["response"].as_str().unwrap().contains("order 1234: lookup 2"), "{name}: {}", rows[1]);
    let response: Value = serde_json::from_str(rows[0]["response"].as_str().unwrap()).unwrap();
    assert_eq!(response["http"]["calls"][0]["status"], 404, "{name}: {response}");

    let (status, body) =
        app.patch(&format!("/api/user/plugins/{id}"), &tenant.api_key, &json!({"allowed_hosts": []})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.inbound(device, CUSTOMER, "status 1234", None).await;
    let outbox = outbox_past(&app, device, 3).await;
    assert!(outbox[3]["text"].as_str().unwrap().starts_with("Maaf"), "{name}: {outbox:?}");
    let rows = runs(&app, &tenant.api_key, id, 4).await;
    assert_eq!(rows[0]["outcome"], "success", "{name}: {}", rows[0]);
    let response: Value = serde_json::from_str(rows[0]["response"].as_str().unwrap()).unwrap();
    assert_eq!(response["http"]["calls"][0]["outcome"], "host-not-allowed", "{name}: {response}");
    let logged = rows[0]["response"].as_str().unwrap();
    assert!(
        logged.contains("order 1234: host-not-allowed")
            || logged.contains("order 1234: HttpError_HostNotAllowed"),
        "the plugin logged the reason: {logged}"
    );
}

#[tokio::test]
async fn echo_in_javascript_answers_and_counts_in_its_store() {
    echo_answers_and_counts_in_its_store("echo-js").await;
}

#[tokio::test]
async fn echo_in_python_answers_and_counts_in_its_store() {
    echo_answers_and_counts_in_its_store("echo-py").await;
}

/// Uploads the echo plugin `name`, sends it three messages one at a time, and checks the
/// answers and the count its store kept between the runs.
async fn echo_answers_and_counts_in_its_store(name: &str) {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let id = upload(&app, &tenant.api_key, name).await;

    // One message at a time, so each run sees the count the one before it stored.
    let mut outbox = Vec::new();
    for (n, text) in ["satu", "dua", "tiga"].into_iter().enumerate() {
        app.inbound(device, CUSTOMER, text, Some("Budi")).await;
        outbox = outbox_past(&app, device, n).await;
    }
    let mut answers: Vec<&str> = outbox.iter().map(|m| m["text"].as_str().unwrap()).collect();
    answers.sort_unstable();
    assert_eq!(answers, ["echo: dua", "echo: satu", "echo: tiga"], "{name}");
    assert!(outbox.iter().all(|m| m["to"] == format!("{CUSTOMER}@s.whatsapp.net")), "{outbox:?}");

    // The logs of the three runs say 1, 2 and 3: the store kept the count between runs.
    let rows = runs(&app, &tenant.api_key, id, 3).await;
    assert!(rows.iter().all(|r| r["outcome"] == "success"), "{rows:?}");
    let responses: Vec<&str> = rows.iter().map(|r| r["response"].as_str().unwrap()).collect();
    for n in 1..=3 {
        let line = format!("messages seen: {n}");
        assert_eq!(responses.iter().filter(|r| r.contains(&line)).count(), 1, "{line} in {responses:?}");
    }
}

/// A transformation at work: a server whose webhooks may reach 127.0.0.1, a tenant with a
/// paired device, and the transformation named by one of its `notify` endpoints.
struct Transforming {
    app: TestApp,
    api_key: String,
    device: i64,
    plugin: i64,
    /// The endpoint's signing secret.
    secret: String,
}

/// Uploads the transformation `name` with `config` and creates a `notify` endpoint at `url`
/// for `events` that names it.
async fn transforming(name: &str, config: Value, url: String, events: &[&str]) -> Transforming {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.webhooks.retry_schedule = vec![0, 1];
    })
    .await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let plugin = upload(&app, &tenant.api_key, name).await;
    let settings = json!({ "config": config });
    let (status, body) = app.patch(&format!("/api/user/plugins/{plugin}"), &tenant.api_key, &settings).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "transform", "{body}");
    let endpoint = json!({ "url": url, "events": events, "transform_plugin_id": plugin });
    let (status, endpoint) = app.post("/api/user/webhooks", &tenant.api_key, &endpoint).await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    Transforming { app, api_key: tenant.api_key, device, plugin, secret }
}

/// The webhook log rows with `outcome`, newest first, once there is one.
async fn webhook_rows(app: &TestApp, api_key: &str, outcome: &str) -> Vec<Value> {
    poll_until(WAIT, || async {
        let request = app
            .request(Method::GET, "/api/user/webhook-logs")
            .header("x-api-key", api_key)
            .query(&[("kind", "webhook"), ("outcome", outcome)]);
        let (_, body) = app.send(request).await;
        body["data"].as_array().filter(|rows| !rows.is_empty()).cloned()
    })
    .await
}

/// `telegram-notify-js` on a `notify` endpoint: an inbound message goes out as a Bot API
/// `sendMessage` call (token in the path it returns, `chat_id` and `text` in the body), signed;
/// an event it is not set for is skipped.
#[tokio::test]
async fn telegram_notify_in_javascript_forwards_messages_to_the_bot_api() {
    let bot = receiver::Receiver::start().await;
    let config = json!({"token": "123456:ABC-def_9", "chat_id": "-100777"});
    let events = ["message.received", "message.sent"];
    let Transforming { app, api_key, device, plugin, secret } =
        transforming("telegram-notify-js", config, bot.url(""), &events).await;

    app.inbound(device, CUSTOMER, "halo telegram", Some("Budi")).await;
    let got = bot.wait_for(1, WAIT).await;
    assert_eq!(got[0].path, "/bot123456:ABC-def_9/sendMessage");
    assert_eq!(got[0].header("content-type"), "application/json");
    assert_eq!(
        got[0].json(),
        json!({"chat_id": "-100777", "text": format!("Budi (+{CUSTOMER}): halo telegram")})
    );
    assert!(receiver::verifies(&secret, &got[0]), "still signed");
    let rows = runs(&app, &api_key, plugin, 1).await;
    assert!(rows[0]["response"].as_str().unwrap().contains("forwarded: 1"), "the store counts: {}", rows[0]);

    // `message.sent` is not among its events: skipped, nothing sent.
    let message = json!({"device": DEVICE, "to": CUSTOMER, "text": "Siap"});
    let (status, sent) = app.post("/api/send-message", &api_key, &message).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let skipped = webhook_rows(&app, &api_key, "skipped").await;
    assert_eq!(skipped[0]["event"], "message.sent", "{skipped:?}");
    assert_eq!(bot.requests().len(), 1, "nothing more reached the bot API");
}

/// `discord-notify-py` on a `notify` endpoint at a Discord webhook URL: an inbound message goes
/// out as `{"content", "username"}` with `?wait=true` appended, signed; a bad configuration
/// fails the run and nothing is sent.
#[tokio::test]
async fn discord_notify_in_python_posts_to_a_discord_webhook() {
    let discord = receiver::Receiver::start().await;
    let url = discord.url("/api/webhooks/42/rahasia");
    let config = json!({"username": "Toko Sinar"});
    let Transforming { app, api_key, device, plugin, secret } =
        transforming("discord-notify-py", config, url, &["message.received"]).await;

    app.inbound(device, CUSTOMER, "halo discord", Some("Sari")).await;
    let got = discord.wait_for(1, WAIT).await;
    assert_eq!((got[0].path.as_str(), got[0].query.as_str()), ("/api/webhooks/42/rahasia", "wait=true"));
    assert_eq!(
        got[0].json(),
        json!({"content": format!("**Sari** (+{CUSTOMER}): halo discord"), "username": "Toko Sinar"})
    );
    assert!(receiver::verifies(&secret, &got[0]), "still signed");
    let rows = runs(&app, &api_key, plugin, 1).await;
    assert!(rows[0]["response"].as_str().unwrap().contains("forwarded: 1"), "the store counts: {}", rows[0]);

    // A configuration it cannot use: the run fails with its reason and nothing is sent.
    let bad = json!({"config": {"events": "message.received"}});
    let (status, _) = app.patch(&format!("/api/user/plugins/{plugin}"), &api_key, &bad).await;
    assert_eq!(status, StatusCode::OK);
    app.inbound(device, CUSTOMER, "lagi", None).await;
    let failed = webhook_rows(&app, &api_key, "transform_failed").await;
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("bad config") && error.contains("`events`"), "{error}");
    assert_eq!(discord.requests().len(), 1, "nothing more reached Discord");
}
