//! The web dashboard: server-rendered pages under `/` for tenants.
//!
//! Pages call the same services as the API (rules, schedules, devices, webhook endpoints,
//! plugins, messages, chats, groups, contacts, keys, tenant administration) as the logged-in
//! tenant or the operator, so validation, limits, activity logging and error codes are the
//! same by construction; a page only turns its form into the service's input and renders
//! the rows as the API shows them. What the API does not cover (logins, sessions, passwords,
//! language) lives here.
//!
//! Templates (minijinja, HTML auto-escaped) and our own CSS and JavaScript are embedded in
//! the binary; nothing is loaded from elsewhere, so the dashboard works offline.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};

use crate::state::AppState;

mod account;
mod admin;
mod auth;
mod automation;
mod contacts;
pub mod i18n;
mod inbox;
mod live;
mod pages;
mod plugins;
pub mod session;
pub mod store;
mod throttle;
mod webhooks;

use session::{Viewer, Visitor};

/// What every dashboard handler shares: templates, the login throttle, operator logins.
pub struct Dashboard {
    templates: Environment<'static>,
    pub throttle: throttle::Throttle,
    /// Operator logins (in the database: shared by every process, kept across restarts).
    pub admins: admin::AdminSessions,
    /// Cookies get `Secure` when the gateway is reached over https.
    pub secure: bool,
    pub session_hours: u64,
}

/// The dashboard's routes, or none when `[dashboard] enabled` is false.
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.config.dashboard.enabled {
        return Router::new();
    }
    let dash = Arc::new(Dashboard {
        templates: templates(),
        throttle: throttle::Throttle::new(state.db.clone()),
        admins: admin::AdminSessions::new(state.db.clone()),
        secure: state.config.server.public_url.trim().to_ascii_lowercase().starts_with("https://"),
        session_hours: state.config.dashboard.session_hours.max(1),
    });
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/lang", post(auth::switch_language))
        .route("/password", get(auth::password_page).post(auth::change_password))
        .route("/devices", get(pages::devices).post(pages::add_device))
        .route("/devices/{id}", get(pages::device))
        .route("/devices/{id}/events", get(pages::device_events))
        .route("/devices/{id}/qr.svg", get(pages::device_qr))
        .route("/devices/{id}/{action}", post(pages::device_action))
        .route("/auto-reply", get(automation::auto_replies).post(automation::create_auto_reply))
        .route("/auto-reply/{id}", get(automation::auto_reply).post(automation::update_auto_reply))
        .route("/auto-reply/{id}/toggle", post(automation::toggle_auto_reply))
        .route("/auto-reply/{id}/delete", post(automation::delete_auto_reply))
        .route("/scheduled", get(automation::scheduled).post(automation::create_scheduled))
        .route("/scheduled/{id}/cancel", post(automation::cancel_scheduled))
        .route("/live/messages", get(live::message_events))
        .route("/api-keys", get(account::api_keys).post(account::create_api_key))
        .route("/api-keys/{id}/revoke", post(account::revoke_api_key))
        .route("/activity", get(account::activity))
        .route("/webhooks", get(webhooks::webhooks).post(webhooks::create_webhook))
        .route("/webhooks/{id}/{action}", post(webhooks::webhook_action))
        .route("/webhook-logs/{id}/retry", post(webhooks::retry_delivery))
        .route("/send", get(pages::send_page).post(pages::send))
        .route("/send/media", post(pages::send_media))
        .route("/send/location", post(pages::send_location))
        .route("/send/contact", post(pages::send_contact))
        .route("/plugins", get(plugins::plugins).post(plugins::upload_plugin))
        .route("/plugins/{id}", get(plugins::plugin))
        .route("/plugins/{id}/{action}", post(plugins::plugin_action))
        .route("/chats", get(inbox::chats))
        .route("/chats/reply", post(inbox::reply))
        .route("/chats/reply/media", post(inbox::reply_media))
        .route("/chats/reply/location", post(inbox::reply_location))
        .route("/contacts", get(contacts::contacts))
        .route("/contacts/{device}/{jid}", get(contacts::contact))
        .route("/contacts/{device}/{jid}/{action}", post(contacts::contact_action))
        .route("/groups", get(inbox::groups))
        .route("/groups/{device}/{jid}", get(inbox::group))
        .route("/history", get(pages::history))
        .route("/history/export.csv", get(pages::export_history))
        .route("/history/{id}", get(pages::message))
        .route("/history/{id}/media", get(pages::message_media))
        .route("/admin", get(admin::tenants).post(admin::create_tenant))
        .route("/admin/login", get(admin::login_page).post(admin::login))
        .route("/admin/logout", post(admin::logout))
        .route("/admin/cluster", get(admin::cluster))
        .route("/admin/tenants/{id}", get(admin::tenant))
        .route("/admin/tenants/{id}/{action}", post(admin::tenant_action))
        .route("/assets/app.css", get(|| asset("text/css; charset=utf-8", include_str!("assets/app.css"))))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("assets/app.js"))),
        )
        .layer(Extension(dash))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body)
        .into_response()
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("error.html", include_str!("templates/error.html")),
        ("home.html", include_str!("templates/home.html")),
        ("devices.html", include_str!("templates/devices.html")),
        ("device.html", include_str!("templates/device.html")),
        ("send.html", include_str!("templates/send.html")),
        ("history.html", include_str!("templates/history.html")),
        ("message.html", include_str!("templates/message.html")),
        ("marks.html", include_str!("templates/marks.html")),
        ("password.html", include_str!("templates/password.html")),
        ("rule_form.html", include_str!("templates/rule_form.html")),
        ("auto_reply.html", include_str!("templates/auto_reply.html")),
        ("auto_reply_edit.html", include_str!("templates/auto_reply_edit.html")),
        ("scheduled.html", include_str!("templates/scheduled.html")),
        ("api_keys.html", include_str!("templates/api_keys.html")),
        ("activity.html", include_str!("templates/activity.html")),
        ("webhooks.html", include_str!("templates/webhooks.html")),
        ("plugins.html", include_str!("templates/plugins.html")),
        ("plugin.html", include_str!("templates/plugin.html")),
        ("admin_login.html", include_str!("templates/admin_login.html")),
        ("admin.html", include_str!("templates/admin.html")),
        ("admin_tenant.html", include_str!("templates/admin_tenant.html")),
        ("admin_cluster.html", include_str!("templates/admin_cluster.html")),
        ("chats.html", include_str!("templates/chats.html")),
        ("chats_parts.html", include_str!("templates/chats_parts.html")),
        ("groups.html", include_str!("templates/groups.html")),
        ("group.html", include_str!("templates/group.html")),
        ("contacts.html", include_str!("templates/contacts.html")),
        ("contact.html", include_str!("templates/contact.html")),
    ] {
        env.add_template(name, source).expect("the embedded dashboard templates parse");
    }
    env
}

