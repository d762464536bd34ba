//! Operator pages behind the admin login: tenants (create, package, limit overrides, suspend,
//! reactivate) and their usage this month.
//!
//! The operator logs in with the admin token. The login is a random token in the
//! `wag_admin` cookie (HttpOnly, SameSite=Lax, path `/admin`); the gateway keeps, in memory,
//! its SHA-256 and the admin token it was opened with, so pages call the admin API's own
//! handlers in-process with that token, and a changed admin token ends every operator login.
//! A restart ends them too. Forms carry the double-submit CSRF token of the login form.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{failure_page, numeric};
use super::session::{cookie, random_token, Form, Visitor};
use super::{render, Caller};
use crate::api::extract::Tenant;
use crate::app::AppState;
use crate::tenants::hash_key;

pub const ADMIN_COOKIE: &str = "wag_admin";

/// How long an operator login lasts.
const ADMIN_SESSION: Duration = Duration::from_secs(8 * 3600);

/// Operator logins: SHA-256 of the cookie's token → the admin token and the expiry.
#[derive(Default)]
pub struct AdminSessions {
    live: Mutex<HashMap<String, (String, Instant)>>,
}

impl AdminSessions {
    fn open(&self, admin_token: &str) -> String {
        let token = random_token();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, (_, until)| *until > Instant::now());
        live.insert(hash_key(&token), (admin_token.to_string(), Instant::now() + ADMIN_SESSION));
        token
    }

    /// The admin token of a live login.
    fn token(&self, cookie_token: &str) -> Option<String> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(&hash_key(cookie_token)).filter(|(_, until)| *until > Instant::now()).map(|(t, _)| t.clone())
    }

    fn close(&self, cookie_token: &str) {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&hash_key(cookie_token));
    }
}

/// The admin token of the operator's login, when the request has a live one.
fn operator(v: &Visitor, headers: &axum::http::HeaderMap, state: &AppState) -> Option<String> {
    let token = cookie(headers, ADMIN_COOKIE)?;
    v.dash.admins.token(&token).filter(|t| state.admin_token.verify(t))
}

