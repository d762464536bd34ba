//! Operator pages behind the admin login: tenants (create, package, limit overrides, suspend,
//! reactivate) and their usage this month; the gateway processes sharing the database and
//! who holds which device.
//!
//! The operator logs in with the admin token. The login is a random token in the
//! `wag_admin` cookie (HttpOnly, SameSite=Lax, path `/admin`); the database keeps its SHA-256
//! with the SHA-256 of the admin token it was opened with (`admin_sessions`), so the login
//! holds on every gateway process of the database and across restarts, and a changed admin
//! token ends every operator login. Forms carry the double-submit CSRF token of the login
//! form. Pages call the tenant service's operator methods, as the admin API does.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::{json, Value};

use super::pages::{failure_page, numeric};
use super::session::{cookie, random_token, Form, Visitor};
use super::{local_time, render, ApiFailure};
use crate::api::admin::tenant_out;
use crate::api::cluster::cluster_view;
use crate::api::extract::page;
use crate::db::{now_ms, Db, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::limits::{OverrideChange, Resource};
use crate::state::AppState;
use crate::tenants::{hash_key, Admin, AdminToken, CreateTenant, TenantChange};

pub const ADMIN_COOKIE: &str = "wag_admin";

/// How long an operator login lasts.
const ADMIN_SESSION: Duration = Duration::from_secs(8 * 3600);

/// Operator logins, kept in the database.
pub struct AdminSessions {
    db: Db,
}

impl AdminSessions {
    pub fn new(db: Db) -> AdminSessions {
        AdminSessions { db }
    }

    /// Opens a login for the operator who presented `admin_token`; returns the cookie's token.
    async fn open(&self, admin_token: &str) -> DbResult<String> {
        let token = random_token();
        let expires_at = now_ms() + ADMIN_SESSION.as_millis() as i64;
        self.db.admin_session_create(&hash_key(&token), &hash_key(admin_token), expires_at).await?;
        Ok(token)
    }

    /// Whether `cookie_token` is a live login opened with the admin token `current`.
    async fn holds(&self, cookie_token: &str, current: &AdminToken) -> DbResult<bool> {
        use subtle::ConstantTimeEq;
        let AdminToken::Hash(current) = current;
        let opened_with = self.db.admin_session(&hash_key(cookie_token)).await?;
        Ok(opened_with.is_some_and(|h| bool::from(h.as_bytes().ct_eq(current.as_bytes()))))
    }

    async fn close(&self, cookie_token: &str) -> DbResult<()> {
        self.db.admin_session_delete(&hash_key(cookie_token)).await
    }
}

/// Lets the request through when it carries a live operator login; otherwise the answer to
/// give instead: the login page, or an error page when the logins cannot be read.
async fn operator(v: &Visitor, headers: &axum::http::HeaderMap, state: &AppState) -> Result<(), Response> {
    let Some(token) = cookie(headers, ADMIN_COOKIE) else {
        return Err(Redirect::to("/admin/login").into_response());
    };
    match v.dash.admins.holds(&token, &state.admin_token).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Redirect::to("/admin/login").into_response()),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the operator logins");
            Err(super::error_page(v, StatusCode::SERVICE_UNAVAILABLE, "error_title", "error_text"))
        }
    }
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
    let session = match v.dash.admins.open(token).await {
        Ok(session) => session,
        Err(e) => {
            tracing::error!(error = %e, "cannot store an operator login");
            return super::error_page(v, StatusCode::SERVICE_UNAVAILABLE, "error_title", "error_text");
        }
    };
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
        if let Err(e) = form.v.dash.admins.close(&token).await {
            tracing::error!(error = %e, "cannot end an operator login");
            return super::error_page(&form.v, StatusCode::SERVICE_UNAVAILABLE, "error_title", "error_text");
        }
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
    if let Err(away) = operator(&v, &headers, &state).await {
        return away;
    }
    tenants_page(&state, &v, offset_of(raw), StatusCode::OK, None, None).await
}

/// The `offset` of a list page's query; 0 when absent or not a number.
fn offset_of(raw: Option<String>) -> i64 {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "offset")
        .and_then(|(_, o)| o.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0)
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
    if let Err(away) = operator(v, &headers, &state).await {
        return away;
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
    if let Err(away) = operator(&v, &headers, &state).await {
        return away;
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
    if let Err(away) = operator(v, &headers, &state).await {
        return away;
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

/// Device leases shown per page.
const LEASES_PER_PAGE: i64 = 50;

/// This process's counters, in the order the page shows them.
pub(super) const COUNTERS: [&str; 8] = [
    "leases_taken",
    "leases_given_up",
    "fenced_writes",
    "resent_after_takeover",
    "stopped_unrenewed",
    "rejoined",
    "commands_run",
    "commands_sent",
];

/// The gateway processes sharing the database (the one answering marked), its counters, and
/// a page of the device leases (`?offset=`), as `GET /api/admin/cluster` answers them. Times
/// are shown in UTC: the operator has no time zone of their own.
pub async fn cluster(
    State(state): State<AppState>,
    v: Visitor,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(away) = operator(&v, &headers, &state).await {
        return away;
    }
    let offset = offset_of(raw);
    let view = match page(Some(LEASES_PER_PAGE), Some(offset)) {
        Ok((limit, offset)) => cluster_view(&state, limit, offset).await,
        Err(e) => Err(e),
    };
    let view = match view {
        Ok(view) => view,
        Err(e) => return failure_page(&v, &e.into()),
    };
    let utc = |at: &str| local_time(at, chrono_tz::UTC);
    let names: std::collections::HashMap<&str, &str> =
        view.nodes.iter().map(|n| (n.id.as_str(), n.name.as_str())).collect();
    let nodes: Vec<minijinja::Value> = view
        .nodes
        .iter()
        .map(|n| {
            context! {
                this => n.id == view.this_node,
                started_at => utc(&n.started_at),
                renewed_at => utc(&n.renewed_at),
                expires_at => utc(&n.expires_at),
                ..minijinja::Value::from_serialize(n)
            }
        })
        .collect();
    let leases: Vec<minijinja::Value> = view
        .leases
        .iter()
        .map(|l| {
            let holder = l.node.as_deref().and_then(|id| names.get(id).copied());
            context! { holder, acquired_at => utc(&l.acquired_at), ..minijinja::Value::from_serialize(l) }
        })
        .collect();
    let stats = serde_json::to_value(&view.stats).unwrap_or_default();
    let counters: Vec<Value> = COUNTERS.iter().map(|k| json!({ "key": k, "value": stats[k] })).collect();
    let total = view.leases_total;
    let previous = (offset > 0).then(|| (offset - LEASES_PER_PAGE).max(0));
    let next = (offset + LEASES_PER_PAGE < total).then_some(offset + LEASES_PER_PAGE);
    render(
        &v,
        StatusCode::OK,
        "admin_cluster.html",
        context! {
            nav => "admin", this_node => view.this_node, nodes, counters, leases, total, previous, next,
        },
    )
}
