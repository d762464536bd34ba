//! The `whatsapp-web` driver end to end: the gateway runs the real `whatsapp-rust` client, one
//! per device, against the in-process fake WhatsApp server (`tests/support/fake_wa`), and the
//! tests speak to it only through the HTTP API (plus the fake's controls and a look at the
//! session rows in the database).
//!
//! Runs on SQLite, or on PostgreSQL with `GATEWAY_TEST_POSTGRES_URL` set. No fixed sleeps:
//! every step polls the API, reads the gateway's device updates, or waits on the fake's state,
//! with a timeout. Each step's duration is printed (`--nocapture` shows them).
//!
//! This file holds the device lifecycle and the harness; the messaging path (the fake as a
//! real peer: sends decrypted by contacts, receipts, inbound messages, media, resends,
//! offline delivery, groups) is in the files of `whatsapp_web/`.

#[path = "../support/fake_wa/mod.rs"]
mod fake_wa;

mod app_state;
mod backup;
mod cluster;
mod contacts;
mod groups;
mod inbound;
mod kinds;
mod media;
mod offline;
mod outbound;
mod recovery;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_wa::{FakeEvent, FakeWhatsApp, HandshakeKind};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use wa_gateway::app::AppOptions;
use wa_gateway::config::DriverKind;
use wa_gateway::devices::manager::{DeviceStatus, DeviceUpdate};
use wa_gateway::devices::whatsapp_web::driver::WaNetwork;
use wa_gateway::devices::whatsapp_web::store::SqlxStore;

use crate::helpers::{assert_error, poll_until, TestApp, TestAppWith, TestTenant};

const PHONE: &str = "6281381830651";
/// Pairing and logins of the real client: generous for slow CI machines.
const LOGIN: Duration = Duration::from_secs(30);
const STEP: Duration = Duration::from_secs(15);

/// A gateway with the `whatsapp-web` driver on `fake`'s network; restarts keep the network.
async fn spawn(fake: &Arc<FakeWhatsApp>) -> TestAppWith {
    spawn_with(fake, |_| {}).await
}

/// Like [`spawn`], with `configure` applied to the configuration last.
async fn spawn_with(
    fake: &Arc<FakeWhatsApp>,
    configure: impl FnOnce(&mut wa_gateway::Config),
) -> TestAppWith {
    let fake = fake.clone();
    TestApp::spawn_with_options(
        |config| {
            config.whatsapp.driver = DriverKind::WhatsappWeb;
            // Pinned, so the client does not ask WhatsApp for the current version over HTTP.
            config.whatsapp.version = "2.3000.1023456789".to_string();
            config.whatsapp.reconnect_min_ms = 100;
            config.whatsapp.reconnect_max_ms = 2_000;
            configure(config);
        },
        move || AppOptions {
            whatsapp_network: Some(WaNetwork {
                transport: Arc::new(fake.transport_factory()),
                // The fake's media host; any other HTTP request fails the send that made it.
                http: Arc::new(fake.media_host()),
            }),
            ..Default::default()
        },
    )
    .await
}

fn report(step: &str, since: Instant) {
    eprintln!("[whatsapp_web] {step}: {:.3} s", since.elapsed().as_secs_f64());
}

/// Reads the gateway's device updates until `device` left `connected` (to `connecting`) and
/// came back; returns what it went through. (An update of the earlier `connected` may still be
/// in flight when a test drains the receiver: the status is visible before it is broadcast.)
async fn reconnected(updates: &mut broadcast::Receiver<DeviceUpdate>, device: i64) -> Vec<String> {
    let mut seen = updates_until(updates, device, DeviceStatus::Connecting, STEP).await;
    seen.extend(updates_until(updates, device, DeviceStatus::Connected, LOGIN).await);
    seen
}

/// Forgets the device updates received so far.
fn drain(updates: &mut broadcast::Receiver<DeviceUpdate>) {
    while !matches!(
        updates.try_recv(),
        Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
    ) {}
}

