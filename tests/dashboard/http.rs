//! The dashboard over plain HTTP: login, throttling, CSRF, logout, isolation, sending.

use reqwest::StatusCode;

use crate::agent::{tenant, Agent, PASSWORD};
use crate::helpers::{poll_until, TestApp, TestTenant, WAIT};

#[tokio::test]
async fn logging_in_with_the_right_password_opens_the_home_page() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut agent = Agent::new(&app);
    let page = agent.get("/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "a visitor is sent to the login page");
    assert_eq!(page.location(), "/login");

    let wrong = agent.login(&t.email, "not-the-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong email or password."), "{}", wrong.body);

    let ok = agent.login(&t.email, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let cookie = ok.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cookie.starts_with("wag_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax")
    );
    assert!(!cookie.contains("Secure"), "no Secure flag over http");
    let home = agent.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Toko Dashboard") && home.body.contains("Package usage"), "{}", home.body);
}

#[tokio::test]
async fn indonesian_is_shown_when_the_browser_prefers_it_and_the_choice_is_remembered() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut agent = Agent::new(&app);
    agent.accept_language = "id-ID,id;q=0.9,en;q=0.5";
    assert!(agent.get("/login").await.body.contains("Masuk ke dashboard"));
    agent.login(&t.email, PASSWORD).await;
    assert!(agent.get("/").await.body.contains("Pemakaian paket"));
    let switched = agent.submit("/", "/lang", &[("lang", "en"), ("next", "/devices")]).await;
    assert_eq!(switched.location(), "/devices");
    agent.cookies.remove("wag_lang");
    assert!(agent.get("/").await.body.contains("Package usage"), "the session remembers the language");
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut agent = Agent::new(&app);
    for _ in 0..5 {
        assert_eq!(agent.login(&t.email, "wrong-password").await.status, StatusCode::UNAUTHORIZED);
    }
    let refused = agent.login(&t.email, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(refused.body.contains("Too many failed attempts"));
    assert!(!agent.cookies.contains_key("wag_session"));
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut agent = Agent::new(&app);
    agent.get("/login").await;
    let login = agent.post("/login", &[("email", &t.email), ("password", PASSWORD)]).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN, "login without the token");
    agent.login(&t.email, PASSWORD).await;
    let add = agent.post("/devices", &[("phone", "6281200000001")]).await;
    assert_eq!(add.status, StatusCode::FORBIDDEN);
    let forged = agent.post("/devices", &[("csrf", &"0".repeat(64)), ("phone", "6281200000001")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let logout = agent.post("/logout", &[]).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    let (_, devices) = app.get("/api/user/devices", &t.api_key).await;
    assert_eq!(devices["total"], 0, "nothing was created");
}

#[tokio::test]
async fn logging_out_ends_the_session() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let old = agent.cookies.clone();
    let out = agent.submit("/", "/logout", &[]).await;
    assert_eq!(out.location(), "/login");
    assert!(!agent.cookies.contains_key("wag_session"));
    agent.cookies = old;
    assert_eq!(agent.get("/").await.status, StatusCode::SEE_OTHER, "the old cookie no longer works");
}

