//! `http-probe` (for tests): makes the HTTP requests its configuration asks for and replies
//! with a JSON report of what came back, so the gateway's tests can check the `http` import
//! through the real pipeline, adversarial cases included.
//!
//! Configuration:
//!
//! ```json
//! {"requests": [{"method": "GET", "url": "http://…", "headers": [["x-a", "1"]], "body": null,
//!                "timeout_ms": null, "times": 1}]}
//! ```
//!
//! Each request is sent `times` times (default 1), in order. The reply is
//! `{"results": [...], "counts": {...}}`: for each request sent, `{"status": 200, "bytes": 12,
//! "body": "<first 100 bytes>"}` or `{"error": "<kind>", "message": "…"}`, and how many
//! results of each status or error kind there were (a request sent 1,000 times gives its
//! first 10 results and the counts of all). A request that got no answer never fails the run.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use wa_gateway_plugin_sdk::http::{self, HttpError, Request};
use wa_gateway_plugin_sdk::{config, export_plugin, Context, Decision, Message, Plugin, PluginError};

/// Results listed one by one; the rest are only counted.
const LISTED: usize = 10;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    requests: Vec<Spec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u32>,
    #[serde(default = "one")]
    times: u32,
}

fn get() -> String {
    "GET".into()
}
fn one() -> u32 {
    1
}

fn kind(err: &HttpError) -> (&'static str, &str) {
    match err {
        HttpError::HostNotAllowed(m) => ("host-not-allowed", m),
        HttpError::AddressNotAllowed(m) => ("address-not-allowed", m),
        HttpError::InvalidRequest(m) => ("invalid-request", m),
        HttpError::TooManyRequests(m) => ("too-many-requests", m),
        HttpError::Timeout(m) => ("timeout", m),
        HttpError::ResponseTooLarge(m) => ("response-too-large", m),
        HttpError::Failed(m) => ("failed", m),
    }
}

struct HttpProbe;

impl Plugin for HttpProbe {
    fn handle(_msg: Message, ctx: Context) -> Result<Decision, PluginError> {
        let cfg: Config = config(&ctx)?;
        let mut results = Vec::new();
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for spec in &cfg.requests {
            let mut request = Request::new(&spec.method, &spec.url);
            request.headers = spec.headers.clone();
            request.body = spec.body.as_ref().map(|b| b.clone().into_bytes());
            request.timeout_ms = spec.timeout_ms;
            for _ in 0..spec.times {
                let (key, result) = match http::send(&request) {
                    Ok(answer) => {
                        let head = &answer.body[..answer.body.len().min(100)];
                        (
                            answer.status.to_string(),
                            json!({
                                "status": answer.status,
                                "bytes": answer.body.len(),
                                "body": String::from_utf8_lossy(head),
                            }),
                        )
                    }
                    Err(err) => {
                        let (kind, message) = kind(&err);
                        (kind.to_string(), json!({"error": kind, "message": message}))
                    }
                };
                *counts.entry(key).or_default() += 1;
                if results.len() < LISTED {
                    results.push(result);
                }
            }
        }
        let report: Value = json!({"results": results, "counts": counts});
        Ok(Decision::reply(report.to_string()))
    }
}

export_plugin!(HttpProbe);