fn admin_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{ADMIN_COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// The admin token form.
pub async fn login_page(v: Visitor) -> Response {
    render(&v, StatusCode::OK, "admin_login.html", context! { nav => "admin" })
}

/// Checks the admin token (throttled like tenant logins) and opens an operator login.
pub async fn login(State(state): State<AppState>, form: Form) -> Response {
    let v = &form.v;
    let ip = v.ip.clone().unwrap_or_default();
    if !v.dash.throttle.allowed("admin", &ip) {
        let error = v.lang.t("login_throttled");
        return render(v, StatusCode::TOO_MANY_REQUESTS, "admin_login.html", context! { error });
    }
    let token = form.get("token").trim();
    if token.is_empty() || !state.admin_token.verify(token) {
        v.dash.throttle.failed("admin", &ip);
        let error = v.lang.t("admin_login_failed");
        return render(v, StatusCode::UNAUTHORIZED, "admin_login.html", context! { error });
    }
    v.dash.throttle.succeeded("admin", &ip);
    let session = v.dash.admins.open(token);
    let mut response = Redirect::to("/admin").into_response();
    let value = admin_cookie(&session, ADMIN_SESSION.as_secs(), v.dash.secure);
    if let Ok(c) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// Ends the operator login.
pub async fn logout(headers: axum::http::HeaderMap, form: Form) -> Response {
    if let Some(token) = cookie(&headers, ADMIN_COOKIE) {
        form.v.dash.admins.close(&token);
    }
    let mut response = Redirect::to("/admin/login").into_response();
    if let Ok(c) = HeaderValue::from_str(&admin_cookie("", 0, form.v.dash.secure)) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// Tenants shown per page.
const PAGE_SIZE: i64 = 50;

/// Tenants with their package, status and usage this month (`?offset=` pages through them);
/// the form for a new tenant.
pub async fn tenants(
    State(state): State<AppState>,
    v: Visitor,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(admin) = operator(&v, &headers, &state) else {
        return Redirect::to("/admin/login").into_response();
    };
    let offset = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "offset")
        .and_then(|(_, o)| o.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    tenants_page(&state, &v, &admin, offset, StatusCode::OK, None, None).await
}

async fn tenants_page(
    state: &AppState,
    v: &Visitor,
    admin: &str,
    offset: i64,
    status: StatusCode,
    error: Option<String>,
    created: Option<Value>,
) -> Response {
    let caller = Caller::Admin { token: admin.to_string(), ip: v.ip.clone() };
    let uri = format!("/api/admin/tenants?limit={PAGE_SIZE}&offset={offset}");
    let (mut list, total) = match v.dash.json_as(caller, Method::GET, &uri, None).await {
        Ok(mut page) => (page["data"].take(), page["total"].as_i64().unwrap_or(0)),
        Err(f) => return failure_page(v, &f),
    };
    let previous = (offset > 0).then(|| (offset - PAGE_SIZE).max(0));
    let next = (offset + PAGE_SIZE < total).then_some(offset + PAGE_SIZE);
    if let Value::Array(items) = &mut list {
        for t in items.iter_mut() {
            let tenant = Tenant {
                id: t["id"].as_i64().unwrap_or(0),
                key_id: 0,
                package: t["package"].as_str().unwrap_or_default().to_string(),
                ip: v.ip.clone(),
            };
            let limits = v.dash.json_as(Caller::Tenant(tenant), Method::GET, "/api/user/limits", None).await;
            t["usage"] =
                limits.map(|l| json!({ "usage": l["usage"], "limits": l["limits"] })).unwrap_or(Value::Null);
        }
    }
    let packages = state.limits.package_names();
    let resources = ["devices", "messages_per_month", "plugins"];
    render(
        v,
        status,
        "admin.html",
        context! {
            nav => "admin", tenants => list, total, previous, next, packages, resources, error, created,
        },
    )
}

/// Creates a tenant (its first API key is shown once).
pub async fn create_tenant(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    form: Form,
) -> Response {
    let v = &form.v;
    let Some(admin) = operator(v, &headers, &state) else {
        return Redirect::to("/admin/login").into_response();
    };
    let password = form.get("password");
    let mut body =
        json!({ "name": form.get("name"), "email": form.get("email"), "package": form.get("package") });
    if !password.is_empty() {
        body["password"] = json!(password);
    }
    match v
        .dash
        .json_as(
            Caller::Admin { token: admin.clone(), ip: v.ip.clone() },
            Method::POST,
            "/api/admin/tenants",
            Some(&body),
        )
        .await
    {
        Ok(made) => {
            let created = json!({ "email": made["email"], "api_key": made["api_key"] });
            tenants_page(&state, v, &admin, 0, StatusCode::CREATED, None, Some(created)).await
        }
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            tenants_page(&state, v, &admin, 0, status, Some(f.text(v)), None).await
        }
    }
}

/// The limits an operator can override, in the order the form shows them.
const RESOURCES: [&str; 6] =
    ["devices", "messages_per_month", "auto_replies", "scheduled_messages", "plugins", "webhook_endpoints"];

/// One tenant: the form for its limit overrides.
pub async fn tenant(
    State(state): State<AppState>,
    v: Visitor,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(admin) = operator(&v, &headers, &state) else {
        return Redirect::to("/admin/login").into_response();
    };
    let Some(id) = numeric(&id) else { return super::not_found(&v) };
    tenant_page(&v, &admin, id, StatusCode::OK, None).await
}

async fn tenant_page(
    v: &Visitor,
    admin: &str,
    id: i64,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let uri = format!("/api/admin/tenants/{id}");
    let tn = match v
        .dash
        .json_as(Caller::Admin { token: admin.to_string(), ip: v.ip.clone() }, Method::GET, &uri, None)
        .await
    {
        Ok(t) => t,
        Err(f) => return failure_page(v, &f),
    };
    // What each field shows: empty (the package's value), `unlimited`, or the number.
    let overrides: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            let value = match tn["limits"].get(*r) {
                None => String::new(),
                Some(Value::Null) => "unlimited".into(),
                Some(n) => n.to_string(),
            };
            json!({ "key": r, "value": value })
        })
        .collect();
    render(v, status, "admin_tenant.html", context! { nav => "admin", tn, overrides, error })
}

/// `package` (to `package`), `suspend`, `activate`, `limits` (one field per resource: empty
/// for the package's value, `unlimited`, or a number).
pub async fn tenant_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    form: Form,
) -> Response {
    let v = &form.v;
    let Some(admin) = operator(v, &headers, &state) else {
        return Redirect::to("/admin/login").into_response();
    };
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    let body = match action.as_str() {
        "package" => json!({ "package": form.get("package") }),
        "suspend" => json!({ "status": "suspended" }),
        "activate" => json!({ "status": "active" }),
        "limits" => {
            let limits: serde_json::Map<String, Value> = RESOURCES
                .iter()
                .map(|r| {
                    let raw = form.get(r).trim();
                    let value = match raw {
                        "" => json!("package"),
                        "unlimited" => Value::Null,
                        n => n.parse::<i64>().map_or_else(|_| json!(n), Value::from),
                    };
                    (r.to_string(), value)
                })
                .collect();
            json!({ "limits": limits })
        }
        _ => return super::not_found(v),
    };
    let uri = format!("/api/admin/tenants/{id}");
    match v
        .dash
        .json_as(Caller::Admin { token: admin.clone(), ip: v.ip.clone() }, Method::PATCH, &uri, Some(&body))
        .await
    {
        Ok(_) if action == "limits" => Redirect::to(&format!("/admin/tenants/{id}")).into_response(),
        Ok(_) => Redirect::to("/admin").into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => failure_page(v, &f),
        Err(f) if action == "limits" => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            tenant_page(v, &admin, id, status, Some(f.text(v))).await
        }
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            tenants_page(&state, v, &admin, 0, status, Some(f.text(v)), None).await
        }
    }
}
