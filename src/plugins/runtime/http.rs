//! `http.send` of world 0.3.0: a plugin's outbound requests, to the hosts its tenant allowed,
//! through the gateway's hardened client ([`crate::net`]: private addresses refused unless the
//! operator allows them, no redirects followed, no proxy), with caps on the requests of a run,
//! the size of each body and the time of each request. Every request is recorded for the run's
//! log. While a request is in flight the run gives its tenant's CPU turn back
//! ([`crate::plugins::fairness::Turn`]), so a plugin waiting on a slow server holds up neither
//! its tenant's other runs nor anyone else's.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde::Serialize;

use super::host::cut;
use crate::net::{read_capped, HttpClient, NetError};
use crate::plugins::fairness::Turn;
use crate::plugins::hosts::AllowedHosts;

/// Headers one request may carry.
const MAX_HEADERS: usize = 50;
/// Bytes of a body kept in the run's log, when the tenant keeps bodies.
const LOGGED_BODY_BYTES: usize = 1024;
/// Headers a plugin may not set: the client sets them from the URL and the body.
const HEADERS_THE_GATEWAY_SETS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// The operator's caps (`[plugins] http_*`).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_requests: usize,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    pub request_timeout: Duration,
}

/// What one run may reach, from the plugin's settings; and its tenant turn to give back while
/// it waits. The default reaches nothing.
#[derive(Default)]
pub struct NetAccess {
    pub allowed: AllowedHosts,
    pub log_bodies: bool,
    pub turn: Option<Turn>,
}

impl std::fmt::Debug for NetAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetAccess")
            .field("allowed", &self.allowed)
            .field("log_bodies", &self.log_bodies)
            .field("turn", &self.turn.is_some())
            .finish()
    }
}

/// One request as the run's log shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpCall {
    pub method: String,
    /// The URL's host (and port, when the URL names one); the URL as given when it has none.
    pub host: String,
    /// The answer's status; absent when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// `ok`, or the kind of error the plugin got (`host-not-allowed`, `timeout`, ...).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// The requests of a run, as the log keeps them: each one up to the cap, then a count.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpLog {
    pub calls: Vec<HttpCall>,
    /// Requests refused for being over the cap, not listed one by one.
    #[serde(skip_serializing_if = "is_zero")]
    pub over_cap: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl HttpLog {
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty() && self.over_cap == 0
    }
}

/// A request as the plugin gave it (the WIT record, version-independent).
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: Option<u32>,
}

/// The answer handed back to the plugin.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The `http-error` cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    HostNotAllowed(String),
    AddressNotAllowed(String),
    InvalidRequest(String),
    TooManyRequests(String),
    Timeout(String),
    ResponseTooLarge(String),
    Failed(String),
}

impl HttpError {
    fn kind(&self) -> &'static str {
        match self {
            HttpError::HostNotAllowed(_) => "host-not-allowed",
            HttpError::AddressNotAllowed(_) => "address-not-allowed",
            HttpError::InvalidRequest(_) => "invalid-request",
            HttpError::TooManyRequests(_) => "too-many-requests",
            HttpError::Timeout(_) => "timeout",
            HttpError::ResponseTooLarge(_) => "response-too-large",
            HttpError::Failed(_) => "failed",
        }
    }

    fn message(&self) -> &str {
        match self {
            HttpError::HostNotAllowed(m)
            | HttpError::AddressNotAllowed(m)
            | HttpError::InvalidRequest(m)
            | HttpError::TooManyRequests(m)
            | HttpError::Timeout(m)
            | HttpError::ResponseTooLarge(m)
            | HttpError::Failed(m) => m,
        }
    }
}

/// The run ran out of wall-clock time while a request was in flight (or waiting for its turn
/// back): the run stops.
pub struct OutOfTime;

/// One run's HTTP: what it may reach, the client, the caps, and the log of its requests.
pub struct HttpSession {
    access: NetAccess,
    client: HttpClient,
    limits: HttpLimits,
    handle: Option<tokio::runtime::Handle>,
    sent: usize,
    log: HttpLog,
}

impl HttpSession {
    pub fn new(
        access: NetAccess,
        client: HttpClient,
        limits: HttpLimits,
        handle: Option<tokio::runtime::Handle>,
    ) -> HttpSession {
        HttpSession { access, client, limits, handle, sent: 0, log: HttpLog::default() }
    }

    /// The log of the run's requests.
    pub fn finish(self) -> HttpLog {
        self.log
    }

    /// Sends one request within `remaining` of the run's wall-clock time. Blocks the calling
    /// (blocking) thread; gives the tenant's turn back while it waits.
    pub fn send(
        &mut self,
        request: Request,
        remaining: Duration,
    ) -> Result<Result<Response, HttpError>, OutOfTime> {
        let started = Instant::now();
        let method = request.method.trim().to_ascii_uppercase();
        let host = host_of(&request.url);
        let request_body =
            (self.access.log_bodies).then(|| request.body.as_deref().map(logged_body)).flatten();
        let answer = self.exchange(&method, request, remaining);
        let (result, out_of_time) = match answer {
            Ok(result) => (result, false),
            Err(OutOfTime) => (Err(HttpError::Timeout("the run's time ran out".into())), true),
        };
        if self.log.calls.len() >= self.limits.max_requests {
            self.log.over_cap += 1;
        } else {
            let (status, outcome, error, response_body) = match &result {
                Ok(r) => (Some(r.status), "ok", None, self.access.log_bodies.then(|| logged_body(&r.body))),
                Err(e) => (None, e.kind(), Some(e.message().to_string()), None),
            };
            self.log.calls.push(HttpCall {
                method: cut(&method, 16).to_string(),
                host: cut(&host, 256).to_string(),
                status,
                latency_ms: started.elapsed().as_millis() as u64,
                outcome,
                error,
                request_body,
                response_body,
            });
        }
        if out_of_time {
            return Err(OutOfTime);
        }
        Ok(result)
    }

