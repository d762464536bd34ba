//! Scheduled messages: the API, the worker sending each run exactly once (across restarts,
//! crashes and two processes), missed runs, recurring runs in a time zone, limits and media.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Days, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, poll_until, postgres, TestApp, TestTenant, WAIT};
use crate::rules::settle;

const DEVICE: &str = "6281381830651";
const BUDI: &str = "6281234567890";
const BUDI_CHAT: &str = "6281234567890@s.whatsapp.net";

/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\
\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82";

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn in_secs(secs: f64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds((secs * 1000.0) as i64)
}

fn time_of(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

async fn create(app: &TestApp, tenant: &TestTenant, body: Value) -> Value {
    let (status, row) = app.post("/api/user/scheduled-messages", &tenant.api_key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "schedule {body}: {row}");
    row
}

/// Polls the scheduled message until its status is `status`; returns it.
async fn wait_for(app: &TestApp, tenant: &TestTenant, id: i64, status: &str) -> Value {
    let path = format!("/api/user/scheduled-messages/{id}");
    poll_until(WAIT, || async {
        let (code, body) = app.get(&path, &tenant.api_key).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        (body["status"] == status).then_some(body)
    })
    .await
}

/// Sleeps until the wall clock passes `t` (a scheduled time has to pass in real time).
async fn until(t: DateTime<Utc>) {
    while let Ok(left) = (t - Utc::now()).to_std() {
        tokio::time::sleep(left.min(Duration::from_millis(200))).await;
    }
}

/// The outbound messages of the tenant that the scheduler produced.
async fn scheduled_history(app: &TestApp, tenant: &TestTenant) -> Vec<Value> {
    let (status, body) = app.get("/api/user/chat-history?direction=out&limit=500", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().iter().filter(|m| m["source"] == "scheduled").cloned().collect()
}

/// Moves a scheduled message's next run to `at` (Unix ms), as if that time had come.
async fn make_due(app: &TestApp, id: i64, at: i64) {
    let url = &app.config.database.url;
    let sql = "UPDATE scheduled_messages SET next_run_at = $1 WHERE id = $2";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("the SQLite file opens");
        sqlx::query(sql).bind(at).bind(id).execute(&pool).await.expect("the update runs");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL answers");
        sqlx::query(sql).bind(at).bind(id).execute(&pool).await.expect("the update runs");
        pool.close().await;
    }
}

/// The next time the wall clock in `tz` shows `hh:mm` after `after`.
fn next_local(tz: Tz, hh: u32, mm: u32, after: DateTime<Utc>) -> DateTime<Utc> {
    let mut day = after.with_timezone(&tz).date_naive();
    loop {
        let local = day.and_time(NaiveTime::from_hms_opt(hh, mm, 0).unwrap());
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            let t = t.with_timezone(&Utc);
            if t > after {
                return t;
            }
        }
        day = day + Days::new(1);
    }
}