#[tokio::test]
async fn another_tenants_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let mine = tenant(&app, "basic").await;
    let theirs = tenant(&app, "basic").await;
    let other = TestTenant { id: theirs.id, api_key: theirs.api_key.clone(), email: theirs.email.clone() };
    let device = app.pair_device(&other, "6281300000002").await;
    let (status, sent) = app
        .post(
            "/api/send-message",
            &other.api_key,
            &serde_json::json!({ "device": device, "to": "6281399999999", "text": "rahasia" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let mut agent = Agent::new(&app);
    agent.login(&mine.email, PASSWORD).await;
    for path in [
        format!("/devices/{device}"),
        format!("/devices/{device}/qr.svg"),
        format!("/devices/{device}/events"),
        format!("/history/{}", sent["id"]),
    ] {
        let page = agent.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.body.contains("rahasia"), "{path}");
    }
    let history = agent.get("/history").await;
    assert!(!history.body.contains("rahasia"));
}

#[tokio::test]
async fn a_message_sent_from_the_page_form_appears_in_history_and_its_csv() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;

    let added = agent.submit("/devices", "/devices", &[("phone", "081211112222"), ("name", "Kasir")]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let device: i64 = added.location().trim_start_matches("/devices/").parse().unwrap();
    let page = agent.get(added.location()).await;
    assert!(page.body.contains("Kasir") && page.body.contains("/qr.svg"), "{}", page.body);
    let qr = agent.get(&format!("/devices/{device}/qr.svg")).await;
    assert_eq!(qr.status, StatusCode::OK);
    assert!(qr.body.contains("<svg"));
    let (status, body) =
        app.admin_post("/api/admin/simulator/scan", &serde_json::json!({ "device": device })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.wait_for_device_status(&api, device, "connected").await;

    let over = agent.submit("/devices", "/devices", &[("phone", "081211113333")]).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "the basic package has one device");
    assert!(over.body.contains("Your package limit is reached."), "{}", over.body);

    let bad = agent
        .submit("/send", "/send", &[("device", &device.to_string()), ("to", "12"), ("text", "halo")])
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"form-error\""), "the error is shown next to the form");

    let sent = agent
        .submit(
            "/send",
            "/send",
            &[("device", &device.to_string()), ("to", "081299998888"), ("text", "Halo dari dashboard")],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert!(sent.location().starts_with("/send?sent="));
    assert!(agent.get(sent.location()).await.body.contains("The message was sent."));
    poll_until(WAIT, || async {
        app.outbox(device).await.iter().any(|m| m["text"] == "Halo dari dashboard").then_some(())
    })
    .await;

    let history = agent.get("/history?direction=out&q=dashboard").await;
    assert!(history.body.contains("Halo dari dashboard"), "{}", history.body);
    let none = agent.get("/history?direction=in").await;
    assert!(!none.body.contains("Halo dari dashboard"));
    let id = sent.location().trim_start_matches("/send?sent=");
    let detail = agent.get(&format!("/history/{id}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.body.contains("Status history") && detail.body.contains("Halo dari dashboard"));
    let csv = agent.get("/history/export.csv?direction=out").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(csv.body.starts_with("id,created_at") && csv.body.contains("Halo dari dashboard"));
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let wrong = agent
        .submit(
            "/password",
            "/password",
            &[("current_password", "nope-nope"), ("new_password", "baru-sekali-456")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = agent
        .submit(
            "/password",
            "/password",
            &[("current_password", PASSWORD), ("new_password", "baru-sekali-456")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body.contains("Your password was changed."));
    let mut fresh = Agent::new(&app);
    assert_eq!(fresh.login(&t.email, PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fresh.login(&t.email, "baru-sekali-456").await.status, StatusCode::SEE_OTHER);
}

/// Behind a reverse proxy every user arrives from the proxy's address. With the proxy
/// configured as trusted, the throttle and the activity log see the client's own address, so
/// wrong passwords from one client do not keep another out.
#[tokio::test]
async fn behind_a_trusted_proxy_wrong_passwords_from_one_client_do_not_lock_out_another() {
    let app = TestApp::spawn_with(|c| c.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let t = tenant(&app, "basic").await;
    let mut guesser = Agent::new(&app);
    guesser.forwarded_for = Some("198.51.100.66");
    for _ in 0..5 {
        assert_eq!(guesser.login(&t.email, "wrong-password").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(guesser.login(&t.email, PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);

    let mut owner = Agent::new(&app);
    owner.forwarded_for = Some("203.0.113.7");
    let ok = owner.login(&t.email, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(owner.get("/").await.status, StatusCode::OK);

    let (_, log) = app.get("/api/user/activity-logs?action=dashboard.login", &t.api_key).await;
    assert_eq!(log["data"][0]["ip"], "203.0.113.7", "{log}");
    let (_, log) = app.get("/api/user/activity-logs?action=dashboard.login_failed", &t.api_key).await;
    assert_eq!(log["total"], 5, "{log}");
    assert!(log["data"].as_array().unwrap().iter().all(|e| e["ip"] == "198.51.100.66"), "{log}");
}

/// Without a trusted proxy, a client cannot pick the address it is counted under.
#[tokio::test]
async fn a_forwarded_header_from_an_untrusted_peer_changes_nothing() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut guesser = Agent::new(&app);
    for (i, ip) in ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"]
        .into_iter()
        .enumerate()
    {
        guesser.forwarded_for = Some(ip);
        assert_eq!(
            guesser.login(&t.email, "wrong-password").await.status,
            StatusCode::UNAUTHORIZED,
            "try {i}"
        );
    }
    guesser.forwarded_for = Some("198.51.100.6");
    let refused = guesser.login(&t.email, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "still counted under its own address");
    let (_, log) = app.get("/api/user/activity-logs?action=dashboard.login_failed", &t.api_key).await;
    assert!(log["data"].as_array().unwrap().iter().all(|e| e["ip"] == "127.0.0.1"), "{log}");
}

/// Dashboard pages count against the tenant's requests per minute, together with its keys.
#[tokio::test]
async fn dashboard_pages_count_against_the_tenants_requests_per_minute() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    app.set_limits(&api, serde_json::json!({"requests_per_minute": 6})).await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/user/info", &t.api_key).await.0, StatusCode::OK);
    }
    for page in ["/", "/devices", "/history"] {
        assert_eq!(agent.get(page).await.status, StatusCode::OK, "{page}");
    }
    let over = agent.get("/").await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "{}", over.body);
    assert!(over.headers.contains_key("retry-after"));
    assert!(over.body.contains("Too many requests a minute"), "{}", over.body);
    assert_eq!(app.get("/api/user/info", &t.api_key).await.0, StatusCode::TOO_MANY_REQUESTS);
}
