//! Extractors: JSON and query parsing with our error format, tenant and admin authentication.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use super::client_ip::ClientIp;
use crate::db::{MAX_LIMIT, MAX_OFFSET};
use crate::error::ApiError;
use crate::limits::{self, Resource};
use crate::state::AppState;
pub use crate::tenants::{Admin, Tenant};
use crate::tenants::{Devices, Scopes};

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
///
/// Text with U+0000 is refused with 422 on every JSON endpoint: PostgreSQL cannot store it,
/// and no WhatsApp message or setting needs it, so both databases answer the same.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if may_hold_nul(bytes) {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(field) = nul_field(&value, String::new()) {
                return Err(nul_error(field));
            }
        }
    }
    parse_json_text(bytes)
}

/// [`parse_json`] without refusing U+0000.
fn parse_json_text<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object: serde would also fill a struct from an array of its fields in
    // order (`[]` for a struct whose fields all have defaults).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::validation("body", "must be a JSON object, not an array"));
    }
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

/// Whether a JSON text may contain an escaped U+0000 (`\u0000`); a raw NUL byte is not valid
/// JSON and fails parsing anyway. A cheap scan so ordinary bodies are parsed once.
fn may_hold_nul(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w[..2] == *b"\\u" && w[2..].iter().all(|&b| b == b'0'))
}

/// The path of the first string (or object key) in `value` that contains U+0000.
fn nul_field(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(if path.is_empty() { "body".into() } else { path }),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| nul_field(item, format!("{path}[{i}]")))
        }
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            if key.contains('\0') {
                Some(path)
            } else {
                nul_field(item, path)
            }
        }),
        _ => None,
    }
}

/// The answer to text holding U+0000.
pub fn nul_error(field: impl Into<String>) -> ApiError {
    ApiError::validation(field, "must not contain the NUL character (U+0000)")
}

/// A text form or multipart field as given, refused when it holds U+0000.
pub fn text_field(field: &str, value: String) -> Result<String, ApiError> {
    if value.contains('\0') {
        return Err(nul_error(field));
    }
    Ok(value)
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
        parse_json(&json_body(req, state).await?).map(ApiJson)
    }
}

/// A JSON body standing for what arrives from WhatsApp (the simulator's inbound messages):
/// like [`ApiJson`], but text may hold U+0000, as a stranger's message may.
pub struct WireJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for WireJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        parse_json_text(&json_body(req, state).await?).map(WireJson)
    }
}

/// The bytes of a JSON body: 415 without a JSON content type, 413 when too large.
async fn json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
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
    Bytes::from_request(req, state).await.map_err(body_error)
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
        // `api_key` is a credential, not a filter: authentication judges it (a key with U+0000
        // is no key, and one given in a header comes first).
        if let Some((key, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(k, v)| k != "api_key" && (k.contains('\0') || v.contains('\0')))
        {
            return Err(nul_error(key.replace('\0', "\u{FFFD}")));
        }
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
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Rows to skip, 0 to 100000 (default 0).
    #[param(minimum = 0, maximum = 100000)]
    pub offset: Option<i64>,
}

/// A list's `limit` (1 to [`MAX_LIMIT`], default 50) and `offset` (0 to [`MAX_OFFSET`],
/// default 0); anything outside is a 422 naming the parameter.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let offset = offset.unwrap_or(0);
    if !(0..=MAX_OFFSET).contains(&offset) {
        return Err(ApiError::validation(
            "offset",
            format!("must be between 0 and {MAX_OFFSET} (narrow the list with a filter to go deeper)"),
        ));
    }
    Ok((limit, offset))
}

/// Every list answers `{"data", "total", "limit", "offset"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// The credentials of an `Authorization: Bearer <token>` header. The scheme name is
/// case-insensitive (`Bearer`, `bearer`, `BEARER`), as HTTP defines authentication schemes.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The API key of a request: `x-api-key`, `Authorization: Bearer`, or `?api_key=`.
fn presented_key(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    if let Some(v) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(token) = bearer_token(v) {
            return Some(token.to_string());
        }
    }
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "api_key").map(|(_, v)| v.into_owned())
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
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
        if let Err(wait) = state.rate.check(auth.user_id, Some(auth.key_id), rpm) {
            return Err(ApiError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil() as u64 });
        }
        let scopes = Scopes::from_stored(&auth.scopes);
        let route = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str);
        let needed = super::scopes::required(&parts.method, route);
        if !scopes.contains(needed) {
            return Err(ApiError::Forbidden(format!(
                "this API key lacks the `{}` scope (it has: {})",
                needed.as_str(),
                scopes.names().join(", ")
            )));
        }
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await.unwrap_or(ClientIp(None));
        let devices = Devices::from_stored(auth.devices.as_deref());
        Ok(Tenant { id: auth.user_id, key_id: auth.key_id, package: auth.package, ip, scopes, devices })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token =
            parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn paging_is_accepted_exactly_within_its_bounds(limit in any::<i64>(), offset in any::<i64>()) {
            let accepted = page(Some(limit), Some(offset)).is_ok();
            prop_assert_eq!(accepted, (1..=MAX_LIMIT).contains(&limit) && (0..=MAX_OFFSET).contains(&offset));
        }
    }

    #[test]
    fn paging_has_defaults_and_names_the_parameter_at_fault() {
        assert_eq!(page(None, None).unwrap(), (50, 0));
        for (limit, offset, field) in
            [(Some(0), None, "limit"), (None, Some(-1), "offset"), (Some(1), Some(i64::MAX), "offset")]
        {
            match page(limit, offset) {
                Err(ApiError::Validation { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn text_with_nul_is_refused_naming_the_field_wherever_it_is() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Nested {
            items: Vec<serde_json::Value>,
        }
        match parse_json::<Nested>(br#"{"items": [{"ok": "x"}, {"name": "a\u0000b"}]}"#) {
            Err(ApiError::Validation { field, .. }) => assert_eq!(field, "items[1].name"),
            other => panic!("{other:?}"),
        }
        match parse_json::<serde_json::Value>(br#"{"k\u0000": 1}"#) {
            Err(ApiError::Validation { field, .. }) => assert!(field.starts_with('k'), "{field}"),
            other => panic!("{other:?}"),
        }
        // An escaped backslash before `u0000` is ordinary text.
        assert!(parse_json::<serde_json::Value>(br#"{"t": "\\u0000"}"#).is_ok());
        assert!(text_field("caption", "a\0b".into()).is_err());
    }

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
        // A struct is not filled from an array of its fields.
        #[derive(Debug, serde::Deserialize)]
        struct Defaults {
            #[serde(default)]
            _name: String,
        }
        for body in [&b"[]"[..], b" [\"x\"]"] {
            match parse_json::<Defaults>(body) {
                Err(ApiError::Validation { field, .. }) => assert_eq!(field, "body"),
                other => panic!("an array body: {other:?}"),
            }
        }
    }
}
