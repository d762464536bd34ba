//! The tenant's own account: info, limits, API keys and the activity log.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp};

#[tokio::test]
async fn user_info_describes_the_tenant_behind_the_key() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let (status, body) = app.get("/api/user/info", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], tenant.id);
    assert!(body["name"].as_str().is_some_and(|n| n.starts_with("Tenant ")));
    assert_eq!(body["email"], tenant.email.as_str());
    assert_eq!(body["package"], "premium");
    assert_eq!(body["status"], "active");
    let created = body["created_at"].as_str().expect("created_at is a string");
    let created = DateTime::parse_from_rfc3339(created).expect("created_at is RFC 3339");
    let age = Utc::now().signed_duration_since(created);
    assert!(age.num_seconds().abs() < 60, "created just now: {created}");
}

/// The limits table of `gateway.toml` (and the README), `null` meaning unlimited.
fn package_table(package: &str) -> Value {
    match package {
        "basic" => json!({
            "devices": 1, "messages_per_month": 1000, "auto_replies": 10,
            "scheduled_messages": 50, "plugins": 2, "webhook_endpoints": 2,
            "requests_per_minute": 600, "api_keys": 10,
        }),
        "premium" => json!({
            "devices": 5, "messages_per_month": 10000, "auto_replies": 100,
            "scheduled_messages": 500, "plugins": 10, "webhook_endpoints": 10,
            "requests_per_minute": 3000, "api_keys": 50,
        }),
        "enterprise" => json!({
            "devices": null, "messages_per_month": null, "auto_replies": null,
            "scheduled_messages": null, "plugins": null, "webhook_endpoints": null,
            "requests_per_minute": null, "api_keys": null,
        }),
        other => panic!("no table for {other}"),
    }
}

#[tokio::test]
async fn each_package_reports_the_default_limits_with_null_for_unlimited() {
    let app = TestApp::spawn().await;
    for package in ["basic", "premium", "enterprise"] {
        let tenant = app.create_tenant(package).await;
        let (status, body) = app.get("/api/user/limits", &tenant.api_key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["package"], package);
        assert_eq!(body["limits"], package_table(package), "{package}: {body}");
        assert!(body["limits"].as_object().unwrap().contains_key("devices"));
        for (name, used) in body["usage"].as_object().expect("usage is an object") {
            let expected = if name == "api_keys" { 1 } else { 0 };
            assert_eq!(used, expected, "{package}: a new tenant has used nothing but its first key: {name}");
        }
        assert_eq!(body["usage"]["messages_per_month"], 0);
    }
}

#[tokio::test]
async fn the_limits_period_is_the_current_calendar_month_in_utc() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (_, body) = app.get("/api/user/limits", &tenant.api_key).await;
    let now = Utc::now();
    let start = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).unwrap();
    let end = if now.month() == 12 {
        Utc.with_ymd_and_hms(now.year() + 1, 1, 1, 0, 0, 0).unwrap()
    } else {
        Utc.with_ymd_and_hms(now.year(), now.month() + 1, 1, 0, 0, 0).unwrap()
    };
    let parse = |field: &str| {
        DateTime::parse_from_rfc3339(body[field].as_str().expect(field))
            .unwrap_or_else(|e| panic!("{field} is RFC 3339: {e}"))
            .with_timezone(&Utc)
    };
    assert_eq!(parse("period_start"), start, "{body}");
    assert_eq!(parse("period_end"), end, "{body}");
}

#[tokio::test]
async fn admin_limit_overrides_show_in_user_limits_and_package_reverts_them() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let other = app.create_tenant("basic").await;
    let path = format!("/api/admin/tenants/{}", tenant.id);

    let (status, body) = app
        .admin_patch(&path, &json!({"limits": {"messages_per_month": 5, "devices": null, "auto_replies": 0}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["limits"], json!({"messages_per_month": 5, "devices": null, "auto_replies": 0}));
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["limits"]["messages_per_month"], 5);
    assert_eq!(limits["limits"]["devices"], Value::Null);
    assert_eq!(limits["limits"]["auto_replies"], 0);
    assert_eq!(limits["limits"]["scheduled_messages"], 50);
    // The override is this tenant's alone.
    let (_, theirs) = app.get("/api/user/limits", &other.api_key).await;
    assert_eq!(theirs["limits"], package_table("basic"));

    // "package" goes back to the package's value; the other overrides stay.
    let (status, body) = app.admin_patch(&path, &json!({"limits": {"messages_per_month": "package"}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["limits"]["messages_per_month"], 1000);
    assert_eq!(limits["limits"]["devices"], Value::Null);

    // The admin view of the tenant shows the stored overrides.
    let (status, body) = app.admin_get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["limits"], json!({"devices": null, "auto_replies": 0}));
}

#[tokio::test]
async fn bad_limit_overrides_are_refused_naming_the_limit() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let path = format!("/api/admin/tenants/{}", tenant.id);
    for (limits, field) in [
        (json!({"messages_per_moon": 5}), "limits.messages_per_moon"),
        (json!({"devices": -3}), "limits.devices"),
        (json!({"devices": "lots"}), "limits.devices"),
    ] {
        let (status, body) = app.admin_patch(&path, &json!({ "limits": limits })).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["error"]["field"], field);
    }
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["limits"], package_table("basic"));
}