/// An error of a service, as the dashboard shows it (the API answers the same error).
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl From<crate::error::ApiError> for ApiFailure {
    fn from(e: crate::error::ApiError) -> Self {
        let field = match &e {
            crate::error::ApiError::Validation { field, .. } => Some(field.clone()),
            _ => None,
        };
        if let crate::error::ApiError::Internal(err) = &e {
            tracing::error!(error = ?err, "internal error");
        }
        ApiFailure { status: e.status(), code: e.code().to_string(), message: e.to_string(), field }
    }
}

impl ApiFailure {
    /// A readable sentence in the visitor's language (the API's own message as detail).
    pub fn text(&self, v: &Visitor) -> String {
        let known = v.lang.t(&format!("err_{}", self.code));
        match (self.code.as_str(), known) {
            ("validation_failed", k) => {
                format!("{k} {}: {}", self.field.as_deref().unwrap_or(""), self.message)
            }
            ("internal", _) | (_, "") => v.lang.t("err_other").to_string(),
            (_, k) => format!("{k} ({})", self.message),
        }
    }
}

/// Renders `template` with the page's own `ctx` plus what every page needs.
pub fn render(v: &Visitor, status: StatusCode, template: &str, ctx: Value) -> Response {
    let me = v.viewer.as_ref().map(|m| context! { name => m.tenant.name, email => m.tenant.email });
    let other = if v.lang == i18n::Lang::Id { "en" } else { "id" };
    let base = context! {
        t => v.lang.dict(),
        lang => v.lang.code(),
        other_lang => other,
        csrf => v.csrf(),
        path => v.path,
        me => me,
        timezone => v.viewer.as_ref().map(|m| tz_of(m).name().to_string()),
    };
    let html = v.dash.templates.get_template(template).and_then(|t| t.render(context! { ..ctx, ..base }));
    let mut response = match html {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template, "dashboard template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                v.lang.t("error_title"),
            )
                .into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'",
        ),
    );
    if v.viewer.is_none() && v.anon_csrf_new {
        let cookie = session::set_cookie(session::CSRF_COOKIE, &v.anon_csrf, 24 * 3600, v.dash.secure);
        if let Ok(c) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, c);
        }
    }
    response
}

/// A page that says what went wrong, in the visitor's language.
pub fn error_page(v: &Visitor, status: StatusCode, title_key: &str, text_key: &str) -> Response {
    render(v, status, "error.html", context! { title => v.lang.t(title_key), text => v.lang.t(text_key) })
}

/// `page` with a `Retry-After` header of `wait`, in whole seconds rounded up.
pub fn with_retry_after(mut page: Response, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    page.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
    page
}

/// The 404 page (also for another tenant's ids).
pub fn not_found(v: &Visitor) -> Response {
    error_page(v, StatusCode::NOT_FOUND, "not_found_title", "not_found_text")
}

/// The tenant's time zone, UTC when it is not a known IANA name.
pub fn tz_of(me: &Viewer) -> chrono_tz::Tz {
    me.tenant.timezone.parse().unwrap_or(chrono_tz::UTC)
}

/// An RFC 3339 time from the API, shown in the tenant's time zone.
pub fn local_time(rfc3339: &str, tz: chrono_tz::Tz) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&Utc).with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}
