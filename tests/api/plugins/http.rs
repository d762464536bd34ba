//! Plugins' outbound HTTP (world 0.3.0) through the real server, against a real HTTP API on
//! 127.0.0.1: `order-status` answering from the shop's API, the allowed hosts and the private
//! address switch, and `http-probe` with the adversarial cases (a host not allowed, a server
//! that never answers, a 100 MB answer, 1,000 requests in one run), each contained and logged,
//! while `/healthz`, the tenant's other runs and other tenants go on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reqwest::Method;
use serde_json::{json, Value};

use super::{runs, setup, upload, wait_outbox, CUSTOMER};
use crate::helpers::{TestApp, TestTenant};

/// The shop's API: `/orders/1234` is shipped, other orders are 404; `/slow` never answers;
/// `/big` streams 100 MB. Counts the requests it gets.
struct ShopApi {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl ShopApi {
    async fn start() -> ShopApi {
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/orders/{id}", get(order))
            .route("/slow", get(std::future::pending::<&'static str>))
            .route("/big", get(big))
            .layer(axum::middleware::from_fn_with_state(hits.clone(), count))
            .with_state(());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        ShopApi { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn count(
    State(hits): State<Arc<AtomicUsize>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

async fn order(Path(id): Path<String>) -> Response {
    if id == "1234" {
        Json(json!({"order": id, "status": "dikirim"})).into_response()
    } else {
        (StatusCode::NOT_FOUND, Json(json!({"error": "no such order"}))).into_response()
    }
}

/// 100 MB in 64 KiB chunks, without a Content-Length: the cap has to stop it while reading.
async fn big() -> Response {
    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let chunks = (100 * 1024 * 1024) / chunk.len();
    let stream = futures::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    Body::from_stream(stream).into_response()
}

/// PATCHes a plugin and checks the answer.
async fn patch(app: &TestApp, tenant: &TestTenant, id: i64, body: Value) -> Value {
    let (status, plugin) = app.patch(&format!("/api/user/plugins/{id}"), &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::OK, "{plugin}");
    plugin
}

/// The `http` part of a run's log row.
fn http_of(row: &Value) -> Value {
    let response: Value = serde_json::from_str(row["response"].as_str().unwrap()).unwrap();
    response["http"].clone()
}

/// A dry run of plugin `id` with `config`; the answer.
async fn dry_run(app: &TestApp, tenant: &TestTenant, id: i64, config: Value) -> Value {
    let request = app
        .request(Method::POST, &format!("/api/user/plugins/{id}/test"))
        .header("x-api-key", &tenant.api_key)
        .json(&json!({"text": "halo", "config": config}));
    let (status, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The JSON report `http-probe` replied with in a dry run.
fn probe_report(answer: &Value) -> Value {
    assert_eq!(answer["outcome"], "success", "{answer}");
    serde_json::from_str(answer["decision"]["actions"][0]["text"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn order_status_answers_from_the_shops_api_on_an_allowed_host() {
    let api = ShopApi::start().await;
    let app = TestApp::spawn_with(|c| c.plugins.allow_private_targets = true).await;
    let (tenant, device) = setup(&app).await;
    let plugin = upload(&app, &tenant, "order-status", &[]).await;
    let id = plugin["id"].as_i64().unwrap();
    assert_eq!(plugin["allowed_hosts"], json!([]), "a new plugin reaches no host");
    let config = json!({"url": api.url("/orders/{order}"), "headers": {"authorization": "Bearer rahasia"}});
    let plugin = patch(&app, &tenant, id, json!({"config": config, "allowed_hosts": ["127.0.0.1"]})).await;
    assert_eq!(plugin["allowed_hosts"], json!(["127.0.0.1"]));

    app.inbound(device, CUSTOMER, "status 1234", Some("Budi")).await;
    let outbox = wait_outbox(&app, device, 1).await;
    assert_eq!(outbox[0]["text"], "Pesanan 1234: dikirim", "{outbox:?}");
    app.inbound(device, CUSTOMER, "Status #999", Some("Budi")).await;
    let outbox = wait_outbox(&app, device, 2).await;
    assert_eq!(outbox[1]["text"], "Pesanan 999 tidak ditemukan.");
    assert_eq!(api.hits(), 2);

    // Each request is in the run's log row: method, host, status, time; no bodies by default.
    let rows = runs(&app, &tenant, id, 2).await;
    let found = http_of(&rows[1]);
    let call = &found["calls"][0];
    assert_eq!(call["method"], "GET", "{found}");
    assert_eq!(call["host"], api.addr.to_string());
    assert_eq!(call["status"], 200);
    assert_eq!(call["outcome"], "ok");
    assert!(call["latency_ms"].is_u64());
    assert!(call.get("response_body").is_none(), "{call}");
    assert_eq!(http_of(&rows[0])["calls"][0]["status"], 404);

    // With bodies turned on, the log keeps them.
    patch(&app, &tenant, id, json!({"log_http_bodies": true})).await;
    app.inbound(device, CUSTOMER, "status 1234", None).await;
    wait_outbox(&app, device, 3).await;
    let rows = runs(&app, &tenant, id, 3).await;
    let call = &http_of(&rows[0])["calls"][0];
    assert!(call["response_body"].as_str().unwrap().contains("dikirim"), "{call}");

    // Without the host allowed, the plugin gets a typed error (it answers "unavailable") and
    // nothing reaches the API.
    patch(&app, &tenant, id, json!({"allowed_hosts": []})).await;
    app.inbound(device, CUSTOMER, "status 1234", None).await;
    let outbox = wait_outbox(&app, device, 4).await;
    assert!(outbox[3]["text"].as_str().unwrap().starts_with("Maaf"), "{outbox:?}");
    assert_eq!(api.hits(), 3);
    let rows = runs(&app, &tenant, id, 4).await;
    assert_eq!(rows[0]["outcome"], "success", "a refused request is not a failed run");
    let call = &http_of(&rows[0])["calls"][0];
    assert_eq!(call["outcome"], "host-not-allowed", "{call}");
    assert!(call.get("status").is_none());
}

#[tokio::test]
async fn allowed_hosts_are_checked_when_set() {
    let app = TestApp::spawn().await;
    let (tenant, _) = setup(&app).await;
    let id = upload(&app, &tenant, "order-status", &[]).await["id"].as_i64().unwrap();
    for bad in [json!(["https://api.toko.id"]), json!(["*"]), json!(["api.toko.id:8080"]), json!(["a b"])] {
        let (status, body) = app
            .patch(&format!("/api/user/plugins/{id}"), &tenant.api_key, &json!({"allowed_hosts": bad}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let plugin =
        patch(&app, &tenant, id, json!({"allowed_hosts": ["API.Toko.id.", "*.toko.id", "api.toko.id"]}))
            .await;
    assert_eq!(plugin["allowed_hosts"], json!(["api.toko.id", "*.toko.id"]));
}

#[tokio::test]
async fn private_addresses_are_refused_unless_the_operator_allows_them() {
    let api = ShopApi::start().await;
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let id = upload(&app, &tenant, "order-status", &[]).await["id"].as_i64().unwrap();
    let config = json!({"url": api.url("/orders/{order}")});
    patch(&app, &tenant, id, json!({"config": config, "allowed_hosts": ["127.0.0.1"]})).await;

    app.inbound(device, CUSTOMER, "status 1234", None).await;
    let outbox = wait_outbox(&app, device, 1).await;
    assert!(outbox[0]["text"].as_str().unwrap().starts_with("Maaf"), "{outbox:?}");
    let rows = runs(&app, &tenant, id, 1).await;
    let call = &http_of(&rows[0])["calls"][0];
    assert_eq!(call["outcome"], "address-not-allowed", "{call}");
    assert_eq!(api.hits(), 0);
}

#[tokio::test]
async fn hostile_requests_are_contained_and_logged() {
    let api = ShopApi::start().await;
    let app = TestApp::spawn_with(|c| {
        c.plugins.allow_private_targets = true;
        c.plugins.http_request_timeout_ms = 1_000;
    })
    .await;
    let (tenant, _) = setup(&app).await;
    let id = upload(&app, &tenant, "http-probe", &[]).await["id"].as_i64().unwrap();
    patch(&app, &tenant, id, json!({"allowed_hosts": ["127.0.0.1"]})).await;

    // A host that is not allowed, a server that never answers, a 100 MB answer.
    let config = json!({"requests": [
        {"url": "http://example.com/"},
        {"url": api.url("/slow")},
        {"url": api.url("/big")},
        {"method": "TRACE", "url": api.url("/orders/1234")},
        {"url": api.url("/orders/1234"), "headers": [["host", "evil.example"]]},
    ]});
    let started = Instant::now();
    let answer = dry_run(&app, &tenant, id, config).await;
    let report = probe_report(&answer);
    let kinds: Vec<&str> =
        report["results"].as_array().unwrap().iter().map(|r| r["error"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["host-not-allowed", "timeout", "response-too-large", "invalid-request", "invalid-request"],
        "{report}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "the slow server cost its timeout only");
    assert_eq!(api.hits(), 2, "only /slow and /big reached the server");
    let calls: Vec<&str> =
        answer["http"]["calls"].as_array().unwrap().iter().map(|c| c["outcome"].as_str().unwrap()).collect();
    assert_eq!(calls, kinds, "{answer}");

    // 1,000 requests in one run: the first ten are sent, the rest refused and only counted.
    let before = api.hits();
    let config = json!({"requests": [{"url": api.url("/orders/1234"), "times": 1000}]});
    let answer = dry_run(&app, &tenant, id, config).await;
    let report = probe_report(&answer);
    assert_eq!(report["counts"], json!({"200": 10, "too-many-requests": 990}), "{report}");
    assert_eq!(api.hits() - before, 10);
    assert_eq!(answer["http"]["calls"].as_array().unwrap().len(), 10);
    assert_eq!(answer["http"]["over_cap"], 990);
}

/// A run waiting on a server that never answers gives its tenant's turn back: the tenant's
/// other plugin runs at once, another tenant too, and `/healthz` keeps answering quickly.
#[tokio::test]
async fn a_run_waiting_on_http_holds_up_nothing_else() {
    let api = ShopApi::start().await;
    let app = TestApp::spawn_with(|c| {
        c.plugins.allow_private_targets = true;
        c.plugins.tenant_concurrency = 1;
        c.plugins.queue_timeout_ms = 1_000;
        c.plugins.http_request_timeout_ms = 4_000;
    })
    .await;
    let (tenant, _) = setup(&app).await;
    let probe = upload(&app, &tenant, "http-probe", &[]).await["id"].as_i64().unwrap();
    patch(&app, &tenant, probe, json!({"allowed_hosts": ["127.0.0.1"]})).await;
    let echo = upload(&app, &tenant, "echo", &[]).await["id"].as_i64().unwrap();
    let other = app.create_tenant("premium").await;
    app.pair_device(&other, "6281399990000").await;
    let other_echo = upload(&app, &other, "echo", &[]).await["id"].as_i64().unwrap();

    let slow_config = json!({"requests": [{"url": api.url("/slow")}]});
    let request = app
        .request(Method::POST, &format!("/api/user/plugins/{probe}/test"))
        .header("x-api-key", &tenant.api_key)
        .json(&json!({"config": slow_config}));
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let response = request.send().await.expect("the dry run answers");
        let status = response.status();
        let answer: Value = response.json().await.expect("a JSON answer");
        (status, answer, started.elapsed())
    });
    crate::helpers::poll_until(Duration::from_secs(5), || async { (api.hits() > 0).then_some(()) }).await;

    // The tenant has one turn, and the waiting run gave it back: its echo runs now (a turn
    // still held would make this run wait its 1 s queue timeout and come back `busy`).
    let answer = dry_run(&app, &tenant, echo, json!({})).await;
    assert_eq!(answer["outcome"], "success", "{answer}");
    let answer = dry_run(&app, &other, other_echo, json!({})).await;
    assert_eq!(answer["outcome"], "success", "{answer}");
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let (status, _) = app.get("/healthz", "").await;
        assert_eq!(status, StatusCode::OK);
        slowest = slowest.max(started.elapsed());
    }
    println!("/healthz while a plugin waits on HTTP: slowest of 20 answers {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    assert!(!waiting.is_finished(), "the slow request is still in flight");

    let (status, answer, took) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(probe_report(&answer)["results"][0]["error"], "timeout", "{answer}");
    assert!(took >= Duration::from_secs(3), "{took:?}");
}
