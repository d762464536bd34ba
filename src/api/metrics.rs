//! `GET /metrics` for Prometheus, and the layer that counts every HTTP request by its route.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::extract::bearer_token;
use crate::error::ApiError;
use crate::state::AppState;

/// The gateway's metrics in the OpenMetrics text format. 404 unless `[metrics] enabled`; with
/// `[metrics] token` set, the scraper sends it (or the admin token) as a Bearer token.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let config = &state.config.metrics;
    if !config.enabled {
        return Err(ApiError::NotFound("metrics are disabled ([metrics] enabled = false)".into()));
    }
    if !config.token.is_empty() {
        let presented =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
        let allowed = presented.is_some_and(|t| {
            bool::from(t.as_bytes().ct_eq(config.token.as_bytes())) || state.admin_token.verify(t)
        });
        if !allowed {
            return Err(ApiError::Unauthorized("the metrics token is required as a Bearer token".into()));
        }
    }
    let text = state.metrics.render(&state.db).await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Counts a request by route template (never the path itself, which holds ids), method and
/// status, with its latency. Paths no route matches count as `unmatched`.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // A clone of the matched path shares its text.
    let route = request.extensions().get::<MatchedPath>().cloned();
    // Clients may invent methods; each would be a new series.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state.metrics.http_request(route, method, response.status().as_u16(), started.elapsed());
    response
}