/// Reads the gateway's device updates until `device` reaches `target`; returns what it went
/// through on the way (`"qr"` for a QR code offered, the status name otherwise).
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
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                panic!("{n} device updates lost; seen: {seen:?}")
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("the gateway stopped; updates: {seen:?}"),
            Ok(Ok(update)) if update.device_id() != device => {}
            Ok(Ok(DeviceUpdate::Qr { .. })) => seen.push("qr".to_string()),
            Ok(Ok(DeviceUpdate::PairCode { .. })) => seen.push("pair_code".to_string()),
            Ok(Ok(DeviceUpdate::ContactResolved { .. } | DeviceUpdate::Group { .. })) => {}
            Ok(Ok(DeviceUpdate::Status { status, detail, .. })) => {
                seen.push(match &detail {
                    Some(d) => format!("{}({d})", status.as_str()),
                    None => status.as_str().to_string(),
                });
                if status == target {
                    return seen;
                }
            }
        }
    }
}

/// Polls `GET /api/user/devices/{id}` until its status is `status`; returns the device.
async fn wait_status(app: &TestApp, tenant: &TestTenant, id: i64, status: &str, timeout: Duration) -> Value {
    let path = format!("/api/user/devices/{id}");
    poll_until(timeout, || async {
        let (code, body) = app.get(&path, &tenant.api_key).await;
        assert_eq!(code, StatusCode::OK, "get device: {body}");
        (body["status"] == status).then_some(body)
    })
    .await
}

async fn status_of(app: &TestApp, tenant: &TestTenant, id: i64) -> String {
    let (code, body) = app.get(&format!("/api/user/devices/{id}"), &tenant.api_key).await;
    assert_eq!(code, StatusCode::OK, "get device: {body}");
    body["status"].as_str().unwrap_or_default().to_string()
}

/// The handshake of the most recent login of `phone`, from the fake's journal.
fn last_login_handshake(fake: &FakeWhatsApp, phone: &str) -> Option<HandshakeKind> {
    fake.journal().into_iter().rev().find_map(|(_, e)| match e {
        FakeEvent::LoggedIn { phone: p, handshake, .. } if p == phone => Some(handshake),
        _ => None,
    })
}

/// Pairing refs the fake pushed after journal entry `from` (a QR round started).
fn pairing_rounds_since(fake: &FakeWhatsApp, from: usize) -> usize {
    fake.journal().into_iter().skip(from).filter(|(_, e)| matches!(e, FakeEvent::PairingRefs { .. })).count()
}

/// Session rows of the device across the `wa_*` tables, and whether it holds paired keys.
async fn session_rows(app: &TestApp, id: i64) -> (i64, bool) {
    let rows = app.state.db.wa_row_count(id).await.expect("count the session rows");
    let paired = SqlxStore::has_device(&app.state.db, id).await.expect("read the session");
    (rows, paired)
}

/// Creates a device for `phone` and fetches its first QR code (status `qr`). Returns the id and
/// the QR string.
async fn create_with_qr(
    app: &TestApp,
    tenant: &TestTenant,
    fake: &FakeWhatsApp,
    phone: &str,
) -> (i64, String) {
    let (status, body) =
        app.post("/api/user/devices", &tenant.api_key, &json!({ "phone": phone, "name": "Toko" })).await;
    assert_eq!(status, StatusCode::CREATED, "create device: {body}");
    let id = body["id"].as_i64().expect("the device has an id");
    let qr = fetch_qr(app, tenant, fake, id).await;
    (id, qr)
}

/// `GET /api/user/devices/{id}/qr`: the code a phone scans; the device is then in status `qr`.
async fn fetch_qr(app: &TestApp, tenant: &TestTenant, fake: &FakeWhatsApp, id: i64) -> String {
    let (status, body) = app.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
    if status != StatusCode::OK {
        let (_, device) = app.get(&format!("/api/user/devices/{id}"), &tenant.api_key).await;
        panic!("device QR: {status} {body}\ndevice: {device}\nserver journal:\n{}", fake.journal_text());
    }
    let qr = body["qr"].as_str().expect("a QR string").to_string();
    assert_eq!(qr.split(',').count(), 5, "ref,noise,identity,adv,platform: {qr}");
    assert!(body["svg"].as_str().is_some_and(|s| s.contains("<svg")), "{body}");
    assert_eq!(status_of(app, tenant, id).await, "qr");
    qr
}

