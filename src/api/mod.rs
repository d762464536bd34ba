//! The HTTP API: routes, extractors, error mapping, health and the OpenAPI document.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

pub mod account;
pub mod actions;
pub mod admin;
pub mod chats;
pub mod client_ip;
pub mod cluster;
pub mod contacts;
pub mod dead_letters;
pub mod devices;
pub mod docs;
pub mod extract;
pub mod groups;
pub mod media;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod plugins;
pub mod rules;
pub mod schedules;
pub mod scopes;
pub mod simulator;
pub mod webhooks;

/// Renders a stored Unix-milliseconds timestamp as RFC 3339 (UTC).
pub fn ts(ms: i64) -> String {
    crate::time::rfc3339_ms(ms)
}

/// The API's routes with its OpenAPI document, health checks included.
pub fn routes(state: &AppState) -> Router<AppState> {
    let (api, doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(account::router())
        .merge(admin::router())
        .merge(cluster::router())
        .merge(dead_letters::router())
        .merge(devices::router())
        .merge(groups::router())
        .merge(chats::router())
        .merge(contacts::router())
        .merge(messages::router())
        .merge(media::router())
        .merge(actions::router())
        .merge(plugins::router())
        .merge(rules::router())
        .merge(schedules::router())
        .merge(simulator::router())
        .merge(webhooks::router())
        .split_for_parts();
    let doc_json = openapi::finish(&doc, &state.limits.package_names()).to_string();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/docs", get(docs::docs_root))
        .route("/docs/", get(docs::docs_index))
        .route("/docs/{*file}", get(docs::docs_file))
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc_json.clone()) }),
        )
        .merge(api)
}

/// What every route of the server goes through (API and dashboard alike): the body limit, the
/// JSON form of errors made outside handlers, the request timeout, panics as 500s, the HTTP
/// metrics, tracing; and the JSON 404 for unknown paths.
pub fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    let body_limit = state.config.server.body_limit;
    let timeout = Duration::from_secs(state.config.server.request_timeout);
    routes
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(json_errors))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let path = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "unmatched".into());
            tracing::info_span!("http", method = %req.method(), path = %path)
        }))
        .with_state(state)
}

/// Process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The database answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::Unavailable("the database is not reachable".into()).into_response()
        }
    }
}

/// Gives error answers made outside our handlers (405, timeouts, layer rejections) our JSON
/// error format.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this method is not allowed on this path"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is too large"),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => {
            ("timeout", "the request took too long")
        }
        StatusCode::NOT_FOUND => ("not_found", "not found"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "the request was not understood"),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::json!({ "error": { "code": error.0, "message": error.1 } });
    Response::from_parts(parts, Body::from(body.to_string()))
}
