//! New messages reach the home and history pages over the dashboard's event stream.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::agent::{tenant, Agent, Login, PASSWORD};
use crate::helpers::{poll_until, TestApp, TestTenant, WAIT};

/// The `data-live` URL of a page's message table.
fn live_url(body: &str) -> String {
    let start = body.find("data-live=\"").expect("the page has a live table") + 11;
    body[start..].split('"').next().unwrap().replace("&#x2f;", "/").replace("&amp;", "&")
}

/// Opens the event stream with the agent's cookies.
async fn open(agent: &Agent<'_>, url: &str) -> reqwest::Response {
    open_after(agent, url, None).await
}

/// Opens the event stream as a reconnecting EventSource would (`Last-Event-ID`).
async fn open_after(agent: &Agent<'_>, url: &str, last_event_id: Option<i64>) -> reqwest::Response {
    let cookies = agent.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let mut request = agent.app.client.get(agent.app.url(url)).header("cookie", cookies);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    response
}

/// Reads the stream for up to `wait`; what came, and whether `needle` was in it.
async fn read_until(stream: &mut reqwest::Response, needle: &str, wait: Duration) -> (String, bool) {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            _ => break,
        }
    }
    let found = seen.contains(needle);
    (seen, found)
}

async fn logged_in<'a>(app: &'a TestApp, t: &Login) -> Agent<'a> {
    let mut agent = Agent::new(app);
    assert_eq!(agent.login(&t.email, PASSWORD).await.status, StatusCode::SEE_OTHER);
    agent
}

#[tokio::test]
async fn a_new_inbound_message_reaches_its_tenants_live_stream_only() {
    let app = TestApp::spawn().await;
    let a = tenant(&app, "basic").await;
    let b = tenant(&app, "basic").await;
    let a_device = app
        .pair_device(
            &TestTenant { id: a.id, api_key: a.api_key.clone(), email: a.email.clone() },
            "6281266660001",
        )
        .await;
    let b_device = app
        .pair_device(
            &TestTenant { id: b.id, api_key: b.api_key.clone(), email: b.email.clone() },
            "6281266660002",
        )
        .await;
    let mut alice = logged_in(&app, &a).await;
    let mut bob = logged_in(&app, &b).await;
    let home = alice.get("/").await;
    let mut a_stream = open(&alice, &live_url(&home.body)).await;
    let history = bob.get("/history").await;
    let mut b_stream = open(&bob, &live_url(&history.body)).await;

    let sent = app.inbound(a_device, "6281277770001", "pesan langsung untuk A", None).await;
    assert!(sent["id"].is_string(), "{sent}");
    let (events, found) = read_until(&mut a_stream, "pesan langsung untuk A", Duration::from_secs(10)).await;
    assert!(found, "the event arrives: {events}");
    assert!(events.contains("event: message"), "{events}");
    let (_, page) = app.get("/api/user/chat-history?direction=in", &a.api_key).await;
    let id = page["data"][0]["id"].as_i64().unwrap();
    assert!(events.contains(&format!("id: {id}")), "the event names the message {id}: {events}");

    let (leaked, found) = read_until(&mut b_stream, "pesan langsung untuk A", Duration::from_secs(3)).await;
    assert!(!found, "another tenant's stream stays quiet: {leaked}");
    app.inbound(b_device, "6281277770002", "pesan untuk B", None).await;
    let (events, found) = read_until(&mut b_stream, "pesan untuk B", Duration::from_secs(10)).await;
    assert!(found, "B's own message does arrive: {events}");

    let filtered = alice.get("/history?direction=out").await;
    let url = live_url(&filtered.body);
    assert!(url.contains("direction=out"), "the history page's filters go along: {url}");
    let mut out_only = open(&alice, &url).await;
    app.inbound(a_device, "6281277770001", "masuk lagi", None).await;
    let (events, found) = read_until(&mut out_only, "masuk lagi", Duration::from_secs(3)).await;
    assert!(!found, "an inbound message is not an outbound one: {events}");
}

