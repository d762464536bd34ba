//! One tenant's plugins under a storm of another tenant's: does the quiet tenant still get its
//! answers in time, and does the gateway still answer `/healthz`?
//!
//! `cargo bench --bench plugin_storm` (run `plugins/build.sh` first) starts the release
//! `wa-gateway` binary as its own process (simulator driver, a temporary SQLite file, log
//! level warn) and sets up two tenants on the enterprise package:
//! - the *victim*, with the `echo` plugin on its device;
//! - the *storm*, with six copies of `spin-forever` (each run burns its whole 50 ms CPU
//!   deadline); `disable_after_failures` is set out of reach, so the storm never stops (the
//!   worst a tenant can do with plugins that fail slowly, or succeed after heavy work).
//!
//! The victim sends messages one at a time and times each from the inbound request to the
//! echo in the simulator's outbox, while another task times `GET /healthz` every 5 ms. First
//! quietly, then while the storm tenant receives a round of 40 messages, 8 at a time, every
//! 3 s (about 80 plugin runs a second, four CPUs' worth, as in the hostile test run). This runs
//! with the default `[plugins]` settings, then with runs never lowered in priority
//! (`lower_priority_after_ms = 0`), then also without the per-tenant cap
//! (`tenant_concurrency = 64`), so each defence's effect is measured in the same run.
//!
//! The goal: during the storm the victim's p50 stays within 2x of its quiet p50 and the
//! `/healthz` p99 under 20 ms. Knob: `STORM_BENCH_MESSAGES` (victim messages per phase, default 60).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

const ADMIN: &str = "storm-bench-admin-token";
const VICTIM_DEVICE: &str = "6281100000101";
const STORM_DEVICE: &str = "6281100000202";
/// How often a round of 40 storm messages starts.
const ROUND: Duration = Duration::from_secs(3);

/// A gateway process; killed when dropped.
struct Gateway {
    child: Child,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn start(tenant_concurrency: usize, lower_priority_after_ms: u64) -> anyhow::Result<Gateway> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("gateway.db");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wa-gateway"))
            .arg("serve")
            .current_dir(dir.path())
            .env("GATEWAY_SERVER__BIND", "127.0.0.1:0")
            .env("GATEWAY_DATABASE__URL", format!("sqlite:{}", db.display()))
            .env("GATEWAY_ADMIN__TOKEN", ADMIN)
            .env("GATEWAY_WHATSAPP__DRIVER", "simulator")
            .env("GATEWAY_WHATSAPP__SEND_MIN_GAP_MS", "0")
            .env("GATEWAY_WHATSAPP__SEND_JITTER_MS", "0")
            .env("GATEWAY_PLUGINS__DISABLE_AFTER_FAILURES", "1000000")
            .env("GATEWAY_PLUGINS__TENANT_CONCURRENCY", tenant_concurrency.to_string())
            .env("GATEWAY_PLUGINS__LOWER_PRIORITY_AFTER_MS", lower_priority_after_ms.to_string())
            .env("GATEWAY_LOG__LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the wa-gateway binary")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().context("the gateway exited before listening")??;
            if let Some(url) = line.strip_prefix("wa-gateway listening on ") {
                break url.trim().to_string();
            }
        };
        // Keep reading so the gateway never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Gateway { child, base, http, _dir: dir })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match key {
            Some(key) => request.header("x-api-key", key),
            None => request.bearer_auth(ADMIN),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A tenant with a connected device and `plugins` uploaded; returns (key, device id).
    async fn tenant(&self, phone: &str, plugins: &[&str]) -> anyhow::Result<(String, i64)> {
        let email = format!("storm{}@example.com", rand::random::<u32>());
        let t = self
            .call(
                reqwest::Method::POST,
                "/api/admin/tenants",
                None,
                Some(json!({"name": "Bench", "email": email, "package": "enterprise"})),
            )
            .await?;
        let key = t["api_key"].as_str().context("no key")?.to_string();
        let device = self
            .call(reqwest::Method::POST, "/api/user/devices", Some(&key), Some(json!({"phone": phone})))
            .await?;
        let id = device["id"].as_i64().context("no device id")?;
        self.call(reqwest::Method::GET, &format!("/api/user/devices/{id}/qr"), Some(&key), None).await?;
        self.call(reqwest::Method::POST, "/api/admin/simulator/scan", None, Some(json!({"device": id})))
            .await?;
        loop {
            let d =
                self.call(reqwest::Method::GET, &format!("/api/user/devices/{id}"), Some(&key), None).await?;
            if d["status"] == "connected" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (i, name) in plugins.iter().enumerate() {
            let path = format!("{}/target/plugins/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
            let wasm = std::fs::read(&path).with_context(|| format!("{path}: run plugins/build.sh first"))?;
            let response = self
                .http
                .post(format!("{}/api/user/plugins?name={name}-{i}", self.base))
                .header("x-api-key", &key)
                .header("content-type", "application/wasm")
                .body(wasm)
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("upload {name}: {}", response.text().await?);
            }
        }
        Ok((key, id))
    }

    async fn inbound(&self, device: i64, from: &str, text: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/api/admin/simulator/inbound",
            None,
            Some(json!({"device": device, "from": from, "text": text})),
        )
        .await
        .map(|_| ())
    }

    async fn outbox_has(&self, device: i64, text: &str) -> anyhow::Result<bool> {
        let outbox = self
            .call(reqwest::Method::GET, &format!("/api/admin/simulator/outbox?device={device}"), None, None)
            .await?;
        Ok(outbox["data"].as_array().is_some_and(|a| a.iter().any(|m| m["text"] == text)))
    }
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The victim's reply latencies (message in → echo in the outbox), one message at a time.
async fn victim_round(gw: &Gateway, device: i64, n: usize, phase: &str) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let text = format!("{phase} {i}");
        let started = Instant::now();
        gw.inbound(device, &format!("628133{:06}", i), &text).await?;
        let expected = format!("echo: {text}");
        while !gw.outbox_has(device, &expected).await? {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("no echo for `{text}` within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        out.push(started.elapsed());
    }
    Ok(out)
}

