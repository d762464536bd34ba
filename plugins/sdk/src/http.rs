//! Outbound HTTP(S) requests, to the hosts the tenant allowed for the plugin.
//!
//! The tenant lists the hosts a plugin may reach in its `allowed_hosts` (exact names or IP
//! addresses, or `*.example.com`); any other host is [`HttpError::HostNotAllowed`]. The gateway
//! sends each request itself: it refuses private and internal addresses
//! ([`HttpError::AddressNotAllowed`]) unless its operator allows them, never follows a
//! redirect (a 3xx comes back as it is), and caps the requests of one run, the size of the
//! bodies and the time of each request. None of these failures ends the run: the plugin gets
//! the error and decides. [`HttpError`] converts into [`crate::PluginError`], so `?` works inside
//! [`crate::Plugin::handle`].
//!
//! ```no_run
//! use wa_gateway_plugin_sdk::http;
//!
//! # fn f() -> Result<(), wa_gateway_plugin_sdk::PluginError> {
//! let answer = http::get("https://api.toko.id/orders/1234")?;
//! if answer.status == 200 {
//!     let body = answer.text();
//! }
//! # Ok(())
//! # }
//! ```

use crate::bindings::wa_gateway::plugin::http as raw;
use crate::PluginError;
pub use raw::{HttpError, Request, Response};

/// Sends `request` and waits for the answer, whatever its status.
pub fn send(request: &Request) -> Result<Response, HttpError> {
    raw::send(request)
}

/// A `GET` of `url` with no extra headers.
pub fn get(url: &str) -> Result<Response, HttpError> {
    send(&Request::new("GET", url))
}

/// A `POST` of the JSON text `body` to `url`.
pub fn post_json(url: &str, body: &str) -> Result<Response, HttpError> {
    send(&Request::new("POST", url).with_header("content-type", "application/json").with_body(body))
}

impl Request {
    /// A request without headers or body, with the operator's time limit.
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(body.into());
        self
    }

    /// Waits at most `ms` milliseconds for the answer (the operator's limit when lower).
    pub fn with_timeout_ms(mut self, ms: u32) -> Request {
        self.timeout_ms = Some(ms);
        self
    }
}

impl Response {
    /// The body as text (bytes that are not UTF-8 are replaced by `�`).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of the header `name` (names are lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON into `T`; [`PluginError::Failed`] when it does not fit.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.body)
            .map_err(|err| PluginError::Failed(format!("http: the answer is not the JSON expected: {err}")))
    }
}

impl From<HttpError> for PluginError {
    /// A request that got no answer becomes [`PluginError::Failed`], so `?` works.
    fn from(err: HttpError) -> Self {
        let reason = match err {
            HttpError::HostNotAllowed(why) => format!("http: host not allowed: {why}"),
            HttpError::AddressNotAllowed(why) => format!("http: address not allowed: {why}"),
            HttpError::InvalidRequest(why) => format!("http: invalid request: {why}"),
            HttpError::TooManyRequests(why) => format!("http: too many requests: {why}"),
            HttpError::Timeout(why) => format!("http: timeout: {why}"),
            HttpError::ResponseTooLarge(why) => format!("http: response too large: {why}"),
            HttpError::Failed(why) => format!("http: failed: {why}"),
        };
        PluginError::Failed(reason)
    }
}
