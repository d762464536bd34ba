//! The auto-reply, scheduled-message and device-action pages over plain HTTP.

use chrono::{Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::agent::{tenant, Agent, Login, PASSWORD};
use crate::helpers::{poll_until, TestApp, TestTenant, WAIT};

fn api(t: &Login) -> TestTenant {
    TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() }
}

/// The fields of a complete rule form.
fn rule_form<'a>(keyword: &'a str, mode: &'a str, reply: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("keyword", keyword),
        ("match", mode),
        ("reply", reply),
        ("device", ""),
        ("priority", "0"),
        ("cooldown_seconds", "0"),
        ("stop", "on"),
        ("enabled", "on"),
    ]
}

#[tokio::test]
async fn an_auto_reply_made_on_the_page_answers_an_inbound_message_and_can_be_edited_and_deleted() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), "6281244440001").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    assert!(agent.get("/auto-reply").await.body.contains("No auto-reply rules yet."));

    let bad = agent.submit("/auto-reply", "/auto-reply", &rule_form("(", "regex", "x")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "the API refuses a broken regex");
    assert!(bad.body.contains("id=\"form-error\"") && bad.body.contains("keyword"), "{}", bad.body);

    let made = agent
        .submit("/auto-reply", "/auto-reply", &rule_form("harga", "contains", "Harga mulai 10rb, {name}"))
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    assert_eq!(made.location(), "/auto-reply");
    let list = agent.get("/auto-reply").await;
    assert!(list.body.contains("harga") && list.body.contains("Harga mulai 10rb, {name}"), "{}", list.body);
    let (_, rules) = app.get("/api/user/auto-reply", &t.api_key).await;
    assert_eq!(rules["total"], 1, "{rules}");
    let id = rules["data"][0]["id"].as_i64().unwrap();

    app.inbound(device, "6281255550001", "berapa harga kopi?", Some("Budi")).await;
    poll_until(WAIT, || async {
        app.outbox(device).await.iter().any(|m| m["text"] == "Harga mulai 10rb, Budi").then_some(())
    })
    .await;
    let history = agent.get("/history").await;
    assert!(history.body.contains("berapa harga kopi?"), "the inbound message: {}", history.body);
    assert!(history.body.contains("Harga mulai 10rb, Budi"), "the reply: {}", history.body);

    let mut edit = rule_form("harga", "contains", "Harga baru");
    edit.retain(|(k, _)| *k != "stop");
    let saved = agent.submit(&format!("/auto-reply/{id}"), &format!("/auto-reply/{id}"), &edit).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, rule) = app.get(&format!("/api/user/auto-reply/{id}"), &t.api_key).await;
    assert_eq!(rule["reply"], "Harga baru", "{rule}");
    assert_eq!(rule["stop"], false, "an unchecked box turns the option off: {rule}");

    let off = agent.submit("/auto-reply", &format!("/auto-reply/{id}/toggle"), &[("enabled", "false")]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.body);
    let (_, rule) = app.get(&format!("/api/user/auto-reply/{id}"), &t.api_key).await;
    assert_eq!(rule["enabled"], false, "{rule}");
    assert!(agent.get("/auto-reply").await.body.contains(">Enable</button>"));

    let gone = agent.submit("/auto-reply", &format!("/auto-reply/{id}/delete"), &[]).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.body);
    let (_, rules) = app.get("/api/user/auto-reply", &t.api_key).await;
    assert_eq!(rules["total"], 0, "{rules}");
}

