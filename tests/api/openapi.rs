//! The OpenAPI document at `/openapi.json` follows the rules a client generator relies on, and
//! the server takes what the document says it takes. (`.ci/schemathesis.sh` checks the document
//! against the running server in depth; these catch a regression in `cargo test`.)

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const ERROR_BODY: &str = "#/components/schemas/ErrorBody";

async fn document(app: &TestApp) -> Value {
    let (status, doc) = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

/// Every operation: (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    assert!(out.len() > 50, "the document lists the API: {}", out.len());
    out
}

/// The `{names}` in a path template.
fn template_names(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The schemes an operation's `security` names (any one of them is enough).
fn schemes(op: &Value) -> Vec<String> {
    op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|req| req.as_object().into_iter().flat_map(|o| o.keys().cloned()))
        .collect()
}

#[tokio::test]
async fn parameters_are_in_the_path_only_when_the_template_has_them() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (path, method, op) in operations(&doc) {
        let names = template_names(&path);
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        for p in &params {
            let name = p["name"].as_str().unwrap();
            match p["in"].as_str().unwrap() {
                "path" => {
                    assert!(names.iter().any(|n| n == name), "{method} {path}: `{name}` is not in the path");
                    assert_eq!(p["required"], true, "{method} {path}: path parameter `{name}`");
                }
                "query" if ["limit", "offset"].contains(&name) => {
                    assert_ne!(p["required"], true, "{method} {path}: `{name}` is optional");
                }
                "query" | "header" => {}
                other => panic!("{method} {path}: `{name}` in {other}"),
            }
        }
        for name in names {
            assert!(
                params.iter().any(|p| p["in"] == "path" && p["name"] == name.as_str()),
                "{method} {path}: `{{{name}}}` is documented"
            );
        }
    }
    // The lists page with query parameters (the original mistake made them path parameters).
    let history = &doc["paths"]["/api/user/chat-history"]["get"]["parameters"];
    for name in ["limit", "offset", "device", "since", "q"] {
        let p = history.as_array().unwrap().iter().find(|p| p["name"] == name).expect(name);
        assert_eq!(p["in"], "query", "{p}");
    }
}

#[tokio::test]
async fn every_operation_declares_the_credentials_its_path_needs() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let defined = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    for (path, method, op) in operations(&doc) {
        let schemes = schemes(&op);
        for s in &schemes {
            assert!(defined.contains_key(s), "{method} {path}: scheme `{s}` is defined");
        }
        let tenant = path.starts_with("/api/user/")
            || [
                "/api/send-message",
                "/api/send-media",
                "/api/send-location",
                "/api/send-contact",
                "/api/send-poll",
                "/api/reset-session",
            ]
            .contains(&path.as_str());
        if path.starts_with("/api/admin/") {
            assert_eq!(schemes, ["admin_token"], "{method} {path}");
        } else if tenant {
            assert_eq!(schemes, ["api_key", "api_key_bearer", "api_key_query"], "{method} {path}");
        } else {
            assert!(schemes.is_empty(), "{method} {path}: public, yet {schemes:?}");
        }
    }
    for (name, kind, place) in [
        ("api_key", "apiKey", "header"),
        ("api_key_query", "apiKey", "query"),
        ("api_key_bearer", "http", ""),
    ] {
        assert_eq!(defined[name]["type"], kind, "{name}");
        if !place.is_empty() {
            assert_eq!(defined[name]["in"], place, "{name}");
        }
    }
}

#[tokio::test]
async fn a_request_without_credentials_gets_the_401_the_document_promises() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (path, method, op) in operations(&doc) {
        if schemes(&op).is_empty() {
            continue;
        }
        let concrete =
            template_names(&path).iter().fold(path.clone(), |p, name| p.replace(&format!("{{{name}}}"), "1"));
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, body) = app.send(app.request(method.clone(), &concrete)).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(op["responses"]["401"].is_object(), "{method} {path} documents 401");
    }
}

/// What the API reference at `/docs/` shows for each operation: a one-line summary and a tag.
#[tokio::test]
async fn every_operation_has_a_summary_and_a_tag() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (path, method, op) in operations(&doc) {
        let summary = op["summary"].as_str().unwrap_or_default();
        assert!(!summary.trim().is_empty(), "{method} {path} has a summary");
        assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{method} {path} has a tag");
    }
}