#[tokio::test]
async fn the_live_stream_needs_a_login_and_ends_with_it() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut anonymous = Agent::new(&app);
    let refused = anonymous.get("/live/messages").await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(refused.location(), "/login");

    let mut agent = logged_in(&app, &t).await;
    let mut stream = open(&agent, "/live/messages").await;
    agent.submit("/", "/logout", &[]).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream closes once the session is gone");
}

#[tokio::test]
async fn a_reconnecting_stream_resumes_after_the_last_event_it_saw() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&api, "6281266660003").await;
    app.inbound(device, "6281277770003", "yang pertama", None).await;
    app.inbound(device, "6281277770003", "yang kedua", None).await;
    let ids = poll_until(WAIT, || async {
        let (_, page) = app.get("/api/user/chat-history?direction=in", &t.api_key).await;
        let ids: Vec<i64> =
            page["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_i64()).collect();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    let agent = logged_in(&app, &t).await;
    let mut stream = open_after(&agent, "/live/messages", ids.iter().min().copied()).await;
    let (events, found) = read_until(&mut stream, "yang kedua", Duration::from_secs(10)).await;
    assert!(found, "the message after the last seen one comes: {events}");
    assert!(!events.contains("yang pertama"), "the one already seen does not: {events}");
}

#[tokio::test]
async fn the_home_pages_stream_follows_its_devices_status() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let stranger = tenant(&app, "basic").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&api, "6281266660004").await;
    let mut agent = logged_in(&app, &t).await;
    let url = live_url(&agent.get("/").await.body);
    assert!(url.contains("devices=1"), "{url}");
    let mut stream = open(&agent, &url).await;
    let mut other = logged_in(&app, &stranger).await;
    let their_url = live_url(&other.get("/").await.body);
    let mut theirs = open(&other, &their_url).await;

    let connected = format!("{{\"id\":{device},\"status\":\"connected\"}}");
    let (events, found) = read_until(&mut stream, &connected, Duration::from_secs(10)).await;
    assert!(found && events.contains("event: device"), "the current status comes first: {events}");
    let (status, body) =
        app.post(&format!("/api/user/devices/{device}/logout"), &t.api_key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let logged_out = format!("{{\"id\":{device},\"status\":\"logged_out\"}}");
    let (events, found) = read_until(&mut stream, &logged_out, Duration::from_secs(10)).await;
    assert!(found, "the change follows without a reload: {events}");
    let (leaked, _) = read_until(&mut theirs, "never", Duration::from_secs(2)).await;
    assert!(!leaked.contains(&format!("\"id\":{device}")), "another tenant hears nothing of it: {leaked}");
}

#[tokio::test]
async fn live_rows_carry_the_kind_and_follow_the_type_filter() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&api, "6281266660005").await;
    let mut agent = logged_in(&app, &t).await;
    let url = live_url(&agent.get("/history?type=location").await.body);
    assert!(url.contains("type=location"), "the type filter goes along: {url}");
    let mut stream = open(&agent, &url).await;

    app.inbound(device, "6281277770005", "bukan lokasi", None).await;
    let at = json!({
        "device": device, "from": "6281277770005",
        "location": {"latitude": -7.25, "longitude": 112.75, "name": "Gudang Timur"},
    });
    let (status, body) = app.admin_post("/api/admin/simulator/inbound", &at).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (events, found) = read_until(&mut stream, "Gudang Timur", Duration::from_secs(10)).await;
    assert!(found, "a location without text is listed by its name: {events}");
    assert!(events.contains("\"type\":\"location\""), "{events}");
    assert!(events.contains("\"edited\":false") && events.contains("\"revoked\":false"), "{events}");
    assert!(!events.contains("bukan lokasi"), "a text is not a location: {events}");
}

