//! Plugins written in JavaScript and Python through the real server: `echo-js`
//! (plugins/js/echo-js, built with componentize-js) and `echo-py` (plugins/py/echo-py, built
//! with componentize-py), built by `plugins/build.sh`, uploaded raw, run on simulator messages.
//!
//! A test binary of its own: compiling a 12 to 18 MB component keeps the CPUs busy for many
//! seconds in a debug build, and cargo runs test binaries one after another, so those compiles
//! cannot starve the timing of the API tests.

#[path = "api/helpers.rs"]
mod helpers;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use helpers::{poll_until, TestApp, WAIT};

const DEVICE: &str = "6281381830652";
const CUSTOMER: &str = "6281234567891";

/// A component built by `plugins/build.sh`.
fn component(name: &str) -> Vec<u8> {
    let path = format!("{}/target/plugins/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}; run plugins/build.sh first (it needs Node.js and npm, and Python 3 with venv)")
    })
}

#[tokio::test]
async fn echo_in_javascript_answers_and_counts_in_its_store() {
    echo_answers_and_counts_in_its_store("echo-js").await;
}

#[tokio::test]
async fn echo_in_python_answers_and_counts_in_its_store() {
    echo_answers_and_counts_in_its_store("echo-py").await;
}

/// Uploads the echo plugin `name`, sends it three messages one at a time, and checks the
/// answers and the count its store kept between the runs.
async fn echo_answers_and_counts_in_its_store(name: &str) {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("premium").await;
    let device = app.pair_device(&tenant, DEVICE).await;

    let wasm = component(name);
    // Validating and compiling the component takes a while in a debug build.
    let request = app
        .request(Method::POST, &format!("/api/user/plugins?name={name}"))
        .header("x-api-key", &tenant.api_key)
        .header("content-type", "application/wasm")
        .timeout(Duration::from_secs(300))
        .body(wasm.clone());
    let (status, plugin) = app.send(request).await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    assert_eq!(plugin["size"], wasm.len());
    let id = plugin["id"].as_i64().unwrap();

    // One message at a time, so each run sees the count the one before it stored.
    let mut outbox = Vec::new();
    for (n, text) in ["satu", "dua", "tiga"].into_iter().enumerate() {
        app.inbound(device, CUSTOMER, text, Some("Budi")).await;
        outbox = poll_until(WAIT, || async {
            let outbox = app.outbox(device).await;
            (outbox.len() > n).then_some(outbox)
        })
        .await;
    }
    let mut answers: Vec<&str> = outbox.iter().map(|m| m["text"].as_str().unwrap()).collect();
    answers.sort_unstable();
    assert_eq!(answers, ["echo: dua", "echo: satu", "echo: tiga"], "{name}");
    assert!(outbox.iter().all(|m| m["to"] == format!("{CUSTOMER}@s.whatsapp.net")), "{outbox:?}");

    // The logs of the three runs say 1, 2 and 3: the store kept the count between runs.
    let rows: Vec<Value> = poll_until(WAIT, || async {
        let request = app
            .request(Method::GET, "/api/user/webhook-logs")
            .header("x-api-key", &tenant.api_key)
            .query(&[("kind", "plugin"), ("plugin", &id.to_string())]);
        let (status, body) = app.send(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rows = body["data"].as_array().unwrap().clone();
        (rows.len() >= 3).then_some(rows)
    })
    .await;
    assert!(rows.iter().all(|r| r["outcome"] == "success"), "{rows:?}");
    let responses: Vec<&str> = rows.iter().map(|r| r["response"].as_str().unwrap()).collect();
    for n in 1..=3 {
        let line = format!("messages seen: {n}");
        assert_eq!(responses.iter().filter(|r| r.contains(&line)).count(), 1, "{line} in {responses:?}");
    }
}
