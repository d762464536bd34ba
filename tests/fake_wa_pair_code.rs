//! The `whatsapp-web` driver through the gateway's HTTP API, for what the lifecycle tests in
//! `tests/api/whatsapp_web.rs` leave out:
//!
//! - linking by pair code against the in-process fake WhatsApp server
//!   (`tests/support/fake_wa`): the API returns the code the real client generated, the fake
//!   phone types it (the primary's side of the code exchange), the device becomes `connected`;
//! - no network: with WhatsApp unreachable a device says so in its status and keeps retrying
//!   at a backoff's pace, and the gateway keeps answering.
//!
//! Runs on SQLite, or on PostgreSQL with `GATEWAY_TEST_POSTGRES_URL` set. No fixed sleeps:
//! every step polls the API, reads the gateway's device updates, or waits on the fake's state.

#[path = "support/fake_wa/mod.rs"]
mod fake_wa;

#[path = "api/helpers.rs"]
mod helpers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_wa::{FakeEvent, FakeWhatsApp};
use helpers::{poll_until, TestApp, TestAppWith, TestTenant};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use wa_gateway::app::AppOptions;
use wa_gateway::config::DriverKind;
use wa_gateway::devices::manager::{DeviceStatus, DeviceUpdate};
use wa_gateway::devices::whatsapp_web::driver::WaNetwork;
use wa_gateway::devices::whatsapp_web::store::SqlxStore;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::transport::TokioWebSocketTransportFactory;

const PHONE: &str = "6281381830661";
/// Pairing and logins of the real client: generous for slow CI machines.
const LOGIN: Duration = Duration::from_secs(30);
const STEP: Duration = Duration::from_secs(15);
/// The driver reports an unreachable WhatsApp after 10 s of silence (`NO_ANSWER_AFTER`).
const NO_ANSWER: Duration = Duration::from_secs(10);
/// The pair-code alphabet (Crockford base 32 without 0, I, O, U).
const CODE_ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTVWXYZ";

/// The client must not need HTTP here: the version is pinned and nothing is uploaded.
struct NoHttp;

#[whatsapp_rust::async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        anyhow::bail!("unexpected HTTP request in a fake-network test: {}", request.url)
    }
}

/// A gateway with the `whatsapp-web` driver on the network `network` builds.
async fn spawn(network: impl Fn() -> WaNetwork + Send + Sync + 'static) -> TestAppWith {
    TestApp::spawn_with_options(
        |config| {
            config.whatsapp.driver = DriverKind::WhatsappWeb;
            // Pinned, so the client does not ask WhatsApp for the current version over HTTP.
            config.whatsapp.version = "2.3000.1023456789".to_string();
            config.whatsapp.reconnect_min_ms = 100;
            config.whatsapp.reconnect_max_ms = 2_000;
        },
        move || AppOptions { whatsapp_network: Some(network()), ..Default::default() },
    )
    .await
}

fn report(step: &str, since: Instant) {
    eprintln!("[fake_wa_pair_code] {step}: {:.3} s", since.elapsed().as_secs_f64());
}

async fn create_device(app: &TestApp, tenant: &TestTenant, phone: &str) -> i64 {
    let (status, body) =
        app.post("/api/user/devices", &tenant.api_key, &json!({ "phone": phone, "name": "Toko" })).await;
    assert_eq!(status, StatusCode::CREATED, "create device: {body}");
    body["id"].as_i64().expect("the device has an id")
}

async fn device(app: &TestApp, tenant: &TestTenant, id: i64) -> Value {
    let (status, body) = app.get(&format!("/api/user/devices/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "get device: {body}");
    body
}

/// Polls `GET /api/user/devices/{id}` until `accept` takes it; returns the device.
async fn wait_device(
    app: &TestApp,
    tenant: &TestTenant,
    id: i64,
    timeout: Duration,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    poll_until(timeout, || async {
        let body = device(app, tenant, id).await;
        accept(&body).then_some(body)
    })
    .await
}

/// Reads the gateway's device updates until `device` reaches `target`; returns what it went
/// through (`"qr"`, `"pair_code"`, or the status name).
async fn updates_until(
    updates: &mut broadcast::Receiver<DeviceUpdate>,
    device: i64,
    target: DeviceStatus,
    timeout: Duration,
) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Err(_) => {
                panic!("device {device} did not become {target:?} within {timeout:?}; updates: {seen:?}")
            }
            Ok(Err(e)) => panic!("device updates: {e}; seen: {seen:?}"),
            Ok(Ok(update)) if update.device_id() != device => {}
            Ok(Ok(DeviceUpdate::Qr { .. })) => seen.push("qr".to_string()),
            Ok(Ok(DeviceUpdate::PairCode { code, .. })) => seen.push(format!("pair_code({code})")),
            Ok(Ok(DeviceUpdate::ContactResolved { .. } | DeviceUpdate::Group { .. })) => {}
            Ok(Ok(DeviceUpdate::Status { status, .. })) => {
                seen.push(status.as_str().to_string());
                if status == target {
                    return seen;
                }
            }
        }
    }
}

