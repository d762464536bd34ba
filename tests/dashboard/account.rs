//! The API keys and activity log pages over plain HTTP.

use reqwest::StatusCode;

use crate::agent::{tenant, Agent, PASSWORD};
use crate::helpers::TestApp;

#[tokio::test]
async fn an_api_key_made_on_the_page_is_shown_once_works_and_can_be_revoked() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let page = agent.get("/api-keys").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(&t.api_key), "a stored key is never shown again");

    let made = agent.submit("/api-keys", "/api-keys", &[("name", "Kasir POS")]).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.headers["cache-control"], "no-store");
    let marker = "id=\"new-key\" class=\"code secret\">";
    let start = made.body.find(marker).expect("the key is shown") + marker.len();
    let key = made.body[start..].split('<').next().unwrap().replace("&#x2f;", "/");
    let (status, info) = app.get("/api/user/info", &key).await;
    assert_eq!(status, StatusCode::OK, "the new key works: {info}");
    let again = agent.get("/api-keys").await;
    assert!(again.body.contains("Kasir POS") && !again.body.contains(&key), "shown only once");

    let (_, keys) = app.get("/api/user/api-keys", &t.api_key).await;
    let id = keys["data"].as_array().unwrap().iter().find(|k| k["name"] == "Kasir POS").unwrap()["id"]
        .as_i64()
        .unwrap();
    let stranger = tenant(&app, "basic").await;
    let mut other = Agent::new(&app);
    other.login(&stranger.email, PASSWORD).await;
    let foreign = other.submit("/api-keys", &format!("/api-keys/{id}/revoke"), &[]).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "another tenant cannot revoke it");
    assert_eq!(app.get("/api/user/info", &key).await.0, StatusCode::OK);

    let revoked = agent.submit("/api-keys", &format!("/api-keys/{id}/revoke"), &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert_eq!(app.get("/api/user/info", &key).await.0, StatusCode::UNAUTHORIZED);
    assert!(!agent.get("/api-keys").await.body.contains("Kasir POS"));

    let log = agent.get("/activity").await;
    assert_eq!(log.status, StatusCode::OK);
    for action in ["dashboard.login", "api_key.create", "api_key.revoke"] {
        assert!(log.body.contains(&format!("<code>{action}</code>")), "{action}: {}", log.body);
    }
    let only = agent.get("/activity?action=api_key.revoke").await;
    assert!(only.body.contains("api_key.revoke") && !only.body.contains("<code>dashboard.login</code>"));
    let theirs = other.get("/activity").await;
    assert!(!theirs.body.contains("<code>api_key.revoke</code>"), "each tenant sees its own log");
}

#[tokio::test]
async fn a_read_only_key_made_on_the_page_reads_and_cannot_send() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let form = agent.get("/api-keys").await;
    assert!(form.body.contains("name=\"scope\" value=\"send\" checked"), "every box ticked at first");

    let none = agent.submit("/api-keys", "/api-keys", &[("name", "kosong"), ("scopes_shown", "1")]).await;
    assert_eq!(none.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", none.body);

    let fields = [("name", "Laporan"), ("scopes_shown", "1"), ("scope", "read")];
    let made = agent.submit("/api-keys", "/api-keys", &fields).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let marker = "id=\"new-key\" class=\"code secret\">";
    let start = made.body.find(marker).expect("the key is shown") + marker.len();
    let key = made.body[start..].split('<').next().unwrap().replace("&#x2f;", "/");
    assert_eq!(app.get("/api/user/info", &key).await.0, StatusCode::OK);
    let send = serde_json::json!({"device": 1, "to": "6281234567890", "text": "halo"});
    assert_eq!(app.post("/api/send-message", &key, &send).await.0, StatusCode::FORBIDDEN);
    let listed = agent.get("/api-keys").await;
    let row = listed.body.split("Laporan").nth(1).expect("the key is listed");
    assert!(row.split("</tr>").next().unwrap().contains("<td class=\"scopes\">read</td>"), "{}", listed.body);
}

#[tokio::test]
async fn a_key_made_on_the_page_for_one_device_sees_only_that_device() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "premium").await;
    let api = crate::helpers::TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let shop = app.pair_device(&api, "6281381830658").await;
    let other = app.pair_device(&api, "6281381830659").await;
    let mut agent = Agent::new(&app);
    agent.login(&t.email, PASSWORD).await;
    let form = agent.get("/api-keys").await;
    assert!(form.body.contains("name=\"device_access\" value=\"all\" checked"), "every device at first");
    assert!(form.body.contains(&format!("name=\"device\" value=\"{other}\"")), "a box per device");

    let nothing_ticked = [("name", "Cabang"), ("device_access", "only")];
    let refused = agent.submit("/api-keys", "/api-keys", &nothing_ticked).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    let shop_id = shop.to_string();
    let stranger = tenant(&app, "basic").await;
    let theirs =
        crate::helpers::TestTenant { id: stranger.id, api_key: stranger.api_key, email: stranger.email };
    let foreign = app.pair_device(&theirs, "6281381830660").await.to_string();
    let foreign_box = [("name", "Cabang"), ("device_access", "only"), ("device", foreign.as_str())];
    let refused = agent.submit("/api-keys", "/api-keys", &foreign_box).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "another tenant's device: {}", refused.body);

    let fields = [("name", "Cabang"), ("device_access", "only"), ("device", shop_id.as_str())];
    let made = agent.submit("/api-keys", "/api-keys", &fields).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let marker = "id=\"new-key\" class=\"code secret\">";
    let start = made.body.find(marker).expect("the key is shown") + marker.len();
    let key = made.body[start..].split('<').next().unwrap().replace("&#x2f;", "/");
    assert_eq!(app.get(&format!("/api/user/devices/{shop}"), &key).await.0, StatusCode::OK);
    assert_eq!(app.get(&format!("/api/user/devices/{other}"), &key).await.0, StatusCode::NOT_FOUND);
    let listed = agent.get("/api-keys").await;
    let row = listed.body.split("Cabang").nth(1).expect("the key is listed");
    let cell = row.split("<td class=\"devices\">").nth(1).unwrap().split("</td>").next().unwrap();
    assert_eq!(cell, "Device 6281381830658", "{}", listed.body);
}
