//! Logging in and out, the language switch and the password change.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::i18n::Lang;
use super::session::{self, Form, Signed, Visitor};
use super::store::NewSession;
use super::{error_page, render};
use crate::db::activity::NewActivity;
use crate::state::AppState;
use crate::tenants::{hash_key, hash_password, verify_password};

fn activity(user_id: i64, action: &str, ip: Option<String>) -> NewActivity {
    NewActivity {
        user_id: Some(user_id),
        actor: "dashboard".into(),
        action: action.into(),
        target: None,
        detail: None,
        ip,
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(c) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// The login form; a logged-in visitor goes home.
pub async fn login_page(v: Visitor) -> Response {
    if v.viewer.is_some() {
        return Redirect::to("/").into_response();
    }
    render(&v, StatusCode::OK, "login.html", context! { email => "" })
}

/// Checks email and password (throttled: see [`super::throttle`]) and starts a session.
pub async fn login(axum::extract::State(state): axum::extract::State<AppState>, form: Form) -> Response {
    let v = &form.v;
    let email = form.get("email").trim().to_ascii_lowercase();
    let password = form.get("password").to_string();
    let ip = v.ip.clone().unwrap_or_default();
    let refuse = |status: StatusCode, key: &str| {
        render(v, status, "login.html", context! { email => email, error => v.lang.t(key) })
    };
    if let Err(retry_after) = v.dash.throttle.admit(&email, &ip).await {
        return super::with_retry_after(
            refuse(StatusCode::TOO_MANY_REQUESTS, "login_throttled"),
            retry_after,
        );
    }
    let found = match state.db.tenant_by_email(&email).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "login lookup failed");
            return error_page(v, StatusCode::SERVICE_UNAVAILABLE, "error_title", "error_text");
        }
    };
    // Verify even without an account, so timing does not tell which emails exist.
    let (tenant, hash) = match found {
        Some((t, h)) => (Some(t), h),
        None => (None, None),
    };
    let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.unwrap_or(false);
    let tenant = match tenant {
        Some(t) if ok && t.status == "active" => t,
        other => {
            v.dash.throttle.failed(&email, &ip);
            if let Some(t) = other {
                state.tenants.record(activity(t.id, "dashboard.login_failed", v.ip.clone())).await;
            }
            return refuse(StatusCode::UNAUTHORIZED, "login_failed");
        }
    };
    v.dash.throttle.succeeded(&email, &ip);
    let token = session::random_token();
    let token_hash = hash_key(&token);
    let csrf = session::random_token();
    let expires_at = crate::db::now_ms() + (v.dash.session_hours as i64) * 3_600_000;
    let new = NewSession {
        token_hash: &token_hash,
        user_id: tenant.id,
        csrf_token: &csrf,
        language: v.lang.code(),
        expires_at,
    };
    if let Err(e) = state.db.dashboard_session_create(&new).await {
        tracing::error!(error = %e, "cannot store a dashboard session");
        return error_page(v, StatusCode::SERVICE_UNAVAILABLE, "error_title", "error_text");
    }
    state.tenants.record(activity(tenant.id, "dashboard.login", v.ip.clone())).await;
    let cookie =
        session::set_cookie(session::SESSION_COOKIE, &token, v.dash.session_hours * 3600, v.dash.secure);
    with_cookie(Redirect::to("/").into_response(), &cookie)
}

/// An argon2id hash of a random password, checked when the email is unknown.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$JmD1S2+8m3eKq8hM6lQkGk7qk4q2m1T1bDpY8VqgN8M";

/// Ends the session.
pub async fn logout(axum::extract::State(state): axum::extract::State<AppState>, form: Form) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    if let Err(e) = state.db.dashboard_session_delete(&me.token_hash).await {
        tracing::warn!(error = %e, "cannot delete a dashboard session");
    }
    state.tenants.record(activity(me.tenant.id, "dashboard.logout", form.v.ip.clone())).await;
    let cookie = session::set_cookie(session::SESSION_COOKIE, "", 0, form.v.dash.secure);
    with_cookie(Redirect::to("/login").into_response(), &cookie)
}

/// Switches the language, remembered in the session and in a cookie, and goes back.
pub async fn switch_language(
    axum::extract::State(state): axum::extract::State<AppState>,
    form: Form,
) -> Response {
    let lang = Lang::parse(form.get("lang")).unwrap_or(form.v.lang);
    if let Some(me) = &form.v.viewer {
        if let Err(e) = state.db.dashboard_session_set_language(&me.token_hash, lang.code()).await {
            tracing::warn!(error = %e, "cannot store the dashboard language");
        }
    }
    let next = form.get("next");
    let next =
        if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') { next } else { "/" };
    let cookie = session::set_cookie(session::LANG_COOKIE, lang.code(), 365 * 24 * 3600, form.v.dash.secure);
    with_cookie(Redirect::to(next).into_response(), &cookie)
}

pub async fn password_page(Signed { v, .. }: Signed) -> Response {
    render(&v, StatusCode::OK, "password.html", context! {})
}

/// Changes the password after checking the current one; other sessions end.
pub async fn change_password(
    axum::extract::State(state): axum::extract::State<AppState>,
    form: Form,
) -> Response {
    let me = match form.signed() {
        Ok(me) => me,
        Err(r) => return r.into_response(),
    };
    let v = &form.v;
    let fail = |status: StatusCode, key: &str| {
        render(v, status, "password.html", context! { error => v.lang.t(key) })
    };
    let current = form.get("current_password").to_string();
    let stored = match state.db.dashboard_password_hash(me.tenant.id).await {
        Ok(h) => h.unwrap_or_else(|| DUMMY_HASH.to_string()),
        Err(_) => return error_page(v, StatusCode::SERVICE_UNAVAILABLE, "error_title", "error_text"),
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&current, &stored)).await.unwrap_or(false);
    if !ok {
        return fail(StatusCode::UNPROCESSABLE_ENTITY, "password_wrong");
    }
    let new = form.get("new_password").to_string();
    let hash = match tokio::task::spawn_blocking(move || hash_password(&new)).await {
        Ok(Ok(h)) => h,
        _ => return fail(StatusCode::UNPROCESSABLE_ENTITY, "password_too_short"),
    };
    let updated = state.db.update_tenant(me.tenant.id, None, None, None, Some(&hash)).await;
    let cleared = state.db.dashboard_sessions_delete_others(me.tenant.id, &me.token_hash).await;
    if updated.is_err() || cleared.is_err() {
        return error_page(v, StatusCode::SERVICE_UNAVAILABLE, "error_title", "error_text");
    }
    state.tenants.record(activity(me.tenant.id, "dashboard.password_change", v.ip.clone())).await;
    render(v, StatusCode::OK, "password.html", context! { done => v.lang.t("password_changed") })
}
