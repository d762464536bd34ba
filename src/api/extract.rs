//! Extractors: JSON and query parsing with our error format, tenant and admin authentication.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::db::activity::NewActivity;
use crate::error::ApiError;
use crate::limits::{self, Resource};

/// JSON body parsed with the failing field named in the 422 answer.
pub struct ApiJson<T>(pub T);

/// Maps a body-reading failure: too large is 413, anything else 400.
pub fn body_error(err: axum::extract::rejection::BytesRejection) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("request body is too large".into())
    } else {
        ApiError::BadRequest(format!("could not read the request body: {err}"))
    }
}

/// Parses JSON bytes into `T`, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        } else {
            let field = if path == "." { missing_field(&inner.to_string()) } else { path };
            ApiError::validation(field, inner.to_string())
        }
    })
}

/// serde reports a missing field at the parent path; pull its name out of the message.
fn missing_field(message: &str) -> String {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .unwrap_or("body")
        .to_string()
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                ct == "application/json" || ct.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "expected a JSON body with content-type application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    /// An empty body without a content type is `None`; anything else must be valid JSON.
    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let empty = req.headers().get(header::CONTENT_TYPE).is_none()
            && req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v == "0");
        if empty {
            return Ok(None);
        }
        <ApiJson<T> as FromRequest<S>>::from_request(req, state).await.map(Some)
    }
}

/// Query string parsed with the same error format as bodies.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_de(query);
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let field = if path == "." { missing_field(&inner.to_string()) } else { path };
            ApiError::validation(field, inner.to_string())
        })
    }
}

fn serde_urlencoded_de(query: &str) -> serde_urlencoded::Deserializer<'_> {
    serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()))
}

/// Paging parameters of every list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// Every list answers `{"data", "total", "limit", "offset"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// The peer address of the request, for activity logs.
#[derive(Debug, Clone)]
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string()),
        ))
    }
}

/// An authenticated tenant request. Every tenant handler takes one; storage calls use `id`.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    pub key_id: i64,
    pub package: String,
    pub ip: Option<String>,
}

impl Tenant {
    /// An activity-log entry by this tenant.
    pub fn activity(&self, action: &str, target: impl Into<Option<String>>) -> NewActivity {
        NewActivity {
            user_id: Some(self.id),
            actor: "tenant".into(),
            action: action.into(),
            target: target.into(),
            detail: None,
            ip: self.ip.clone(),
        }
    }
}

/// The API key of a request: `x-api-key`, `Authorization: Bearer`, or `?api_key=`.
fn presented_key(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    if let Some(v) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(token) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(token.trim().to_string());
        }
    }
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "api_key").map(|(_, v)| v.into_owned())
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(t) = parts.extensions.get::<Tenant>() {
            return Ok(t.clone());
        }
        let Some(key) = presented_key(parts) else {
            return Err(ApiError::Unauthorized(
                "an API key is required (x-api-key header, Bearer token or api_key parameter)".into(),
            ));
        };
        let auth = state
            .tenants
            .authenticate(&key)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the API key is not valid".into()))?;
        if auth.status != "active" {
            return Err(ApiError::Forbidden("this account is suspended".into()));
        }
        let overrides: limits::Overrides = serde_json::from_str(&auth.overrides).unwrap_or_default();
        let rpm = limits::effective(&state.limits.package(&auth.package), &overrides)
            .get(Resource::RequestsPerMinute);
        if let Err(wait) = state.rate.check(auth.key_id, rpm) {
            return Err(ApiError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil() as u64 });
        }
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await.unwrap_or(ClientIp(None));
        let tenant = Tenant { id: auth.user_id, key_id: auth.key_id, package: auth.package, ip };
        parts.extensions.insert(tenant.clone());
        Ok(tenant)
    }
}

/// A request carrying the admin token as `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Admin {
    pub ip: Option<String>,
}

impl Admin {
    pub fn activity(
        &self,
        user_id: Option<i64>,
        action: &str,
        target: impl Into<Option<String>>,
    ) -> NewActivity {
        NewActivity {
            user_id,
            actor: "admin".into(),
            action: action.into(),
            target: target.into(),
            detail: None,
            ip: self.ip.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        match token {
            Some(t) if state.admin_token.verify(t) => {
                let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await.unwrap_or(ClientIp(None));
                Ok(Admin { ip })
            }
            Some(_) => Err(ApiError::Unauthorized("the admin token is not valid".into())),
            None => Err(ApiError::Unauthorized("the admin token is required as a Bearer token".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: i64,
    }

    #[test]
    fn json_errors_name_the_field() {
        match parse_json::<Body>(br#"{"name": "a", "count": "x"}"#) {
            Err(ApiError::Validation { field, .. }) => assert_eq!(field, "count"),
            other => panic!("{other:?}"),
        }
        match parse_json::<Body>(br#"{"name": "a"}"#) {
            Err(ApiError::Validation { field, .. }) => assert_eq!(field, "count"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_json::<Body>(b"{nope"), Err(ApiError::BadRequest(_))));
    }
}