/// `/healthz` every 5 ms until `stop`.
fn health_sampler(gw: Arc<Gateway>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if gw.http.get(format!("{}/healthz", gw.base)).send().await.is_ok() {
                samples.push(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples
    })
}

/// Rounds of 40 messages, 8 at a time, one round every [`ROUND`], into the storm tenant's
/// device until `stop`: each message asks for six 50 ms plugin runs, so the storm asks for
/// about four CPUs' worth of plugin time.
fn storm(
    gw: Arc<Gateway>,
    device: i64,
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<usize>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let round = Instant::now();
            for _ in 0..5 {
                let batch: Vec<_> = (0..8)
                    .map(|_| {
                        n += 1;
                        let (gw, from) = (gw.clone(), format!("628144{:06}", n % 1_000_000));
                        async move { gw.inbound(device, &from, "storm").await }
                    })
                    .collect();
                let _ = futures::future::join_all(batch).await;
                *sent.lock().unwrap() += 8;
            }
            tokio::time::sleep(ROUND.saturating_sub(round.elapsed())).await;
        }
    })
}

struct Phase {
    victim: Vec<Duration>,
    health: Vec<Duration>,
}

async fn phase(
    gw: &Arc<Gateway>,
    victim: i64,
    storm_device: Option<i64>,
    n: usize,
    name: &str,
) -> anyhow::Result<(Phase, usize)> {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(0));
    let health = health_sampler(gw.clone(), stop.clone());
    let storm = storm_device.map(|d| storm(gw.clone(), d, stop.clone(), sent.clone()));
    if storm.is_some() {
        // Let the storm fill the queues first.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let result = victim_round(gw, victim, n, name).await;
    stop.store(true, Ordering::Relaxed);
    let health = health.await?;
    if let Some(s) = storm {
        s.await?;
    }
    let sent = *sent.lock().unwrap();
    Ok((Phase { victim: result?, health }, sent))
}

fn report(name: &str, p: &mut Phase) {
    let (v50, v90, vmax) =
        (percentile(&mut p.victim, 0.5), percentile(&mut p.victim, 0.9), percentile(&mut p.victim, 1.0));
    let (h50, h99) = (percentile(&mut p.health, 0.5), percentile(&mut p.health, 0.99));
    println!(
        "  {name:<7} victim echo p50 {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms   /healthz p50 {:>5.1} ms  p99 {:>6.1} ms  (n = {})",
        ms(v50),
        ms(v90),
        ms(vmax),
        ms(h50),
        ms(h99),
        p.health.len()
    );
}

async fn run() -> anyhow::Result<()> {
    let n: usize = std::env::var("STORM_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("plugin storm: {cpus} CPUs, {profile} wa-gateway, SQLite, {n} victim messages per phase");
    let defaults = wa_gateway::Config::from_toml("")?.plugins;
    let (cap, lower) = (defaults.runs_per_tenant(), defaults.lower_priority_after_ms);
    if !wa_gateway::plugins::runtime::can_lower_priority() {
        println!("(this process may not restore a thread's priority: runs are never lowered)");
    }
    for (label, concurrency, lower) in
        [("defaults", cap, lower), ("runs never lowered", cap, 0), ("uncapped, never lowered", 64, 0)]
    {
        println!("tenant_concurrency = {concurrency}, lower_priority_after_ms = {lower} ({label})");
        let gw = Arc::new(Gateway::start(concurrency, lower)?);
        let (_, victim) = gw.tenant(VICTIM_DEVICE, &["echo"]).await?;
        let (_, storm_device) = gw.tenant(STORM_DEVICE, &["spin-forever"; 6]).await?;
        // Warm up: the plugin caches, the database.
        victim_round(&gw, victim, 5, "warm").await?;
        let (mut quiet, _) = phase(&gw, victim, None, n, "quiet").await?;
        let started = Instant::now();
        let (mut loud, sent) = phase(&gw, victim, Some(storm_device), n, "storm").await?;
        report("quiet", &mut quiet);
        report("storm", &mut loud);
        let ratio = ms(percentile(&mut loud.victim, 0.5)) / ms(percentile(&mut quiet.victim, 0.5)).max(0.001);
        let h99 = ms(percentile(&mut loud.health, 0.99));
        println!(
            "  storm: {sent} messages in {:.1} s; victim p50 {ratio:.2}x quiet (goal <= 2x), /healthz p99 {h99:.1} ms (goal < 20 ms): {}",
            started.elapsed().as_secs_f64(),
            if ratio <= 2.0 && h99 < 20.0 { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?.block_on(run())
}