#[tokio::test]
async fn a_message_scheduled_three_seconds_ahead_arrives_once_and_shows_sent() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let send_at = in_secs(3.0);
    let row = create(
        &app,
        &tenant,
        json!({"pengirim": DEVICE, "nomor": "081234567890", "pesan": "Jangan lupa rapat jam 10", "send_at": rfc3339(send_at)}),
    )
    .await;
    assert_eq!(row["status"], "pending");
    assert_eq!(row["to"], BUDI);
    assert_eq!(row["device"], DEVICE);
    assert_eq!(row["timezone"], "Asia/Jakarta");
    assert_eq!(row["cron"], Value::Null);
    assert_eq!(row["error"], Value::Null);
    assert_eq!(time_of(&row["send_at"]), time_of(&json!(rfc3339(send_at))));
    assert_eq!(row["next_run_at"], row["send_at"]);
    let id = row["id"].as_i64().unwrap();

    let done = wait_for(&app, &tenant, id, "sent").await;
    settle(&app, &tenant).await;
    let outbox = app.outbox(device).await;
    assert_eq!(outbox.len(), 1, "arrived once: {outbox:?}");
    assert_eq!(outbox[0]["to"], BUDI_CHAT);
    assert_eq!(outbox[0]["text"], "Jangan lupa rapat jam 10");
    assert!(time_of(&outbox[0]["at"]) >= send_at, "not before its time: {} < {send_at}", outbox[0]["at"]);
    assert_eq!(done["runs"], 1);
    assert_eq!(done["next_run_at"], Value::Null);
    assert!(time_of(&done["last_run_at"]) >= send_at);
    let history = scheduled_history(&app, &tenant).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(done["message_id"], history[0]["id"]);

    // The scheduler finds nothing more to do, and a sent message cannot be cancelled.
    assert_eq!(app.state.scheduler.tick().await.unwrap(), wa_gateway::scheduler::worker::Tick::Ran(0));
    let (status, body) = app.delete(&format!("/api/user/scheduled-messages/{id}"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(app.outbox(device).await.len(), 1);
}

#[tokio::test]
async fn a_recurring_message_runs_and_waits_for_its_next_run_in_its_time_zone() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let created_at = Utc::now();
    let daily = create(
        &app,
        &tenant,
        json!({"device": DEVICE, "to": BUDI, "text": "Selamat pagi", "cron": "0 9 * * *"}),
    )
    .await;
    assert_eq!(daily["status"], "pending");
    assert_eq!(daily["send_at"], Value::Null);
    assert_eq!(daily["cron"], "0 9 * * *");
    let jakarta = chrono_tz::Asia::Jakarta;
    assert_eq!(time_of(&daily["next_run_at"]), next_local(jakarta, 9, 0, created_at));
    let ny = create(
        &app,
        &tenant,
        json!({"device": DEVICE, "to": BUDI, "text": "Good morning", "cron": "30 8 * * *", "timezone": "America/New_York"}),
    )
    .await;
    assert_eq!(ny["timezone"], "America/New_York");
    assert_eq!(time_of(&ny["next_run_at"]), next_local(chrono_tz::America::New_York, 8, 30, created_at));

    // Nine o'clock comes: the run goes out and the message waits for tomorrow.
    let id = daily["id"].as_i64().unwrap();
    make_due(&app, id, Utc::now().timestamp_millis() - 1000).await;
    let path = format!("/api/user/scheduled-messages/{id}");
    let after = poll_until(WAIT, || async {
        let (_, row) = app.get(&path, &tenant.api_key).await;
        (!row["last_run_at"].is_null()).then_some(row)
    })
    .await;
    assert_eq!(after["status"], "pending", "{after}");
    assert_eq!(after["runs"], 1);
    assert_eq!(after["error"], Value::Null);
    assert!(after["message_id"].is_i64());
    let ran_at = time_of(&after["last_run_at"]);
    assert_eq!(time_of(&after["next_run_at"]), next_local(jakarta, 9, 0, ran_at));
    settle(&app, &tenant).await;
    let outbox = app.outbox(device).await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["text"], "Selamat pagi");

    // Cancelling ends it.
    let (status, cancelled) = app.delete(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["next_run_at"], Value::Null);
}

#[tokio::test]
async fn bad_cron_unknown_time_zones_and_past_times_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    app.pair_device(&tenant, DEVICE).await;
    let soon = rfc3339(in_secs(3600.0));
    let base = json!({"device": DEVICE, "to": BUDI, "text": "hi"});
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (with(json!({"cron": "61 * * * *"})), "cron"),
        (with(json!({"cron": "* * * *"})), "cron"),
        (with(json!({"cron": "0 0 9 * * *"})), "cron"),
        (with(json!({"cron": "every day at nine"})), "cron"),
        (with(json!({"cron": "0 0 30 2 *"})), "cron"),
        (with(json!({"cron": "0 9 * * *", "timezone": "Mars/Olympus"})), "timezone"),
        (with(json!({"send_at": soon, "timezone": "Asia/Jakartaa"})), "timezone"),
        (with(json!({"send_at": soon, "cron": "0 9 * * *"})), "cron"),
        (with(json!({})), "send_at"),
        (with(json!({"send_at": rfc3339(in_secs(-60.0))})), "send_at"),
        (with(json!({"send_at": "tomorrow morning"})), "send_at"),
        (json!({"device": DEVICE, "to": BUDI, "send_at": soon}), "text"),
        (json!({"device": DEVICE, "to": BUDI, "text": " ", "send_at": soon}), "text"),
        (json!({"device": DEVICE, "to": "12", "text": "hi", "send_at": soon}), "to"),
        (with(json!({"send_at": soon, "media_url": "ftp://example.com/a.png"})), "media_url"),
        (with(json!({"send_at": soon, "media_url": "http://127.0.0.1/a.png"})), "media_url"),
        (
            with(
                json!({"send_at": soon, "media_url": "https://example.com/a.png", "media_type": "hologram"}),
            ),
            "media_type",
        ),
        (with(json!({"send_at": soon, "media_type": "image"})), "media_url"),
        (with(json!({"send_at": soon, "colour": "red"})), "colour"),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/api/user/scheduled-messages", &tenant.api_key, &body).await;
        assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = app
        .post(
            "/api/user/scheduled-messages",
            &tenant.api_key,
            &json!({"device": "6289999", "to": BUDI, "text": "hi", "send_at": soon}),
        )
        .await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = app.get("/api/user/scheduled-messages", &tenant.api_key).await;
    assert_eq!(list["total"], 0, "nothing was stored: {list}");

    // A local time without an offset is read in the schedule's time zone.
    let row =
        create(&app, &tenant, with(json!({"send_at": "2099-01-02T09:00:00", "timezone": "asia/makassar"})))
            .await;
    assert_eq!(row["timezone"], "Asia/Makassar");
    assert_eq!(time_of(&row["send_at"]), Utc.with_ymd_and_hms(2099, 1, 2, 1, 0, 0).unwrap());
}

