//! Health checks and the OpenAPI document.

use reqwest::{Method, StatusCode};

use crate::helpers::TestApp;

#[tokio::test]
async fn healthz_answers_without_auth() {
    let app = TestApp::spawn().await;
    let (status, body) = app.send(app.request(Method::GET, "/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_answers_when_the_database_is_reachable() {
    let app = TestApp::spawn().await;
    let (status, body) = app.send(app.request(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn openapi_json_lists_the_account_and_admin_paths() {
    let app = TestApp::spawn().await;
    let response = app.request(Method::GET, "/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: serde_json::Value = response.json().await.expect("valid JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')), "{doc}");
    let paths = doc["paths"].as_object().expect("a paths object");
    for path in [
        "/api/user/info",
        "/api/user/limits",
        "/api/user/api-keys",
        "/api/user/activity-logs",
        "/api/admin/tenants",
        "/api/admin/tenants/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(paths["/api/user/info"].get("get").is_some());
    assert!(paths["/api/admin/tenants"].get("post").is_some());
}

#[tokio::test]
async fn the_gateway_keeps_its_data_across_a_restart() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    app.set_limits(&tenant, serde_json::json!({"devices": 2})).await;
    let old_url = app.base_url.clone();
    let app = app.restart().await;
    let (status, body) = app.get("/api/user/info", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["package"], "premium");
    // Limit overrides survive too.
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["limits"]["devices"], 2);
    // The old listener is closed (unless the new one happens to reuse its port).
    if old_url != app.base_url {
        assert!(reqwest::get(format!("{old_url}/healthz")).await.is_err());
    }
}
