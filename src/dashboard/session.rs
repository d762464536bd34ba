//! Who is asking: the login cookie, the language, CSRF-checked forms and the login throttle.
//!
//! A login is a random 256-bit token in the `wag_session` cookie (HttpOnly, SameSite=Lax,
//! Secure when `server.public_url` is https); the database keeps only its SHA-256. Each login
//! has its own CSRF token, which every form carries in the hidden field `csrf`. Before login
//! the forms (login, language) carry the value of a `wag_csrf` cookie instead (double submit).
//! Failed logins are throttled by [`super::throttle`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;

use super::i18n::Lang;
use super::Dashboard;
use crate::api::extract::ClientIp;
use crate::db::TenantRow;
use crate::limits::Resource;
use crate::state::AppState;
use crate::tenants::{hash_key, Tenant};

pub const SESSION_COOKIE: &str = "wag_session";
pub const CSRF_COOKIE: &str = "wag_csrf";
pub const LANG_COOKIE: &str = "wag_lang";

/// 256 random bits as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, whole site, Secure over https.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

/// The logged-in tenant of a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub tenant: TenantRow,
    pub token_hash: String,
    pub csrf: String,
}

/// Every dashboard request: the language to answer in and, when logged in, the tenant.
#[derive(Clone)]
pub struct Visitor {
    pub dash: Arc<Dashboard>,
    /// The gateway's services, which pages call as the logged-in tenant.
    pub state: AppState,
    pub lang: Lang,
    pub ip: Option<String>,
    /// The path and query of the page, to come back to after switching language.
    pub path: String,
    pub viewer: Option<Viewer>,
    /// The pre-login CSRF token (from the cookie, or new when `anon_csrf_new`).
    pub anon_csrf: String,
    pub anon_csrf_new: bool,
}

impl Visitor {
    /// The logged-in tenant as services see it: acting from this visitor's address.
    pub fn tenant(&self, me: &Viewer) -> Tenant {
        Tenant {
            id: me.tenant.id,
            key_id: 0,
            package: me.tenant.package.clone(),
            ip: self.ip.clone(),
            scopes: crate::tenants::Scopes::ALL,
            devices: crate::tenants::Devices::All,
        }
    }

    /// The token forms on this page must carry.
    pub fn csrf(&self) -> &str {
        self.viewer.as_ref().map(|v| v.csrf.as_str()).unwrap_or(&self.anon_csrf)
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(v) = parts.extensions.get::<Visitor>() {
            return Ok(v.clone());
        }
        let dash = parts
            .extensions
            .get::<Arc<Dashboard>>()
            .cloned()
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await;
        let mut viewer = None;
        let mut session_lang = None;
        if let Some(token) = cookie(&parts.headers, SESSION_COOKIE).filter(|t| t.len() == 64) {
            let token_hash = hash_key(&token);
            match state.db.dashboard_session(&token_hash).await {
                Ok(Some(s)) => match state.db.tenant(s.user_id).await {
                    Ok(Some(tenant)) if tenant.status == "active" => {
                        session_lang = Lang::parse(&s.language);
                        viewer = Some(Viewer { tenant, token_hash, csrf: s.csrf_token });
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "dashboard session lookup failed"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "dashboard session lookup failed"),
            }
        }
        let lang = session_lang
            .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(|c| Lang::parse(&c)))
            .unwrap_or_else(|| {
                let accept = parts.headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
                Lang::from_accept_language(accept.unwrap_or(""))
            });
        let existing = cookie(&parts.headers, CSRF_COOKIE).filter(|c| c.len() == 64);
        let anon_csrf_new = existing.is_none();
        let anon_csrf = existing.unwrap_or_else(random_token);
        let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        let visitor =
            Visitor { dash, state: state.clone(), lang, ip, path, viewer, anon_csrf, anon_csrf_new };
        if let Some(me) = &visitor.viewer {
            // A logged-in page or action is one request against the tenant's per-minute
            // allowance, shared with its API keys (the API calls it makes inside are not
            // counted again).
            let rpm = match state.limits.limits(me.tenant.id, &me.tenant.package).await {
                Ok(limits) => limits.get(Resource::RequestsPerMinute),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the tenant's limits");
                    None
                }
            };
            if let Err(wait) = state.rate.check(me.tenant.id, None, rpm) {
                let page = super::error_page(
                    &visitor,
                    StatusCode::TOO_MANY_REQUESTS,
                    "error_title",
                    "rate_limited_text",
                );
                return Err(super::with_retry_after(page, wait));
            }
        }
        parts.extensions.insert(visitor.clone());
        Ok(visitor)
    }
}

