//! The tenant's API keys (create, shown once; revoke) and activity log, from the tenant API.

use axum::extract::{Path, RawQuery};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::Value;

use super::pages::{failure_page, localize, numeric, query};
use super::render;
use super::session::{Form, Signed, Viewer, Visitor};

/// Activity entries per page.
const ACTIVITY_PAGE: i64 = 50;

/// The live API keys with the form for a new one.
pub async fn api_keys(Signed { v, me }: Signed) -> Response {
    keys_page(&v, &me, StatusCode::OK, None, None).await
}

async fn keys_page(
    v: &Visitor,
    me: &Viewer,
    status: StatusCode,
    created: Option<Value>,
    error: Option<String>,
) -> Response {
    match v.dash.json(v, me, Method::GET, "/api/user/api-keys?limit=100", None).await {
        Ok(mut page) => {
            localize(&mut page["data"], &["created_at", "last_used_at"], me);
            let keys = page["data"].take();
            render(v, status, "api_keys.html", context! { nav => "api_keys", keys, created, error })
        }
        Err(f) => failure_page(v, &f),
    }
}

/// Creates a key and shows it this once (the page is not cached: see `render`).
pub async fn create_api_key(form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let body = serde_json::json!({ "name": form.get("name").trim() });
    match v.dash.json(v, &me, Method::POST, "/api/user/api-keys", Some(&body)).await {
        Ok(key) => keys_page(v, &me, StatusCode::CREATED, Some(key), None).await,
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            keys_page(v, &me, status, None, Some(f.text(v))).await
        }
    }
}

/// Revokes a key at once.
pub async fn revoke_api_key(Path(id): Path<String>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    match v.dash.json(v, &me, Method::DELETE, &format!("/api/user/api-keys/{id}"), None).await {
        Ok(_) => Redirect::to("/api-keys").into_response(),
        Err(f) => failure_page(v, &f),
    }
}

/// What was done on the account, newest first, 50 a page, optionally one action only.
pub async fn activity(Signed { v, me }: Signed, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let given = |name: &str| {
        form_urlencoded::parse(raw.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let action = given("action");
    let offset = given("offset").parse::<i64>().unwrap_or(0).max(0);
    let size = ACTIVITY_PAGE.to_string();
    let api_query = query(&[("action", &action), ("limit", &size), ("offset", &offset.to_string())]);
    let uri = format!("/api/user/activity-logs?{api_query}");
    match v.dash.json(&v, &me, Method::GET, &uri, None).await {
        Ok(mut page) => {
            localize(&mut page["data"], &["created_at"], &me);
            let total = page["total"].as_i64().unwrap_or(0);
            let entries = page["data"].take();
            let shown = entries.as_array().map(|a| a.len() as i64).unwrap_or(0);
            let prev = (offset > 0).then(|| {
                query(&[("action", &action), ("offset", &(offset - ACTIVITY_PAGE).max(0).to_string())])
            });
            let next = (offset + shown < total)
                .then(|| query(&[("action", &action), ("offset", &(offset + ACTIVITY_PAGE).to_string())]));
            render(
                &v,
                StatusCode::OK,
                "activity.html",
                context! { nav => "activity", entries, action, total, prev, next },
            )
        }
        Err(f) => failure_page(&v, &f),
    }
}
