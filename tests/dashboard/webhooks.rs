//! The webhooks page over plain HTTP, with a real receiver on 127.0.0.1.

use reqwest::StatusCode;

use crate::agent::{tenant, Agent, PASSWORD};
use crate::helpers::{TestApp, TestTenant, WAIT};
use crate::receiver::{verifies, Receiver};

/// The secret shown once on the page.
fn shown_secret(body: &str) -> String {
    let marker = "id=\"webhook-secret\" class=\"code secret\">";
    let start = body.find(marker).expect("the secret is shown") + marker.len();
    body[start..].split('<').next().unwrap().replace("&#x2f;", "/")
}

#[tokio::test]
async fn a_webhook_made_on_the_page_is_signed_logged_retried_rotated_and_deleted() {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.webhooks.retry_schedule = vec![0, 1, 1];
        c.webhooks.timeout = 5;
    })
    .await;
    let receiver = Receiver::start().await;
    let t = tenant(&app, "basic").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&api, "6281288880002").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    assert!(agent.get("/webhooks").await.body.contains("No webhook endpoints yet."));

    let bad = agent
        .submit(
            "/webhooks",
            "/webhooks",
            &[("url", "ftp://example.com"), ("mode", "notify"), ("events", "x.y")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"form-error\""), "{}", bad.body);

    let url = receiver.url("/hook");
    let made = agent
        .submit(
            "/webhooks",
            "/webhooks",
            &[("url", &url), ("mode", "notify"), ("events", "message.received"), ("events", "message.sent")],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let secret = shown_secret(&made.body);
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(!agent.get("/webhooks").await.body.contains(&secret), "the secret is shown once");
    let (_, hooks) = app.get("/api/user/webhooks", &t.api_key).await;
    assert_eq!(hooks["data"][0]["events"], serde_json::json!(["message.received", "message.sent"]));
    let id = hooks["data"][0]["id"].as_i64().unwrap();

    app.inbound(device, "6281277770009", "halo webhook", None).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert!(verifies(&secret, &got[0]), "signed with the secret the page showed");
    let deadline = tokio::time::Instant::now() + WAIT;
    let page = loop {
        let page = agent.get("/webhooks").await;
        if page.body.contains(">success</span>") || tokio::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(page.body.contains(">success</span>"), "the delivery is logged: {}", page.body);
    assert!(page.body.contains("message.received"), "{}", page.body);

    let (_, logs) = app.get("/api/user/webhook-logs", &t.api_key).await;
    let log = logs["data"][0]["id"].as_i64().unwrap();
    let retried = agent.submit("/webhooks", &format!("/webhook-logs/{log}/retry"), &[]).await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    receiver.wait_for(2, WAIT).await;

    let rotated = agent.submit("/webhooks", &format!("/webhooks/{id}/rotate"), &[]).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = shown_secret(&rotated.body);
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);

    let off = agent.submit("/webhooks", &format!("/webhooks/{id}/toggle"), &[("enabled", "false")]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.body);
    let (_, hook) = app.get(&format!("/api/user/webhooks/{id}"), &t.api_key).await;
    assert_eq!(hook["enabled"], false, "{hook}");

    let stranger = tenant(&app, "basic").await;
    let mut other = Agent::new(&app);
    other.login(&stranger.email, PASSWORD).await;
    let foreign = other.submit("/webhooks", &format!("/webhooks/{id}/delete"), &[]).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let foreign = other.submit("/webhooks", &format!("/webhook-logs/{log}/retry"), &[]).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert!(!other.get("/webhooks").await.body.contains(&url));

    let gone = agent.submit("/webhooks", &format!("/webhooks/{id}/delete"), &[]).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.body);
    let (_, hooks) = app.get("/api/user/webhooks", &t.api_key).await;
    assert_eq!(hooks["total"], 0, "{hooks}");
}

/// A transformation uploaded on the plugins page is chosen for an endpoint on the webhooks
/// page (new, then changed), tried on its own page, and shapes what the receiver gets.
#[tokio::test]
async fn a_transformation_is_chosen_for_an_endpoint_on_the_page_and_shapes_its_requests() {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.webhooks.retry_schedule = vec![0, 1, 1];
    })
    .await;
    let receiver = Receiver::start().await;
    let t = tenant(&app, "premium").await;
    let api = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&api, "6281288880041").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let wasm = std::fs::read(format!("{}/target/plugins/slack-notify.wasm", env!("CARGO_MANIFEST_DIR")))
        .expect("run plugins/build.sh first");
    let made = agent
        .upload(
            "/plugins",
            "/plugins",
            &[("name", "slack")],
            ("file", "slack-notify.wasm", "application/wasm", &wasm),
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let page_path = made.location().to_string();
    let plugin_id = page_path.trim_start_matches("/plugins/").to_string();
    let list = agent.get("/plugins").await.body;
    assert!(list.contains("data-kind=\"transform\""), "the list says what it is: {list}");
    let page = agent.get(&page_path).await.body;
    assert!(page.contains("data-kind=\"transform\">Webhook transformation"), "{page}");
    assert!(page.contains("id=\"transform-hint\"") && !page.contains("id=\"plugin-groups\""), "{page}");

    // Its dry run shows the request it would send.
    let tried = agent
        .submit(
            &page_path,
            &format!("/plugins/{plugin_id}/test"),
            &[("event", "message.received"), ("text", "ada promo?")],
        )
        .await;
    assert_eq!(tried.status, StatusCode::OK, "{}", tried.body);
    assert!(tried.body.contains("The request sent") && tried.body.contains("ada promo?"), "{}", tried.body);

    // The webhooks page offers it for a new endpoint.
    let form = agent.get("/webhooks").await.body;
    assert!(form.contains(&format!("<option value=\"{plugin_id}\" >slack</option>")), "{form}");
    let url = receiver.url("/hook");
    let made = agent
        .submit(
            "/webhooks",
            "/webhooks",
            &[
                ("url", &url),
                ("mode", "notify"),
                ("events", "message.received"),
                ("transform_plugin_id", &plugin_id),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let secret = shown_secret(&made.body);
    let (_, hooks) = app.get("/api/user/webhooks", &t.api_key).await;
    let id = hooks["data"][0]["id"].as_i64().unwrap();
    assert_eq!(hooks["data"][0]["transform_plugin_id"].to_string(), plugin_id, "{hooks}");

    app.inbound(device, "6281277770041", "halo slack", Some("Rina")).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert!(verifies(&secret, &got[0]), "still signed");
    assert_eq!(got[0].json()["text"], "*Rina* (+6281277770041): halo slack");

    // Changed on the page to none: the next event goes out as the standard body.
    let changed =
        agent.submit("/webhooks", &format!("/webhooks/{id}/transform"), &[("transform_plugin_id", "")]).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    let (_, hook) = app.get(&format!("/api/user/webhooks/{id}"), &t.api_key).await;
    assert_eq!(hook["transform_plugin_id"], serde_json::Value::Null, "{hook}");
    app.inbound(device, "6281277770041", "tanpa slack", None).await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].json()["type"], "message.received");
    assert_eq!(got[1].json()["data"]["text"], "tanpa slack");
    // And back: the select shows it chosen.
    let back = agent
        .submit("/webhooks", &format!("/webhooks/{id}/transform"), &[("transform_plugin_id", &plugin_id)])
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let page = agent.get("/webhooks").await.body;
    assert!(page.contains(&format!("<option value=\"{plugin_id}\" selected>slack</option>")), "{page}");
}
