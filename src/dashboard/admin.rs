//! Operator pages behind the admin login: tenants (create, package, limit overrides, suspend,
//! reactivate) and their usage this month.
//!
//! The operator logs in with the admin token. The login is a random token in the
//! `wag_admin` cookie (HttpOnly, SameSite=Lax, path `/admin`); the gateway keeps, in memory,
//! its SHA-256 and the admin token it was opened with, so a changed admin token ends every
//! operator login. A restart ends them too. Forms carry the double-submit CSRF token of the
//! login form. Pages call the tenant service's operator methods, as the admin API does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{failure_page, numeric};
use super::session::{cookie, random_token, Form, Visitor};
use super::{render, ApiFailure};
use crate::api::admin::tenant_out;
use crate::api::extract::page;
use crate::error::{ApiError, ApiResult};
use crate::limits::{OverrideChange, Resource};
use crate::state::AppState;
use crate::tenants::{hash_key, Admin, CreateTenant, TenantChange};

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
    if let Err(retry_after) = v.dash.throttle.admit("admin", &ip).await {
        let error = v.lang.t("login_throttled");
        let page = render(v, StatusCode::TOO_MANY_REQUESTS, "admin_login.html", context! { error });
        return super::with_retry_after(page, retry_after);
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
    if operator(&v, &headers, &state).is_none() {
        return Redirect::to("/admin/login").into_response();
    }
    let offset = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "offset")
        .and_then(|(_, o)| o.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    tenants_page(&state, &v, offset, StatusCode::OK, None, None).await
}

async fn tenants_page(
    state: &AppState,
    v: &Visitor,
    offset: i64,
    status: StatusCode,
    error: Option<String>,
    created: Option<Value>,
) -> Response {
    let listed = match page(Some(PAGE_SIZE), Some(offset)) {
        Ok((limit, offset)) => state.tenants.admin_list(limit, offset).await,
        Err(e) => Err(e),
    };
    let (rows, total) = match listed {
        Ok(listed) => listed,
        Err(e) => return failure_page(v, &e.into()),
    };
    let previous = (offset > 0).then(|| (offset - PAGE_SIZE).max(0));
    let next = (offset + PAGE_SIZE < total).then_some(offset + PAGE_SIZE);
    let mut list = Vec::with_capacity(rows.len());
    for (row, overrides) in rows {
        let usage = match (state.limits.usage(row.id).await, state.limits.limits(row.id, &row.package).await)
        {
            (Ok(usage), Ok(limits)) => json!({ "usage": usage, "limits": limits.to_json() }),
            _ => Value::Null,
        };
        list.push(context! { usage, ..minijinja::Value::from_serialize(tenant_out(row, &overrides, None)) });
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
    if operator(v, &headers, &state).is_none() {
        return Redirect::to("/admin/login").into_response();
    }
    let password = form.get("password");
    let input = CreateTenant {
        name: form.get("name").to_string(),
        email: form.get("email").to_string(),
        package: Some(form.get("package").to_string()),
        password: (!password.is_empty()).then(|| password.to_string()),
    };
    match state.tenants.admin_create(&operator_of(v), input).await {
        Ok((row, key)) => {
            let created = json!({ "email": row.email, "api_key": key });
            tenants_page(&state, v, 0, StatusCode::CREATED, None, Some(created)).await
        }
        Err(e) => {
            let f = ApiFailure::from(e);
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            tenants_page(&state, v, 0, status, Some(f.text(v)), None).await
        }
    }
}

/// The operator behind a dashboard request, for the activity log.
fn operator_of(v: &Visitor) -> Admin {
    Admin { ip: v.ip.clone() }
}

/// The limit form's fields: empty for the package's value, `unlimited`, or a number.
fn limit_changes(form: &Form) -> ApiResult<Vec<(Resource, OverrideChange)>> {
    let mut changes = Vec::with_capacity(RESOURCES.len());
    for name in RESOURCES {
        let Some(resource) = Resource::parse(name) else { continue };
        let change = match form.get(name).trim() {
            "" => OverrideChange::Package,
            "unlimited" => OverrideChange::Unlimited,
            n => OverrideChange::Value(n.parse().map_err(|_| {
                ApiError::validation(
                    format!("limits.{name}"),
                    "must be a non-negative integer, null (unlimited) or \"package\"",
                )
            })?),
        };
        changes.push((resource, change));
    }
    Ok(changes)
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
    if operator(&v, &headers, &state).is_none() {
        return Redirect::to("/admin/login").into_response();
    }
    let Some(id) = numeric(&id) else { return super::not_found(&v) };
    tenant_page(&state, &v, id, StatusCode::OK, None).await
}

async fn tenant_page(
    state: &AppState,
    v: &Visitor,
    id: i64,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let (row, overrides) = match state.tenants.admin_get(id).await {
        Ok(found) => found,
        Err(e) => return failure_page(v, &e.into()),
    };
    // What each field shows: empty (the package's value), `unlimited`, or the number.
    let shown: Vec<serde_json::Value> = RESOURCES
        .iter()
        .map(|name| {
            let value = match Resource::parse(name).and_then(|r| overrides.get(&r)) {
                None => String::new(),
                Some(None) => "unlimited".into(),
                Some(Some(n)) => n.to_string(),
            };
            json!({ "key": name, "value": value })
        })
        .collect();
    let tn = tenant_out(row, &overrides, None);
    let overrides = shown;
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
    if operator(v, &headers, &state).is_none() {
        return Redirect::to("/admin/login").into_response();
    }
    let Some(id) = numeric(&id) else { return super::not_found(v) };
    let change = match action.as_str() {
        "package" => {
            Ok(TenantChange { package: Some(form.get("package").to_string()), ..TenantChange::default() })
        }
        "suspend" => Ok(TenantChange { status: Some("suspended".into()), ..TenantChange::default() }),
        "activate" => Ok(TenantChange { status: Some("active".into()), ..TenantChange::default() }),
        "limits" => limit_changes(&form)
            .map(|limits| TenantChange { limits: Some(limits), ..TenantChange::default() }),
        _ => return super::not_found(v),
    };
    let done = match change {
        Ok(change) => state.tenants.admin_update(&operator_of(v), id, change).await.map(drop),
        Err(e) => Err(e),
    };
    match done.map_err(ApiFailure::from) {
        Ok(_) if action == "limits" => Redirect::to(&format!("/admin/tenants/{id}")).into_response(),
        Ok(_) => Redirect::to("/admin").into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => failure_page(v, &f),
        Err(f) if action == "limits" => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            tenant_page(&state, v, id, status, Some(f.text(v))).await
        }
        Err(f) => {
            let status = if f.status.is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { f.status };
            tenants_page(&state, v, 0, status, Some(f.text(v)), None).await
        }
    }
}