#[tokio::test]
async fn every_error_answer_is_documented_with_the_error_body() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (path, method, op) in operations(&doc) {
        let responses = op["responses"].as_object().expect("responses");
        let errors: Vec<(&String, &Value)> =
            responses.iter().filter(|(status, _)| status.parse::<u16>().is_ok_and(|s| s >= 400)).collect();
        assert!(errors.iter().any(|(s, _)| s.starts_with('4')), "{method} {path} documents a 4xx");
        for (status, response) in errors {
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(schema, ERROR_BODY, "{method} {path} {status}");
            assert!(
                response["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} says what it means"
            );
        }
        let has_body = op.get("requestBody").is_some();
        let has_input =
            has_body || op["parameters"].as_array().is_some_and(|p| p.iter().any(|p| p["in"] != "path"));
        let expected: &[&str] = match (has_body, has_input) {
            (true, _) => &["400", "413", "415", "422", "500"],
            (false, true) => &["422", "500"],
            (false, false) => &["500"],
        };
        for status in expected {
            assert!(responses.contains_key(*status), "{method} {path} documents {status}");
        }
        if path.contains('{') {
            assert!(responses.contains_key("404"), "{method} {path} documents 404");
        }
    }
}

#[tokio::test]
async fn request_text_excludes_nul_and_blank_patterns_follow_trim() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let send = &doc["components"]["schemas"]["SendMessageIn"]["properties"];
    let text = regex::Regex::new(send["text"]["pattern"].as_str().unwrap()).unwrap();
    assert!(text.is_match("halo") && !text.is_match(" \t") && !text.is_match("ha\u{0}lo"));
    // Create and update bodies differ where the server treats absence and `null` differently.
    let rule = &doc["components"]["schemas"]["RuleCreate"];
    assert_eq!(rule["required"], json!(["keyword", "reply"]), "{rule}");
    let patch = &doc["components"]["schemas"]["TenantPatch"];
    assert!(patch["required"].is_null(), "every field of a tenant patch is optional: {patch}");
    let limits = patch["properties"]["limits"]["properties"].as_object().unwrap();
    assert!(limits.contains_key("requests_per_minute"), "{patch}");
    let since = doc["paths"]["/api/user/chat-history"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "since")
        .cloned()
        .unwrap();
    assert_eq!(since["allowEmptyValue"], true, "{since}");
    assert_eq!(since["schema"]["anyOf"][0]["format"], "date-time", "{since}");
}

#[tokio::test]
async fn whole_numbers_may_be_written_as_floats() {
    // JSON does not tell 5.0 from 5, and the document's `integer` admits both.
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let rule = json!({"keyword": "halo", "reply": "hai", "priority": 5.0, "cooldown_seconds": 60.0});
    let (status, body) = app.post("/api/user/auto-reply", &tenant.api_key, &rule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["priority"].as_i64(), body["cooldown_seconds"].as_i64()), (Some(5), Some(60)));
    let (status, body) =
        app.post("/api/user/devices", &tenant.api_key, &json!({"phone": 6281234567890.0})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["phone"], "6281234567890");
    let (status, body) = app
        .admin_patch(&format!("/api/admin/tenants/{}", tenant.id), &json!({"limits": {"devices": 3.0}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["limits"]["devices"], 3);
    // A fraction, or a negative number where a phone is meant, is still refused.
    let (status, body) = app
        .post(
            "/api/user/auto-reply",
            &tenant.api_key,
            &json!({"keyword": "a", "reply": "b", "priority": 1.5}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "priority");
    let (status, body) =
        app.post("/api/user/devices", &tenant.api_key, &json!({"phone": -6281234567891_i64})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["error"]["field"], "phone");
}

#[tokio::test]
async fn an_optional_body_may_be_absent_or_null() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) =
        app.send(app.request(Method::POST, "/api/user/api-keys").header("x-api-key", &tenant.api_key)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.post("/api/user/api-keys", &tenant.api_key, &Value::Null).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "api key");
    let path = format!("/api/admin/tenants/{}/api-keys", tenant.id);
    let (status, body) = app.admin_post(&path, &Value::Null).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn an_id_that_is_not_a_number_is_a_404_json_error() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let (status, body) = app.delete("/api/user/api-keys/abc", &tenant.api_key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    for path in ["/api/admin/tenants/abc", "/api/admin/tenants/99999999999999999999999"] {
        let (status, body) = app.admin_get(path).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}
