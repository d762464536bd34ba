//! The web dashboard (SPEC §13): server-rendered pages under `/` for tenants.
//!
//! The dashboard is an in-process client of the tenant API: a page calls the API's own
//! handlers through its router, with the logged-in tenant put in the request as the
//! authenticated [`Tenant`]. Validation, limits, activity logging and error codes are
//! therefore the API's by construction; there is no second code path for business rules,
//! no HTTP round trip and no API key. What the API does not cover (logins, sessions,
//! passwords, language) lives here.
//!
//! Templates (minijinja, HTML auto-escaped) and our own CSS and JavaScript are embedded in
//! the binary; nothing is loaded from elsewhere, so the dashboard works offline.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;

use crate::api::extract::Tenant;
use crate::app::AppState;

mod account;
mod admin;
mod auth;
mod automation;
pub mod i18n;
mod live;
mod pages;
mod plugins;
pub mod session;
pub mod store;
mod webhooks;

use session::{Viewer, Visitor};

/// What every dashboard handler shares: templates, the API it calls, the login throttle.
pub struct Dashboard {
    templates: Environment<'static>,
    api: Router,
    pub throttle: session::Throttle,
    /// Operator logins (in memory: a restart logs the operator out).
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
        api: api_router(state),
        throttle: session::Throttle::default(),
        admins: admin::AdminSessions::default(),
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
        .route("/plugins", get(plugins::plugins).post(plugins::upload_plugin))
        .route("/plugins/{id}", get(plugins::plugin))
        .route("/plugins/{id}/{action}", post(plugins::plugin_action))
        .route("/history", get(pages::history))
        .route("/history/export.csv", get(pages::export_history))
        .route("/history/{id}", get(pages::message))
        .route("/admin", get(admin::tenants).post(admin::create_tenant))
        .route("/admin/login", get(admin::login_page).post(admin::login))
        .route("/admin/logout", post(admin::logout))
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
    ] {
        env.add_template(name, source).expect("the embedded dashboard templates parse");
    }
    env
}

/// The tenant API routes the dashboard calls, bound to the gateway's state.
fn api_router(state: &AppState) -> Router {
    let (router, _) = OpenApiRouter::new()
        .merge(crate::api::account::router())
        .merge(crate::api::admin::router())
        .merge(crate::api::devices::router())
        .merge(crate::api::messages::router())
        .merge(crate::api::media::router())
        .merge(crate::api::plugins::router())
        .merge(crate::api::rules::router())
        .merge(crate::api::schedules::router())
        .merge(crate::api::webhooks::router())
        .split_for_parts();
    // The same cap as the public API: without it, extractors would fall back to axum's 2 MB.
    router
        .layer(axum::extract::DefaultBodyLimit::max(state.config.server.body_limit))
        .with_state(state.clone())
}

/// Who an in-process API call is made as.
pub enum Caller {
    /// A tenant, put in the request as the authenticated [`Tenant`].
    Tenant(Tenant),
    /// The operator, with the admin token given at the admin login and the operator's IP
    /// (given to the handler as the peer address, for the activity log).
    Admin { token: String, ip: Option<String> },
}

/// An error answer of the API, as the dashboard shows it.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
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

impl Dashboard {
    /// Calls the tenant API as the logged-in tenant; the API's answer as it is.
    pub async fn call(
        &self,
        v: &Visitor,
        me: &Viewer,
        method: Method,
        uri: &str,
        body: Option<&serde_json::Value>,
    ) -> Response {
        let caller = Caller::Tenant(Self::as_tenant(v, me));
        match body {
            Some(b) => {
                self.send(caller, method, uri, Some("application/json"), Body::from(b.to_string())).await
            }
            None => self.send(caller, method, uri, None, Body::empty()).await,
        }
    }

    fn as_tenant(v: &Visitor, me: &Viewer) -> Tenant {
        Tenant { id: me.tenant.id, key_id: 0, package: me.tenant.package.clone(), ip: v.ip.clone() }
    }

    /// Calls the API as `caller` with a JSON body, for JSON answers.
    pub async fn json_as(
        &self,
        caller: Caller,
        method: Method,
        uri: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ApiFailure> {
        let response = match body {
            Some(b) => {
                self.send(caller, method, uri, Some("application/json"), Body::from(b.to_string())).await
            }
            None => self.send(caller, method, uri, None, Body::empty()).await,
        };
        Self::answer(response).await
    }

    /// Calls the API as `caller` with a body of `content_type`.
    async fn send(
        &self,
        caller: Caller,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> Response {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        if let Caller::Admin { token, .. } = &caller {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let mut request = match builder.body(body) {
            Ok(r) => r,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        };
        match caller {
            Caller::Tenant(tenant) => {
                request.extensions_mut().insert(tenant);
            }
            Caller::Admin { ip, .. } => {
                if let Some(ip) = ip.and_then(|ip| ip.parse::<std::net::IpAddr>().ok()) {
                    let peer = std::net::SocketAddr::new(ip, 0);
                    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                }
            }
        }
        match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Like [`Dashboard::call`], for JSON answers: the body, or the API's error.
    pub async fn json(
        &self,
        v: &Visitor,
        me: &Viewer,
        method: Method,
        uri: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ApiFailure> {
        Self::answer(self.call(v, me, method, uri, body).await).await
    }

    /// POSTs a `multipart/form-data` body of `texts` and `files` (API field name, file) to
    /// the tenant API, as a browser would; the JSON answer or the API's error.
    pub async fn upload(
        &self,
        v: &Visitor,
        me: &Viewer,
        uri: &str,
        texts: &[(&str, &str)],
        files: &[(&str, &session::FilePart)],
    ) -> Result<serde_json::Value, ApiFailure> {
        let boundary = format!("wag-{}", session::random_token());
        let quoted = |s: &str| s.replace(['"', '\r', '\n', '\\'], "_");
        let mut body = Vec::new();
        for (name, value) in texts {
            let head =
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n", quoted(name));
            body.extend_from_slice(head.as_bytes());
            body.extend_from_slice(value.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        for (name, file) in files {
            let head = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\n\
                 Content-Type: {}\r\n\r\n",
                quoted(name),
                quoted(&file.filename),
                quoted(&file.content_type),
            );
            body.extend_from_slice(head.as_bytes());
            body.extend_from_slice(&file.bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let caller = Caller::Tenant(Self::as_tenant(v, me));
        let response = self.send(caller, Method::POST, uri, Some(&content_type), Body::from(body)).await;
        Self::answer(response).await
    }

    /// The JSON body of a successful answer, or the API's error.
    async fn answer(response: Response) -> Result<serde_json::Value, ApiFailure> {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024).await.unwrap_or_default();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        Err(ApiFailure {
            status,
            code: error["code"].as_str().unwrap_or("internal").to_string(),
            message: error["message"].as_str().unwrap_or("").to_string(),
            field: error["field"].as_str().map(str::to_string),
        })
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