#[tokio::test]
async fn changing_the_package_changes_the_limits() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) = app
        .admin_patch(&format!("/api/admin/tenants/{}", tenant.id), &json!({"package": "enterprise"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["package"], "enterprise");
    let (_, info) = app.get("/api/user/info", &tenant.api_key).await;
    assert_eq!(info["package"], "enterprise");
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["package"], "enterprise");
    assert_eq!(limits["limits"], package_table("enterprise"));
}

#[tokio::test]
async fn a_new_api_key_is_shown_once_and_never_listed() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, created) =
        app.post("/api/user/api-keys", &tenant.api_key, &json!({"name": "server 2"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["api_key"].as_str().expect("the key is in the answer");
    assert!(key.starts_with("wag_") && key.len() >= 4 + 32, "{key}");
    assert_eq!(created["name"], "server 2");
    let prefix = created["prefix"].as_str().unwrap();
    assert!(key.starts_with(prefix) && prefix.len() < key.len());

    // A key without a body gets a default name.
    let (status, unnamed) = app
        .send(app.request(reqwest::Method::POST, "/api/user/api-keys").header("x-api-key", &tenant.api_key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{unnamed}");

    let (status, list) = app.get("/api/user/api-keys", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    let text = list.to_string();
    assert!(!text.contains(key), "the key itself is never listed: {text}");
    assert!(!text.contains(&tenant.api_key), "{text}");
    for row in list["data"].as_array().unwrap() {
        assert!(row.get("api_key").is_none(), "{row}");
        assert!(row["prefix"].as_str().unwrap().starts_with("wag_"));
    }
}

#[tokio::test]
async fn api_keys_are_listed_in_pages() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    for i in 0..4 {
        let (status, _) =
            app.post("/api/user/api-keys", &tenant.api_key, &json!({"name": format!("k{i}")})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, page) = app.get("/api/user/api-keys?limit=2", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 5);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    // Newest first.
    assert_eq!(page["data"][0]["name"], "k3");

    let (_, last) = app.get("/api/user/api-keys?limit=2&offset=4", &tenant.api_key).await;
    assert_eq!(last["offset"], 4);
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    assert_eq!(last["data"][0]["name"], "default");

    let (status, body) = app.get("/api/user/api-keys?limit=lots", &tenant.api_key).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "limit");
}

#[tokio::test]
async fn a_deleted_key_leaves_the_list_and_another_tenants_key_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let other = app.create_tenant("basic").await;
    let (_, created) = app.post("/api/user/api-keys", &tenant.api_key, &json!({"name": "temp"})).await;
    let id = created["id"].as_i64().unwrap();

    // Another tenant cannot see or revoke it: not found, and the key keeps working.
    let (status, body) = app.delete(&format!("/api/user/api-keys/{id}"), &other.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, theirs) = app.get("/api/user/api-keys", &other.api_key).await;
    assert_eq!(theirs["total"], 1);
    let temp_key = created["api_key"].as_str().unwrap();
    assert_eq!(app.get("/api/user/info", temp_key).await.0, StatusCode::OK);

    let (status, body) = app.delete(&format!("/api/user/api-keys/{id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, list) = app.get("/api/user/api-keys", &tenant.api_key).await;
    assert_eq!(list["total"], 1);
    assert!(list["data"].as_array().unwrap().iter().all(|k| k["id"] != id));

    let (status, body) = app.delete(&format!("/api/user/api-keys/{id}"), &tenant.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

fn actions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_activity_log_records_key_changes_and_suspension_with_the_source_ip() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let other = app.create_tenant("basic").await;

    let (_, created) = app.post("/api/user/api-keys", &tenant.api_key, &json!({"name": "ci"})).await;
    let key_id = created["id"].as_i64().unwrap();
    let (status, _) = app.delete(&format!("/api/user/api-keys/{key_id}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let path = format!("/api/admin/tenants/{}", tenant.id);
    app.admin_patch(&path, &json!({"status": "suspended"})).await;
    app.admin_patch(&path, &json!({"status": "active"})).await;
    // The other tenant does something too.
    app.post("/api/user/api-keys", &other.api_key, &json!({})).await;

    let (status, log) = app.get("/api/user/activity-logs", &tenant.api_key).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(
        actions(&log),
        ["tenant.activate", "tenant.suspend", "api_key.revoke", "api_key.create", "tenant.create"],
        "newest first: {log}"
    );
    assert_eq!(log["total"], 5);
    let entries = log["data"].as_array().unwrap();
    let find = |action: &str| entries.iter().find(|e| e["action"] == action).unwrap();
    let create = find("api_key.create");
    assert_eq!(create["actor"], "tenant");
    assert_eq!(create["ip"], "127.0.0.1");
    assert_eq!(create["target"], format!("api_key:{key_id}"));
    let revoke = find("api_key.revoke");
    assert_eq!(revoke["ip"], "127.0.0.1");
    assert_eq!(revoke["target"], format!("api_key:{key_id}"));
    let suspend = find("tenant.suspend");
    assert_eq!(suspend["actor"], "admin");
    assert_eq!(suspend["ip"], "127.0.0.1");
    assert_eq!(suspend["target"], format!("tenant:{}", tenant.id));
    for entry in entries {
        DateTime::parse_from_rfc3339(entry["created_at"].as_str().unwrap()).unwrap();
    }

    // Only the tenant's own entries: the other tenant sees its creation and its key.
    let (_, theirs) = app.get("/api/user/activity-logs", &other.api_key).await;
    assert_eq!(actions(&theirs), ["api_key.create", "tenant.create"], "{theirs}");
    assert!(!theirs.to_string().contains(&format!("api_key:{key_id}\"")));
}

#[tokio::test]
async fn the_activity_log_is_paginated_and_filtered_by_action() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    for _ in 0..3 {
        app.post("/api/user/api-keys", &tenant.api_key, &json!({})).await;
    }
    let (_, page) = app.get("/api/user/activity-logs?limit=2&offset=1", &tenant.api_key).await;
    assert_eq!(page["total"], 4, "{page}");
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);

    let (_, only) = app.get("/api/user/activity-logs?action=api_key.create", &tenant.api_key).await;
    assert_eq!(only["total"], 3, "{only}");
    assert!(actions(&only).iter().all(|a| a == "api_key.create"));

    // An empty filter, as an HTML form sends it, is no filter.
    let (_, all) = app.get("/api/user/activity-logs?action=", &tenant.api_key).await;
    assert_eq!(all["total"], 4, "{all}");
}

#[tokio::test]
async fn a_tenant_holds_at_most_its_packages_number_of_api_keys() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    // The first key came with the tenant; basic allows 10.
    for i in 2..=10 {
        let (status, body) =
            app.post("/api/user/api-keys", &tenant.api_key, &json!({"name": format!("k{i}")})).await;
        assert_eq!(status, StatusCode::CREATED, "key {i}: {body}");
    }
    let (status, body) = app.post("/api/user/api-keys", &tenant.api_key, &json!({"name": "k11"})).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "limit_exceeded");
    assert_eq!(body["error"]["limit"], "api_keys", "{body}");
    let (_, limits) = app.get("/api/user/limits", &tenant.api_key).await;
    assert_eq!(limits["usage"]["api_keys"], 10, "{limits}");
    let (_, list) = app.get("/api/user/api-keys?limit=1", &tenant.api_key).await;
    assert_eq!(list["total"], 10);

    // A revoked key frees its place.
    let newest = list["data"][0]["id"].as_i64().unwrap();
    assert_eq!(
        app.delete(&format!("/api/user/api-keys/{newest}"), &tenant.api_key).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = app.post("/api/user/api-keys", &tenant.api_key, &json!({"name": "again"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The operator is not held to the package.
    let (status, body) =
        app.admin_post(&format!("/api/admin/tenants/{}/api-keys", tenant.id), &json!({"name": "ops"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
