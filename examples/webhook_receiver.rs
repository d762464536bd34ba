//! A webhook receiver that verifies the gateway's Standard Webhooks signatures and prints the
//! events it gets.
//!
//! ```sh
//! cargo run --example webhook_receiver -- --secret whsec_... [--listen 127.0.0.1:4000]
//!     [--reply "Thanks, we got: {text}"] [--tolerance 300]
//! ```
//!
//! (`--secret` may also come from `WEBHOOK_SECRET`.) For every POST it checks, as any receiver
//! should, before trusting the body:
//!
//! 1. `webhook-id`, `webhook-timestamp` and `webhook-signature` are present;
//! 2. the timestamp is within `--tolerance` seconds of now (replayed requests are refused);
//! 3. one of the space-separated `v1,<base64>` signatures is HMAC-SHA256 of
//!    `"{webhook-id}.{webhook-timestamp}.{raw body}"` with the secret's key (the base64 after
//!    `whsec_`), compared in constant time, over the raw bytes (never re-serialised JSON);
//! 4. the `webhook-id` was not handled before (deliveries are at least once: a retry after a
//!    lost answer carries the same id).
//!
//! A bad request gets 401 and the gateway logs the failure and retries; a good one gets 200.
//! With `--reply`, a `message.received` event is answered with `{"reply": ...}` (`{text}` is
//! replaced by the message's text), which a `reply`-mode endpoint sends back to the chat.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Parser, Debug)]
#[command(about = "Receives wa-gateway webhooks, verifies their signatures and prints them")]
struct Args {
    /// The endpoint's signing secret (`whsec_...`), from the gateway's create or rotate answer.
    #[arg(long, env = "WEBHOOK_SECRET")]
    secret: String,
    /// Address to listen on; the endpoint URL is `http://<this>/` (any path).
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: SocketAddr,
    /// Answer `message.received` with this reply (`{text}`: the message's text).
    #[arg(long)]
    reply: Option<String>,
    /// Seconds a `webhook-timestamp` may differ from now.
    #[arg(long, default_value_t = 300)]
    tolerance: i64,
}

struct Receiver {
    key: Vec<u8>,
    reply: Option<String>,
    tolerance: i64,
    /// Ids handled recently, oldest first (a bounded idempotency record).
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

const REMEMBER: usize = 10_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let encoded = args.secret.trim().strip_prefix("whsec_").unwrap_or(args.secret.trim());
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| anyhow::anyhow!("--secret must be whsec_ followed by base64"))?;
    let state = Arc::new(Receiver {
        key,
        reply: args.reply,
        tolerance: args.tolerance,
        seen: Mutex::new((HashSet::new(), VecDeque::new())),
    });
    let app = Router::new().route("/", post(receive)).route("/{*path}", post(receive)).with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on http://{} (register this URL as the webhook endpoint)", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Why a request was refused.
fn verify(r: &Receiver, headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let header = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).ok_or_else(|| format!("missing header {name}"))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let ts: i64 = timestamp.parse().map_err(|_| "webhook-timestamp is not a number".to_string())?;
    let now = chrono::Utc::now().timestamp();
    if (now - ts).abs() > r.tolerance {
        return Err(format!(
            "webhook-timestamp is {} s away from now (tolerance {} s)",
            now - ts,
            r.tolerance
        ));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&r.key).map_err(|e| e.to_string())?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if matches {
        Ok(id.to_string())
    } else {
        Err("no signature matches (wrong secret, or the body was changed)".into())
    }
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let at = chrono::Utc::now().format("%H:%M:%S");
    let id = match verify(&r, &headers, &body) {
        Ok(id) => id,
        Err(why) => {
            println!("{at} REFUSED: {why}");
            return (StatusCode::UNAUTHORIZED, why).into_response();
        }
    };
    {
        let mut seen = r.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.0.insert(id.clone()) {
            println!("{at} {id}: a repeat of a delivery already handled; answering 200 again");
            return StatusCode::OK.into_response();
        }
        seen.1.push_back(id.clone());
        if seen.1.len() > REMEMBER {
            if let Some(old) = seen.1.pop_front() {
                seen.0.remove(&old);
            }
        }
    }
    let event: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not JSON: {e}")).into_response(),
    };
    let kind = event["type"].as_str().unwrap_or("?");
    println!("{at} verified {kind} ({id})");
    println!("{}", serde_json::to_string_pretty(&event["data"]).unwrap_or_default());
    match (&r.reply, kind) {
        (Some(reply), "message.received") => {
            let text = reply.replace("{text}", event["data"]["text"].as_str().unwrap_or_default());
            Json(serde_json::json!({ "reply": text })).into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}