/// A page that needs a login: anyone else is sent to `/login`.
pub struct Signed {
    pub v: Visitor,
    pub me: Viewer,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let v = Visitor::from_request_parts(parts, state).await?;
        match v.viewer.clone() {
            Some(me) => Ok(Signed { v, me }),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// A POSTed form whose CSRF token was checked: the session's when logged in, else the
/// pre-login cookie's. A missing or wrong token is a 403 page.
pub struct Form {
    pub v: Visitor,
    fields: HashMap<String, String>,
    /// Every field in order, for names given several times (checkbox groups).
    pairs: Vec<(String, String)>,
}

impl Form {
    /// A field's value, or the empty string.
    pub fn get(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    /// Every value of a field given several times, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The logged-in tenant, or a redirect to `/login`.
    pub fn signed(&self) -> Result<Viewer, Redirect> {
        self.v.viewer.clone().ok_or_else(|| Redirect::to("/login"))
    }
}

/// Largest form body: a maximal text message in UTF-8, percent-encoded, with room to spare.
const MAX_FORM_BYTES: usize = 1024 * 1024;

impl FromRequest<AppState> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let v = Visitor::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        Form::checked(v, pairs).map_err(|e| *e)
    }
}

impl Form {
    /// The form, when its `csrf` field is the token this visitor's forms carry; else the 403 page.
    fn checked(v: Visitor, pairs: Vec<(String, String)>) -> Result<Form, Box<Response>> {
        let fields: HashMap<String, String> = pairs.iter().cloned().collect();
        let presented = fields.get("csrf").map(String::as_str).unwrap_or("");
        let expected = v.csrf();
        // The pre-login token only counts when it came from the cookie, not freshly made.
        let valid = !presented.is_empty()
            && (v.viewer.is_some() || !v.anon_csrf_new)
            && constant_time_eq(presented.as_bytes(), expected.as_bytes());
        if !valid {
            return Err(Box::new(super::error_page(
                &v,
                StatusCode::FORBIDDEN,
                "forbidden_title",
                "csrf_text",
            )));
        }
        // Nothing the dashboard stores may hold U+0000 (PostgreSQL cannot), as in the API.
        if pairs.iter().any(|(k, value)| k.contains('\0') || value.contains('\0')) {
            return Err(Box::new(super::error_page(
                &v,
                StatusCode::UNPROCESSABLE_ENTITY,
                "error_title",
                "nul_text",
            )));
        }
        Ok(Form { v, fields, pairs })
    }
}

/// A file of a [`FileForm`].
pub struct FilePart {
    pub field: String,
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A POSTed `multipart/form-data` form (file uploads): its text fields as a [`Form`], checked
/// for the same `csrf` field, and its files. A file input left empty is no file. The body is
/// capped by the server's body limit.
pub struct FileForm {
    pub form: Form,
    pub files: Vec<FilePart>,
}

impl FileForm {
    /// The file sent as `field`, if any.
    pub fn file(&self, field: &str) -> Option<&FilePart> {
        self.files.iter().find(|f| f.field == field)
    }
}

impl FromRequest<AppState> for FileForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let v = Visitor::from_request_parts(&mut parts, state).await?;
        let refuse = |status: StatusCode| {
            let status =
                if status == StatusCode::PAYLOAD_TOO_LARGE { status } else { StatusCode::BAD_REQUEST };
            super::error_page(&v, status, "error_title", "err_other")
        };
        let mut multipart = Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| refuse(e.status()))?;
        let (mut pairs, mut files) = (Vec::new(), Vec::new());
        while let Some(field) = multipart.next_field().await.map_err(|e| refuse(e.status()))? {
            let name = field.name().unwrap_or_default().to_string();
            match field.file_name().map(str::to_string) {
                Some(filename) => {
                    let content_type = field.content_type().unwrap_or("application/octet-stream").to_string();
                    let bytes = field.bytes().await.map_err(|e| refuse(e.status()))?.to_vec();
                    if !(filename.is_empty() && bytes.is_empty()) {
                        files.push(FilePart { field: name, filename, content_type, bytes });
                    }
                }
                None => pairs.push((name, field.text().await.map_err(|e| refuse(e.status()))?)),
            }
        }
        Ok(FileForm { form: Form::checked(v, pairs).map_err(|e| *e)?, files })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; wag_lang=id; b=2".parse().unwrap());
        assert_eq!(cookie(&h, LANG_COOKIE).as_deref(), Some("id"));
        assert_eq!(cookie(&h, SESSION_COOKIE), None);
        let c = set_cookie(SESSION_COOKIE, "x", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("Secure"));
    }
}