#[tokio::test]
async fn a_message_that_fell_due_while_the_gateway_was_down_is_sent_at_start() {
    let mut app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let send_at = in_secs(2.0);
    let row = create(
        &app,
        &tenant,
        json!({"device": DEVICE, "to": BUDI, "text": "Promo hari ini", "send_at": rfc3339(send_at)}),
    )
    .await;
    let id = row["id"].as_i64().unwrap();
    app.stop().await;
    until(send_at + chrono::Duration::milliseconds(500)).await;

    let app = app.restart().await;
    let done = wait_for(&app, &tenant, id, "sent").await;
    assert_eq!(done["runs"], 1);
    let outbox = poll_until(WAIT, || async {
        let sent = app.outbox(device).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    settle(&app, &tenant).await;
    assert_eq!(app.outbox(device).await.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["text"], "Promo hari ini");
}

#[tokio::test]
async fn a_message_more_late_than_the_missed_grace_is_marked_missed_and_not_sent() {
    let mut app = TestApp::spawn_with(|c| c.scheduler.missed_grace = 1).await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let send_at = in_secs(2.0);
    let row = create(
        &app,
        &tenant,
        json!({"device": DEVICE, "to": BUDI, "text": "Promo kemarin", "send_at": rfc3339(send_at)}),
    )
    .await;
    let id = row["id"].as_i64().unwrap();
    app.stop().await;
    until(send_at + chrono::Duration::milliseconds(2500)).await;

    let app = app.restart().await;
    let missed = wait_for(&app, &tenant, id, "missed").await;
    assert!(missed["error"].as_str().unwrap().contains("missed_grace"), "{missed}");
    assert_eq!(missed["next_run_at"], Value::Null);
    assert_eq!(missed["message_id"], Value::Null);
    app.wait_for_device_status(&tenant, device, "connected").await;
    settle(&app, &tenant).await;
    assert!(app.outbox(device).await.is_empty());
    assert!(scheduled_history(&app, &tenant).await.is_empty());
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["scheduled_messages"], 0, "a missed message is no longer pending: {limits}");
}

#[tokio::test]
async fn a_crash_between_sending_and_recording_does_not_send_twice() {
    let app = TestApp::spawn_with(|c| c.scheduler.claim_lease = 1).await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    app.state.scheduler.halt_after_next_send();
    let row = create(
        &app,
        &tenant,
        json!({"device": DEVICE, "to": BUDI, "text": "Tagihan bulan ini", "send_at": rfc3339(in_secs(1.0))}),
    )
    .await;
    let id = row["id"].as_i64().unwrap();

    // The message went out, but the worker "died" before recording the run.
    let first = poll_until(WAIT, || async {
        let history = scheduled_history(&app, &tenant).await;
        history.into_iter().find(|m| m["status"] == "sent")
    })
    .await;
    let (_, before) = app.get(&format!("/api/user/scheduled-messages/{id}"), &tenant.api_key).await;
    assert_eq!(before["status"], "pending", "not recorded: {before}");
    assert_eq!(before["runs"], 1);
    let first_outbox = app.outbox(device).await;
    assert_eq!(first_outbox.len(), 1, "{first_outbox:?}");

    // After a restart the run is taken up again once the lease ran out, and recorded.
    let app = app.restart().await;
    let done = wait_for(&app, &tenant, id, "sent").await;
    assert_eq!(done["runs"], 2, "{done}");
    assert_eq!(done["message_id"], first["id"], "the run found the message it queued before");
    app.wait_for_device_status(&tenant, device, "connected").await;
    settle(&app, &tenant).await;
    assert!(app.outbox(device).await.is_empty(), "nothing was sent a second time");
    assert_eq!(scheduled_history(&app, &tenant).await.len(), 1);
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn two_gateway_processes_on_one_postgres_send_each_due_message_once() {
    assert!(postgres::server_url().is_some(), "{} is not set: this test needs PostgreSQL", postgres::ENV);
    let first = TestApp::spawn_with(|c| c.scheduler.poll_interval_ms = 20).await;
    let second = first.spawn_second().await;
    // The device is paired after the second process started, so only the first holds its
    // session; the second queues what it claims for the first to send.
    let tenant = first.create_tenant("enterprise").await;
    let device = first.pair_device(&tenant, DEVICE).await;
    const N: usize = 40;
    let send_at = rfc3339(in_secs(6.0));
    let creates = (0..N).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        let body = json!({"device": DEVICE, "to": BUDI, "text": format!("pesan {i}"), "send_at": send_at});
        let key = tenant.api_key.clone();
        async move { app.post("/api/user/scheduled-messages", &key, &body).await }
    });
    for (status, body) in futures::future::join_all(creates).await {
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let rows = poll_until(Duration::from_secs(30), || async {
        let (_, list) =
            first.get("/api/user/scheduled-messages?status=sent&limit=100", &tenant.api_key).await;
        (list["total"] == N).then_some(list["data"].as_array().unwrap().clone())
    })
    .await;
    for row in &rows {
        assert_eq!(row["runs"], 1, "claimed once: {row}");
    }
    let history = scheduled_history(&first, &tenant).await;
    assert_eq!(history.len(), N, "one message per scheduled message");

    // Nudge the first process's sender (a send waits for the queue ahead of it), then read
    // what reached the phone.
    let (status, body) = first
        .post("/api/send-message", &tenant.api_key, &json!({"device": DEVICE, "to": BUDI, "text": "selesai"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let outbox = poll_until(WAIT, || async {
        let sent = first.outbox(device).await;
        (sent.len() > N).then_some(sent)
    })
    .await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &outbox {
        *seen.entry(m["text"].as_str().unwrap().to_string()).or_default() += 1;
    }
    for i in 0..N {
        assert_eq!(seen.get(&format!("pesan {i}")), Some(&1), "pesan {i}: {seen:?}");
    }
    drop(second);
}

#[tokio::test]
async fn pending_messages_count_against_the_limit_even_when_created_at_once() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    app.pair_device(&tenant, DEVICE).await;
    app.set_limits(&tenant, json!({"scheduled_messages": 3})).await;
    let soon = rfc3339(in_secs(3600.0));
    let creates = (0..10).map(|i| {
        let body = json!({"device": DEVICE, "to": BUDI, "text": format!("m{i}"), "send_at": soon});
        let key = tenant.api_key.clone();
        let app = &app;
        async move { app.post("/api/user/scheduled-messages", &key, &body).await }
    });
    let results = futures::future::join_all(creates).await;
    let created: Vec<&Value> =
        results.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, b)| b).collect();
    assert_eq!(created.len(), 3, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_error(*status, body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
        assert_eq!(body["error"]["limit"], "scheduled_messages", "{body}");
    }
    // A cancelled one no longer counts.
    let id = created[0]["id"].as_i64().unwrap();
    let (status, _) = app.delete(&format!("/api/user/scheduled-messages/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK);
    create(&app, &tenant, json!({"device": DEVICE, "to": BUDI, "text": "again", "send_at": soon})).await;
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["scheduled_messages"], 3, "{limits}");
}

#[tokio::test]
async fn scheduled_messages_are_listed_and_cancelled_by_their_tenant_only() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let intruder = app.create_tenant("basic").await;
    // Far enough ahead that the pending list below is read before it is due, even on a busy
    // machine.
    let soon = in_secs(6.0);
    let later = create(
        &app,
        &tenant,
        json!({"device": device, "to": BUDI, "text": "nanti", "send_at": rfc3339(in_secs(3600.0))}),
    )
    .await;
    let id = later["id"].as_i64().unwrap();
    create(
        &app,
        &tenant,
        json!({"device": device, "to": BUDI, "text": "sebentar lagi", "send_at": rfc3339(soon)}),
    )
    .await;
    let path = format!("/api/user/scheduled-messages/{id}");

    let (status, got) = app.get(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, later);
    for (status, body) in
        [app.get(&path, &intruder.api_key).await, app.delete(&path, &intruder.api_key).await]
    {
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, list) = app.get("/api/user/scheduled-messages", &intruder.api_key).await;
    assert_eq!(list["total"], 0);

    let (status, cancelled) = app.delete(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, again) = app.delete(&path, &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "cancelling twice is harmless: {again}");
    assert_eq!(again["status"], "cancelled");

    let (_, list) = app.get("/api/user/scheduled-messages", &tenant.api_key).await;
    assert_eq!(list["total"], 2, "{list}");
    let (_, pending) = app.get("/api/user/scheduled-messages?status=pending", &tenant.api_key).await;
    assert_eq!(pending["total"], 1, "{pending}");
    assert_eq!(pending["data"][0]["text"], "sebentar lagi");
    let (status, body) = app.get("/api/user/scheduled-messages?status=done", &tenant.api_key).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // The cancelled message never goes out; the other one does.
    until(soon).await;
    let (_, sent) = poll_until(WAIT, || async {
        let (s, list) = app.get("/api/user/scheduled-messages?status=sent", &tenant.api_key).await;
        // The page and its total are two reads: a status that changes between them can give
        // a total of 1 with no row yet.
        (list["total"] == 1 && list["data"].as_array().is_some_and(|d| d.len() == 1)).then_some((s, list))
    })
    .await;
    assert_eq!(sent["data"][0]["text"], "sebentar lagi");
    settle(&app, &tenant).await;
    let texts: Vec<Value> = app.outbox(device).await.into_iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts, [json!("sebentar lagi")]);

    let (_, log) = app.get("/api/user/activity-logs?limit=100", &tenant.api_key).await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == format!("scheduled:{id}"))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["scheduled.cancel", "scheduled.create"], "{log}");
}