/// `POST /api/user/devices/{id}/pair-code` → the fake phone types the code → `connected`.
/// A wrong code typed first links nothing, so the code the API shows is the one that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_code_typed_on_the_phone_links_the_device() {
    let fake = FakeWhatsApp::new();
    let network_fake = fake.clone();
    let mut app = spawn(move || WaNetwork {
        transport: Arc::new(network_fake.transport_factory()),
        http: Arc::new(NoHttp),
    })
    .await;
    let tenant = app.create_tenant("premium").await;
    let id = create_device(&app, &tenant, PHONE).await;

    // The API asks the client for a code; the client's companion_hello reaches the fake.
    let t = Instant::now();
    let (status, body) =
        app.post(&format!("/api/user/devices/{id}/pair-code"), &tenant.api_key, &json!({})).await;
    report("create device → pair code", t);
    if status != StatusCode::OK {
        panic!("pair code: {status} {body}\nserver journal:\n{}", fake.journal_text());
    }
    let code = body["code"].as_str().expect("a code").to_string();
    assert_eq!(code.len(), 8, "{body}");
    assert!(code.chars().all(|c| CODE_ALPHABET.contains(c)), "{body}");
    assert!(body["expires_at"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    let request = fake.pair_code_request(PHONE).expect("the fake accepted a companion_hello for the number");
    assert!(request.push_notification, "the phone is told to show a notification");
    assert!(!request.platform_display.is_empty(), "{request:?}");
    let asking =
        fake.connections().into_iter().find(|c| c.id == request.conn).expect("its connection is open");
    assert!(asking.phone.is_none() && !asking.refs.is_empty(), "an unpaired connection showing QR codes");
    assert_eq!(device(&app, &tenant, id).await["status"], "qr");

    // A wrong code: the phone cannot open the companion's key bundle; nothing is linked.
    let wrong = if code == "ABCDEFGH" { "HGFEDCBA" } else { "ABCDEFGH" };
    let refused = fake.enter_pair_code(PHONE, wrong).await.expect_err("a wrong code links nothing");
    assert!(format!("{refused:#}").contains("does not open"), "{refused:#}");
    assert!(!fake.is_linked(PHONE));
    assert!(fake
        .journal()
        .iter()
        .any(|(_, e)| matches!(e, FakeEvent::PairCodeEntered { accepted: false, .. })));
    assert_eq!(device(&app, &tenant, id).await["status"], "qr");

    // The code the API showed: the phone links the device, which logs in.
    let t = Instant::now();
    let paired = fake.enter_pair_code(PHONE, &code).await.expect("the code links the device");
    let seen = updates_until(&mut app.updates, id, DeviceStatus::Connected, LOGIN).await;
    let linked = wait_device(&app, &tenant, id, STEP, |d| d["status"] == "connected").await;
    report("code typed → connected", t);
    assert!(seen.contains(&format!("pair_code({code})")), "the code went out as an update: {seen:?}");
    assert!(linked["jid"].as_str().is_some_and(|j| j.starts_with(PHONE)), "{linked}");
    assert_eq!(paired.phone, PHONE);
    assert!(fake.is_linked(PHONE));
    assert!(fake.pair_code_request(PHONE).is_none(), "the request is used up");
    fake.wait_settled(PHONE, 1, STEP).await.expect("the post-login queries");
    assert!(SqlxStore::has_device(&app.state.db, id).await.expect("read the session"), "keys stored");
}

/// WhatsApp's address accepts connections and closes them at once: the device says
/// `connecting` with the error in its detail, the client retries with backoff (a few attempts,
/// not a flood), and the gateway keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_cannot_reach_whatsapp_says_so_and_keeps_retrying() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/ws/chat", listener.local_addr().expect("address"));
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let refuser = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let app = spawn(move || WaNetwork {
        transport: Arc::new(TokioWebSocketTransportFactory::new().with_url(url.clone())),
        http: Arc::new(NoHttp),
    })
    .await;
    let tenant = app.create_tenant("premium").await;

    let created = Instant::now();
    let id = create_device(&app, &tenant, PHONE).await;
    // The supervisor starts the session just after the create answers: connecting soon, long
    // before the watchdog's detail.
    let first = wait_device(&app, &tenant, id, STEP, |d| d["status"] == "connecting").await;
    assert!(first["detail"].is_null(), "{first}");

    // The driver's watchdog puts the failure into the status.
    let stuck = wait_device(&app, &tenant, id, NO_ANSWER + STEP, |d| {
        d["detail"].as_str().is_some_and(|s| !s.is_empty())
    })
    .await;
    report("create device → detail says WhatsApp is unreachable", created);
    assert_eq!(stuck["status"], "connecting", "{stuck}");
    let detail = stuck["detail"].as_str().unwrap_or_default();
    eprintln!("[fake_wa_pair_code] detail: {detail}");
    assert!(detail.contains("no answer from WhatsApp") && detail.contains("last error"), "{detail}");
    assert!(detail.contains("still retrying"), "{detail}");
    let at_report = attempts.load(Ordering::SeqCst);
    assert!(at_report >= 2, "it retried before reporting: {at_report} attempts");

    // It keeps trying, and the gateway answers meanwhile.
    poll_until(STEP, || async { (attempts.load(Ordering::SeqCst) > at_report).then_some(()) }).await;
    let (status, body) = app.send(app.request(Method::GET, "/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.get("/api/user/devices", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let still = device(&app, &tenant, id).await;
    assert_eq!(still["status"], "connecting", "{still}");
    let total = attempts.load(Ordering::SeqCst);
    let elapsed = created.elapsed();
    report(&format!("{total} connection attempts"), created);
    // Fibonacci backoff from 1 s: about 6 attempts in the first 12 s. A retry loop without
    // backoff would make thousands.
    assert!(
        total as f64 <= 2.0 * elapsed.as_secs_f64() + 4.0,
        "{total} attempts in {elapsed:?}: retries are not backed off"
    );
    refuser.abort();
}
