//! A real HTTP webhook receiver on 127.0.0.1 for the webhook tests, and the tests' own
//! Standard Webhooks verifier (written from the specification, not with the gateway's code).
//!
//! The receiver records every request and answers from a script (one answer per request,
//! then the default answer). Every answer closes its connection, so stopping the receiver
//! really makes the port refuse connections, and it can be started again on the same port.
//! `GET /media.png` serves a small PNG for media replies.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::helpers::poll_until;

/// A 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00,
    0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01,
    0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer { status, body: String::new(), delay: Duration::ZERO, headers: Vec::new() }
    }

    pub fn json(body: Value) -> Answer {
        Answer { body: body.to_string(), ..Answer::status(200) }
    }

    pub fn raw(status: u16, body: &str) -> Answer {
        Answer { body: body.to_string(), ..Answer::status(status) }
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The query string, without `?`; empty when there is none.
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Option<Answer>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The receiver. Stops when dropped.
pub struct Receiver {
    pub port: u16,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl Receiver {
    /// A receiver on a free port, answering `200 {}` until told otherwise.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().unwrap().port();
        let mut r = Receiver { port, shared: Arc::new(Shared::default()), server: None };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: TcpListener) {
        let shared = self.shared.clone();
        let app =
            axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let shared = shared.clone();
                async move { handle(shared, method, uri, headers, body).await }
            });
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The answer to every request after the scripted ones.
    pub fn answer(&self, answer: Answer) {
        *self.shared.default.lock().unwrap() = Some(answer);
    }

    /// Answers for the next requests, in order.
    pub fn script(&self, answers: Vec<Answer>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    /// Every webhook request so far (media fetches left out), oldest first.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().iter().filter(|r| r.method == "POST").cloned().collect()
    }

    /// Waits until at least `n` webhook requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        poll_until(timeout, || async {
            let got = self.requests();
            (got.len() >= n).then_some(got)
        })
        .await
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Stops listening; connections are refused until [`Receiver::restart`].
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("the port is free again");
        self.serve(listener);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn handle(shared: Arc<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    shared.requests.lock().unwrap().push(Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    if method == Method::GET && uri.path().ends_with(".png") {
        return ([("content-type", "image/png"), ("connection", "close")], PNG).into_response();
    }
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let answer = shared.script.lock().unwrap().pop_front();
    let answer = answer
        .or_else(|| shared.default.lock().unwrap().clone())
        .unwrap_or_else(|| Answer::json(serde_json::json!({})));
    tokio::time::sleep(answer.delay).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    let h = response.headers_mut();
    h.insert("connection", "close".parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    for (k, v) in answer.headers {
        h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    response
}

/// Verifies a request as a Standard Webhooks receiver does: some `v1` signature in
/// `webhook-signature` is HMAC-SHA256 of `{id}.{timestamp}.{body}` under `secret`
/// (`whsec_` + base64), and the timestamp is within five minutes of now.
pub fn verifies(secret: &str, request: &Received) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("a whsec_ secret")).expect("base64");
    let id = request.header("webhook-id");
    let ts = request.header("webhook-timestamp");
    let Ok(ts_num) = ts.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - ts_num).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&request.body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    request.header("webhook-signature").split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}