/// The fake phone `phone` scans `qr`; waits until the device is `connected` and the client's
/// `login`-th login has settled (its post-login queries are done).
async fn scan(
    app: &TestApp,
    tenant: &TestTenant,
    fake: &FakeWhatsApp,
    id: i64,
    qr: &str,
    phone: &str,
    login: usize,
) -> Value {
    fake.scan_as(qr, phone).await.expect("the phone scans the QR code");
    let device = wait_status(app, tenant, id, "connected", LOGIN).await;
    fake.wait_settled(phone, login, STEP).await.expect("the post-login queries");
    device
}

/// A device created and paired through the API: returns its id.
async fn paired_device(app: &TestApp, tenant: &TestTenant, fake: &FakeWhatsApp, phone: &str) -> i64 {
    let (id, qr) = create_with_qr(app, tenant, fake, phone).await;
    scan(app, tenant, fake, id, &qr, phone, 1).await;
    id
}

/// Runs `sql` on the gateway's database directly (test fixtures the API does not offer).
async fn execute_sql(app: &TestApp, sql: &str) {
    let url = &app.config.database.url;
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("the SQLite file opens");
        sqlx::raw_sql(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL answers");
        sqlx::raw_sql(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
    }
}

/// The first column of the first row of `sql` (a text or NULL), read from the gateway's
/// database directly (columns the API does not show).
async fn query_text(app: &TestApp, sql: &str) -> Option<String> {
    let url = &app.config.database.url;
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("the SQLite file opens");
        let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
        value
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL answers");
        let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
        value
    }
}

async fn send_text(app: &TestApp, tenant: &TestTenant, id: i64, to: &str, text: &str) -> (StatusCode, Value) {
    app.post("/api/send-message", &tenant.api_key, &json!({ "device": id, "to": to, "text": text })).await
}