/// A web server on 127.0.0.1 serving a PNG at `/promo.png`.
async fn media_server() -> SocketAddr {
    let router = axum::Router::new()
        .route("/promo.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], PNG).into_response() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port for the media server");
    let addr = listener.local_addr().expect("the media server's address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test]
async fn media_by_url_is_fetched_when_the_scheduled_message_goes_out() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_targets = true).await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    let server = media_server().await;
    let url = format!("http://{server}/promo.png");
    let row = create(
        &app,
        &tenant,
        json!({"device": DEVICE, "to": BUDI, "text": "Promo minggu ini", "media_url": url, "media_type": "image",
               "send_at": rfc3339(in_secs(1.0))}),
    )
    .await;
    assert_eq!(row["media_url"], url);
    assert_eq!(row["media_type"], "image");
    let id = row["id"].as_i64().unwrap();
    wait_for(&app, &tenant, id, "sent").await;
    settle(&app, &tenant).await;
    let outbox = app.outbox(device).await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["media"]["kind"], "image", "{outbox:?}");
    assert_eq!(outbox[0]["media"]["mime"], "image/png");
    assert_eq!(outbox[0]["media"]["caption"], "Promo minggu ini");

    // A URL that no longer answers fails the run with the reason.
    let row = create(
        &app,
        &tenant,
        json!({"device": DEVICE, "to": BUDI, "media_url": format!("http://{server}/gone.png"), "send_at": rfc3339(in_secs(1.0))}),
    )
    .await;
    let failed = wait_for(&app, &tenant, row["id"].as_i64().unwrap(), "failed").await;
    assert!(failed["error"].as_str().unwrap().contains("404"), "{failed}");
}

#[tokio::test]
async fn a_scheduled_message_over_the_monthly_limit_fails_with_the_reason() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, DEVICE).await;
    app.set_limits(&tenant, json!({"messages_per_month": 0})).await;
    let row = create(
        &app,
        &tenant,
        json!({"device": DEVICE, "to": BUDI, "text": "Promo", "send_at": rfc3339(in_secs(1.0))}),
    )
    .await;
    let failed = wait_for(&app, &tenant, row["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(failed["error"], "limit_exceeded: messages_per_month");
    assert!(app.outbox(device).await.is_empty());
}