#[tokio::test]
async fn another_tenants_auto_reply_is_not_found_on_the_pages() {
    let app = TestApp::spawn().await;
    let mine = tenant(&app, "basic").await;
    let theirs = tenant(&app, "basic").await;
    let (status, rule) = app
        .post(
            "/api/user/auto-reply",
            &theirs.api_key,
            &serde_json::json!({ "keyword": "rahasia", "reply": "jawaban rahasia" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let id = rule["id"].as_i64().unwrap();
    let mut agent = Agent::new(&app);
    agent.login(&mine.email, PASSWORD).await;
    assert_eq!(agent.get(&format!("/auto-reply/{id}")).await.status, StatusCode::NOT_FOUND);
    let delete = agent.submit("/auto-reply", &format!("/auto-reply/{id}/delete"), &[]).await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);
    let edit = agent.submit("/auto-reply", &format!("/auto-reply/{id}"), &rule_form("x", "exact", "y")).await;
    assert_eq!(edit.status, StatusCode::NOT_FOUND);
    assert!(!agent.get("/auto-reply").await.body.contains("rahasia"));
    let (_, still) = app.get(&format!("/api/user/auto-reply/{id}"), &theirs.api_key).await;
    assert_eq!(still["reply"], "jawaban rahasia", "{still}");
}

#[tokio::test]
async fn scheduled_messages_are_made_in_the_tenants_time_zone_listed_and_cancelled() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), "6281244440002").await;
    let (_, info) = app.get("/api/user/info", &t.api_key).await;
    let tz: chrono_tz::Tz = info["timezone"].as_str().unwrap().parse().unwrap();
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let page = agent.get("/scheduled").await;
    assert!(
        page.body.contains("No scheduled messages yet.")
            && page.body.contains(&tz.name().replace('/', "&#x2f;"))
    );

    let local = (Utc::now() + Duration::days(1)).with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string();
    let device_id = device.to_string();
    let once = agent
        .submit(
            "/scheduled",
            "/scheduled",
            &[
                ("device", &device_id),
                ("to", "081299990001"),
                ("text", "Besok ya"),
                ("kind", "once"),
                ("send_at", &local),
                ("cron", "ignored when once"),
            ],
        )
        .await;
    assert_eq!(once.status, StatusCode::SEE_OTHER, "{}", once.body);
    let cron = agent
        .submit(
            "/scheduled",
            "/scheduled",
            &[
                ("device", &device_id),
                ("to", "081299990002"),
                ("text", "Selamat pagi"),
                ("kind", "cron"),
                ("cron", "0 9 * * MON-FRI"),
            ],
        )
        .await;
    assert_eq!(cron.status, StatusCode::SEE_OTHER, "{}", cron.body);
    let bad = agent
        .submit(
            "/scheduled",
            "/scheduled",
            &[
                ("device", &device_id),
                ("to", "081299990003"),
                ("text", "x"),
                ("kind", "cron"),
                ("cron", "nope"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"form-error\"") && bad.body.contains("nope"), "typed values stay");
    let past = (Utc::now() - Duration::days(1)).with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string();
    let late = agent
        .submit(
            "/scheduled",
            "/scheduled",
            &[
                ("device", &device_id),
                ("to", "081299990003"),
                ("text", "x"),
                ("kind", "once"),
                ("send_at", &past),
            ],
        )
        .await;
    assert_eq!(late.status, StatusCode::UNPROCESSABLE_ENTITY, "the past is refused");

    let (_, list) = app.get("/api/user/scheduled-messages", &t.api_key).await;
    assert_eq!(list["total"], 2, "{list}");
    let one_off: &Value = list["data"].as_array().unwrap().iter().find(|s| s["text"] == "Besok ya").unwrap();
    let expected = tz
        .from_local_datetime(&chrono::NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M").unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let stored = chrono::DateTime::parse_from_rfc3339(one_off["send_at"].as_str().unwrap()).unwrap();
    assert_eq!(stored.with_timezone(&Utc), expected, "the local time is read in the tenant's zone");
    let page = agent.get("/scheduled").await;
    assert!(page.body.contains("0 9 * * MON-FRI") && page.body.contains("Besok ya"), "{}", page.body);
    assert!(page.body.contains(&local.replace('T', " ")), "shown in the tenant's zone: {}", page.body);

    let id = one_off["id"].as_i64().unwrap();
    let cancelled = agent.submit("/scheduled", &format!("/scheduled/{id}/cancel"), &[]).await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER, "{}", cancelled.body);
    let (_, s) = app.get(&format!("/api/user/scheduled-messages/{id}"), &t.api_key).await;
    assert_eq!(s["status"], "cancelled", "{s}");
    assert!(agent.get("/scheduled").await.body.contains(">cancelled</span>"));

    let stranger = tenant(&app, "basic").await;
    let mut other = Agent::new(&app);
    other.login(&stranger.email, PASSWORD).await;
    let refused = other.submit("/scheduled", &format!("/scheduled/{id}/cancel"), &[]).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(!other.get("/scheduled").await.body.contains("Besok ya"));
}

#[tokio::test]
async fn the_device_page_shows_a_pair_code_and_logs_out_resets_and_deletes() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let added = agent.submit("/devices", "/devices", &[("phone", "081244440003")]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = added.location().to_string();
    let device: i64 = page.trim_start_matches("/devices/").parse().unwrap();

    let coded = agent.submit(&page, &format!("{page}/pair-code"), &[]).await;
    assert_eq!(coded.status, StatusCode::OK, "{}", coded.body);
    let start = coded.body.find("id=\"pair-code\" class=\"code\">").expect("the code is shown") + 28;
    let code = &coded.body[start..start + 9];
    assert_eq!(&code[4..5], "-", "ABCD-EFGH: {code}");
    let (status, body) =
        app.admin_post("/api/admin/simulator/scan", &serde_json::json!({ "device": device })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.wait_for_device_status(&api(&t), device, "connected").await;

    let refused = agent.submit(&page, &format!("{page}/pair-code"), &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "a connected device needs no code");
    assert!(refused.body.contains("id=\"form-error\""), "{}", refused.body);

    let out = agent.submit(&page, &format!("{page}/logout"), &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(out.location(), page);
    app.wait_for_device_status(&api(&t), device, "logged_out").await;

    let reset = agent.submit(&page, &format!("{page}/reset"), &[]).await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER, "{}", reset.body);
    app.wait_for_device_status(&api(&t), device, "qr").await;

    let stranger = tenant(&app, "basic").await;
    let mut other = Agent::new(&app);
    other.login(&stranger.email, PASSWORD).await;
    let foreign = other.submit("/devices", &format!("{page}/delete"), &[]).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "another tenant cannot delete it");

    let deleted = agent.submit(&page, &format!("{page}/delete"), &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert_eq!(deleted.location(), "/devices");
    let (status, _) = app.get(&format!("/api/user/devices/{device}"), &t.api_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(agent.get(&page).await.status, StatusCode::NOT_FOUND);
}