/// QR → scan → `connected` with session rows → send → number check → restart without a QR →
/// dropped connection → the phone logs the device out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_web_lifecycle_through_the_api() {
    let total = Instant::now();
    let fake = FakeWhatsApp::new();
    let mut app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;

    // A new device shows a QR code.
    let t = Instant::now();
    let (id, qr) = create_with_qr(&app, &tenant, &fake, PHONE).await;
    report("create device → QR shown (status qr)", t);
    assert!(!session_rows(&app, id).await.1, "not paired before the scan");

    // The phone scans it: connected, with the session in the database.
    let t = Instant::now();
    let device = scan(&app, &tenant, &fake, id, &qr, PHONE, 1).await;
    report("scan → connected", t);
    assert!(device["jid"].as_str().is_some_and(|j| j.starts_with(PHONE)), "{device}");
    assert_eq!(last_login_handshake(&fake, PHONE), Some(HandshakeKind::Xx));
    let (rows, paired) = session_rows(&app, id).await;
    assert!(paired, "the paired keys are stored");
    assert!(rows > 100, "identity, prekeys, sessions are stored: {rows} rows");

    // A send through the connected device reaches the fake.
    let t = Instant::now();
    let (status, body) = send_text(&app, &tenant, id, "6281299990000", "halo dari gateway").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(matches!(body["status"].as_str(), Some("sent" | "delivered")), "{body}");
    let wa_id = body["wa_id"].as_str().expect("a WhatsApp message id").to_string();
    let recorded = poll_until(STEP, || async {
        let sent = fake.sent(PHONE);
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    report("send-message → stanza at the fake", t);
    assert_eq!(recorded, vec![("6281299990000@s.whatsapp.net".to_string(), wa_id)]);

    // Number checks, one number not on WhatsApp.
    fake.set_unregistered("6281299990001");
    let t = Instant::now();
    let (status, body) = app
        .post(
            &format!("/api/user/devices/{id}/check-numbers"),
            &tenant.api_key,
            &json!({ "numbers": ["6281299990000", "081299990001", "not a number"] }),
        )
        .await;
    report("check-numbers", t);
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = body["data"].as_array().expect("a list");
    assert_eq!(data.len(), 3, "{body}");
    assert_eq!(
        (&data[0]["number"], &data[0]["on_whatsapp"]),
        (&json!("6281299990000"), &json!(true)),
        "{body}"
    );
    assert!(data[0]["jid"].as_str().is_some_and(|j| j.starts_with("6281299990000@")), "{body}");
    assert_eq!(
        (&data[1]["number"], &data[1]["on_whatsapp"]),
        (&json!("6281299990001"), &json!(false)),
        "{body}"
    );
    assert_eq!(data[1]["jid"], Value::Null, "{body}");
    assert_eq!(data[2]["number"], Value::Null, "{body}");
    assert_eq!(data[2]["on_whatsapp"], false, "{body}");

    // A restart: the device reconnects from its stored keys, without a QR code.
    let journal_mark = fake.journal().len();
    let t = Instant::now();
    app = app.restart().await;
    let seen = updates_until(&mut app.updates, id, DeviceStatus::Connected, LOGIN).await;
    wait_status(&app, &tenant, id, "connected", STEP).await;
    report("restart → connected", t);
    assert!(!seen.iter().any(|s| s.starts_with("qr")), "no QR after a restart: {seen:?}");
    assert_eq!(pairing_rounds_since(&fake, journal_mark), 0, "{}", fake.journal_text());
    assert_eq!(last_login_handshake(&fake, PHONE), Some(HandshakeKind::Ik), "a resumed handshake");
    assert_eq!(fake.login_count(PHONE), 2);
    fake.wait_settled(PHONE, 2, STEP).await.expect("the post-login queries");

    // The server drops the connection: the device is connected again by itself.
    drain(&mut app.updates);
    let t = Instant::now();
    assert_eq!(fake.drop_connection(PHONE), 1);
    let seen = reconnected(&mut app.updates, id).await;
    wait_status(&app, &tenant, id, "connected", STEP).await;
    report("dropped connection → connected", t);
    assert!(seen.iter().any(|s| s.starts_with("connecting")), "it noticed the drop: {seen:?}");
    assert!(!seen.iter().any(|s| s.starts_with("qr")), "{seen:?}");
    fake.wait_login_count(PHONE, 3, STEP).await.expect("a new login");
    assert_eq!(last_login_handshake(&fake, PHONE), Some(HandshakeKind::Ik));
    fake.wait_settled(PHONE, 3, STEP).await.expect("the post-login queries");

    // The phone unlinks the device: logged_out, session rows gone, sends refused, no retries.
    let t = Instant::now();
    assert_eq!(fake.logout(PHONE), 1);
    let device = wait_status(&app, &tenant, id, "logged_out", STEP).await;
    report("phone logs out → logged_out", t);
    assert!(device["detail"].as_str().is_some_and(|d| !d.is_empty()), "{device}");
    let rows =
        poll_until(STEP, || async { Some(session_rows(&app, id).await).filter(|r| *r == (0, false)) }).await;
    assert_eq!(rows, (0, false), "the session rows are wiped");
    let (status, body) = send_text(&app, &tenant, id, "6281299990000", "masih ada?").await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");
    fake.wait_disconnected(PHONE, STEP).await.expect("the client is gone");
    assert_eq!(fake.login_count(PHONE), 3, "no login after the logout");
    assert_eq!(status_of(&app, &tenant, id).await, "logged_out");
    report("whole lifecycle", total);
}

/// `POST /api/user/devices/{id}/logout`: the client unlinks itself, the rows are wiped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_web_logout_from_the_api_wipes_the_session() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830652";
    let t = Instant::now();
    let id = paired_device(&app, &tenant, &fake, phone).await;
    report("pair (api logout test)", t);
    assert!(session_rows(&app, id).await.1);

    let t = Instant::now();
    let (status, body) =
        app.post(&format!("/api/user/devices/{id}/logout"), &tenant.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "logged_out", "{body}");
    wait_status(&app, &tenant, id, "logged_out", STEP).await;
    report("API logout → logged_out", t);
    assert_eq!(session_rows(&app, id).await, (0, false), "the session rows are wiped");
    fake.wait_disconnected(phone, STEP).await.expect("the client closed its connection");
    fake.wait_until("the companion unlinked", STEP, |f| !f.is_linked(phone))
        .await
        .expect("the client told WhatsApp it left");
    let (status, body) = send_text(&app, &tenant, id, "6281299990000", "halo").await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_not_connected");
    // No new login: the supervisor does not retry a logged-out device.
    assert_eq!(fake.login_count(phone), 1);
    assert_eq!(session_rows(&app, id).await, (0, false));
}