/// The `change` events among `events` whose data names message `id`, as JSON, in order.
fn changes_of(events: &str, id: i64) -> Vec<serde_json::Value> {
    events
        .split("\n\n")
        .filter(|e| e.lines().any(|l| l == "event: change"))
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(|d| d["id"] == id)
        .collect()
}

#[tokio::test]
async fn status_changes_edits_and_deletions_reach_their_tenants_stream_only() {
    let app = TestApp::spawn().await;
    let a = tenant(&app, "basic").await;
    let b = tenant(&app, "basic").await;
    let a_api = TestTenant { id: a.id, api_key: a.api_key.clone(), email: a.email.clone() };
    let a_device = app.pair_device(&a_api, "6281266660006").await;
    let b_api = TestTenant { id: b.id, api_key: b.api_key.clone(), email: b.email.clone() };
    app.pair_device(&b_api, "6281266660007").await;
    let (status, sent) = app
        .post(
            "/api/send-message",
            &a.api_key,
            &json!({"device": a_device, "to": "6281277770006", "text": "cek centang"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let id = sent["id"].as_i64().unwrap();
    app.wait_for_message_status(&a_api, id, "sent").await;
    let mut alice = logged_in(&app, &a).await;
    let mut bob = logged_in(&app, &b).await;
    let a_url = live_url(&alice.get("/history").await.body);
    let mut a_stream = open(&alice, &a_url).await;
    let b_url = live_url(&bob.get("/history").await.body);
    let mut b_stream = open(&bob, &b_url).await;

    for status in ["delivered", "read"] {
        let (code, answer) = app
            .admin_post("/api/admin/simulator/receipt", &json!({"message_id": id, "status": status}))
            .await;
        assert_eq!(code, StatusCode::OK, "{answer}");
        let needle = format!("\"status\":\"{status}\"");
        let (events, found) = read_until(&mut a_stream, &needle, Duration::from_secs(10)).await;
        assert!(found, "{status} arrives: {events}");
        let change = changes_of(&events, id).pop().unwrap_or_else(|| panic!("a change event: {events}"));
        assert_eq!(change["status"], status, "{change}");
        assert_eq!(change["content"], false, "only the status changed: {change}");
        assert_eq!(change["text"], "cek centang", "{change}");
        assert!(!events.contains(&format!("id: {id}")), "a change moves no resume point: {events}");
    }

    // Deleted through the API: a content change.
    let (status, body) = app.delete(&format!("/api/user/messages/{id}"), &a.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (events, found) = read_until(&mut a_stream, "\"revoked\":true", Duration::from_secs(10)).await;
    assert!(found, "the deletion arrives: {events}");
    assert_eq!(changes_of(&events, id).pop().unwrap()["content"], true, "{events}");

    // Edited on the sender's phone: WhatsApp's edit of an inbound message.
    let from = "6281277770016";
    for body in [
        json!({"device": a_device, "from": from, "text": "harga 10rb", "id": "LIVE-EDIT-1"}),
        json!({"device": a_device, "from": from, "edit": {"message": "LIVE-EDIT-1", "text": "harga 12rb"}}),
    ] {
        let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (events, found) = read_until(&mut a_stream, "harga 12rb", Duration::from_secs(10)).await;
    assert!(found, "the edit arrives: {events}");
    let edited = events
        .split("\n\n")
        .find(|e| e.contains("harga 12rb"))
        .and_then(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .unwrap();
    assert!(events.contains("event: change"), "{events}");
    assert_eq!((edited["content"].clone(), edited["edited"].clone()), (json!(true), json!(true)), "{edited}");

    let (leaked, _) = read_until(&mut b_stream, "never", Duration::from_secs(2)).await;
    assert!(
        !leaked.contains("cek centang") && !leaked.contains("harga") && !leaked.contains("event: change"),
        "another tenant hears nothing of it: {leaked}"
    );
}