    fn exchange(
        &mut self,
        method: &str,
        request: Request,
        remaining: Duration,
    ) -> Result<Result<Response, HttpError>, OutOfTime> {
        if self.sent >= self.limits.max_requests {
            return Ok(Err(HttpError::TooManyRequests(format!(
                "a run may make at most {} requests",
                self.limits.max_requests
            ))));
        }
        self.sent += 1;
        let prepared = match self.prepare(method, request) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let Some(handle) = self.handle.clone() else {
            return Ok(Err(HttpError::Failed("outbound HTTP is not available here".into())));
        };
        let client = self.client.clone();
        if remaining.is_zero() {
            return Err(OutOfTime);
        }
        let asked = prepared.timeout.unwrap_or(self.limits.request_timeout).min(self.limits.request_timeout);
        let limit = asked.min(remaining);
        let max_response = self.limits.max_response_bytes;
        let started = Instant::now();
        if let Some(turn) = self.access.turn.as_mut() {
            turn.pause();
        }
        let result = handle.block_on(async {
            let exchange = async {
                let response = client.send(prepared.builder).await?;
                let status = response.status().as_u16();
                let headers = response
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                    })
                    .collect();
                let body = read_capped(response, max_response).await?;
                Ok::<_, NetError>(Response { status, headers, body: body.to_vec() })
            };
            tokio::time::timeout(limit, exchange).await
        });
        if let Some(turn) = self.access.turn.as_mut() {
            let left = remaining.saturating_sub(started.elapsed());
            if !handle.block_on(turn.resume(left)) {
                return Err(OutOfTime);
            }
        }
        match result {
            Ok(Ok(response)) => Ok(Ok(response)),
            Ok(Err(err)) => Ok(Err(from_net(err, max_response))),
            Err(_) if limit < asked => Err(OutOfTime),
            Err(_) => {
                Ok(Err(HttpError::Timeout(format!("no complete answer within {} ms", limit.as_millis()))))
            }
        }
    }

    /// Checks the request against the allowed hosts and the caps and builds it.
    fn prepare(&self, method: &str, request: Request) -> Result<Prepared, HttpError> {
        let method = match method {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            "HEAD" => Method::HEAD,
            other => {
                return Err(HttpError::InvalidRequest(format!(
                    "method `{}` is not allowed: use GET, POST, PUT, PATCH, DELETE or HEAD",
                    cut(other, 32)
                )))
            }
        };
        let url = reqwest::Url::parse(request.url.trim())
            .map_err(|e| HttpError::InvalidRequest(format!("invalid URL: {e}")))?;
        let host = url.host_str().unwrap_or_default();
        if !self.access.allowed.allows(host) {
            return Err(HttpError::HostNotAllowed(format!(
                "`{}` is not one of the plugin's allowed hosts",
                cut(host, 256)
            )));
        }
        if request.headers.len() > MAX_HEADERS {
            return Err(HttpError::InvalidRequest(format!("at most {MAX_HEADERS} headers")));
        }
        let body = request.body.unwrap_or_default();
        let header_bytes: usize = request.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        if body.len() + header_bytes > self.limits.max_request_bytes {
            return Err(HttpError::InvalidRequest(format!(
                "the request's headers and body are larger than {} bytes",
                self.limits.max_request_bytes
            )));
        }
        // The client checks the address again (and its resolver, every address the name has).
        let mut builder = self
            .client
            .request(method, url.as_str())
            .map_err(|e| from_net(e, self.limits.max_response_bytes))?;
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                HttpError::InvalidRequest(format!("`{}` is not a header name", cut(name, 64)))
            })?;
            if HEADERS_THE_GATEWAY_SETS.contains(&name.as_str()) {
                return Err(HttpError::InvalidRequest(format!("the header `{name}` is set by the gateway")));
            }
            let value = HeaderValue::from_str(value).map_err(|_| {
                HttpError::InvalidRequest(format!("the value of `{name}` is not a header value"))
            })?;
            builder = builder.header(name, value);
        }
        if !body.is_empty() {
            builder = builder.body(body);
        }
        Ok(Prepared { builder, timeout: request.timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))) })
    }
}

struct Prepared {
    builder: reqwest::RequestBuilder,
    timeout: Option<Duration>,
}

fn from_net(err: NetError, max_response: usize) -> HttpError {
    match err {
        NetError::Blocked(what) => HttpError::AddressNotAllowed(format!(
            "refused to connect to {what}: private and internal addresses are not allowed"
        )),
        NetError::Timeout => HttpError::Timeout("the request timed out".into()),
        NetError::TooLarge { .. } => {
            HttpError::ResponseTooLarge(format!("the response body is larger than {max_response} bytes"))
        }
        NetError::InvalidUrl(why) => HttpError::InvalidRequest(format!("invalid URL: {why}")),
        other => HttpError::Failed(other.to_string()),
    }
}

/// The URL's host and port as written, for the log; the URL itself (cut) when it has none.
fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => cut(url, 256).to_string(),
        },
        Err(_) => cut(url, 256).to_string(),
    }
}

fn logged_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(LOGGED_BODY_BYTES)]).into_owned();
    if body.len() > LOGGED_BODY_BYTES {
        format!("{text}… ({} bytes)", body.len())
    } else {
        text
    }
}