/// Another client took over the stream: the library stops, the supervisor starts a new client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_web_stream_replaced_is_restarted_by_the_supervisor() {
    let fake = FakeWhatsApp::new();
    let mut app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830653";
    let id = paired_device(&app, &tenant, &fake, phone).await;

    drain(&mut app.updates);
    let t = Instant::now();
    assert_eq!(fake.stream_replaced(phone), 1);
    let seen = reconnected(&mut app.updates, id).await;
    wait_status(&app, &tenant, id, "connected", STEP).await;
    report("stream replaced → connected", t);
    // Still the device's holder: a client outside this gateway took the session, so the
    // status says so and the supervisor reconnects after the longest backoff.
    assert!(seen.iter().any(|s| s.contains("another client outside this gateway")), "{seen:?}");
    fake.wait_login_count(phone, 2, STEP).await.expect("a new client logged in");
    assert_eq!(last_login_handshake(&fake, phone), Some(HandshakeKind::Ik));
    assert_eq!(fake.connections().iter().filter(|c| c.phone.as_deref() == Some(phone)).count(), 1);
    fake.wait_settled(phone, 2, STEP).await.expect("the post-login queries");
    let (status, body) = send_text(&app, &tenant, id, "6281299990000", "masih jalan").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(matches!(body["status"].as_str(), Some("sent" | "delivered")), "{body}");
    let got = fake.wait_messages_of("6281299990000", 1, STEP).await.expect("the contact got it");
    assert_eq!(got[0].content.text(), Some("masih jalan"));
}

/// `POST /api/reset-session`: the old session is gone and a fresh QR round starts; the phone
/// can link the device again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_web_reset_session_yields_a_fresh_qr() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830654";
    let (id, first_qr) = create_with_qr(&app, &tenant, &fake, phone).await;
    scan(&app, &tenant, &fake, id, &first_qr, phone, 1).await;

    let t = Instant::now();
    let (status, body) = app.post("/api/reset-session", &tenant.api_key, &json!({ "device": id })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let qr = fetch_qr(&app, &tenant, &fake, id).await;
    report("reset-session → new QR", t);
    assert_ne!(qr, first_qr);
    // A new identity: the noise and identity keys of the QR differ from the first pairing's.
    let keys = |q: &str| q.split(',').skip(1).take(2).map(str::to_string).collect::<Vec<_>>();
    assert_ne!(keys(&qr), keys(&first_qr), "fresh keys after a reset");
    assert!(!session_rows(&app, id).await.1, "the old pairing is gone");
    assert!(!fake.is_linked(phone), "the old companion unlinked itself");

    // The phone links it again: a second companion device of the account.
    let t = Instant::now();
    scan(&app, &tenant, &fake, id, &qr, phone, 2).await;
    report("scan after reset → connected", t);
    assert!(session_rows(&app, id).await.1);
    assert!(fake.is_linked(phone));
}
