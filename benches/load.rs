//! The load benchmark (issue 18): the release gateway next to a minimal axum server, driven by
//! the same load generator on the same machine, so the gateway's numbers can be read against
//! the hardware's ceiling measured in the same run.
//!
//! ```text
//! plugins/build.sh echo      # once: the echo plugin the pipeline runs
//! cargo bench --bench load   # SQLite; PostgreSQL too when GATEWAY_TEST_POSTGRES_URL is set
//! LOAD_QUICK=1 cargo bench --bench load   # every part for about a second, to check it works
//! ```
//!
//! Per database it starts `wa-gateway serve` (the release binary cargo builds for the bench;
//! simulator driver, a fresh SQLite file or PostgreSQL database, log level `warn`, send pacing
//! 0) and the ceiling (this binary again in a child process: axum, `GET /hello` and a JSON
//! echo), and measures:
//!
//! - HTTP paths, each a closed loop of `LOAD_CONNECTIONS` keep-alive HTTP/1.1 connections for
//!   `LOAD_WARMUP_MS` unmeasured then `LOAD_DURATION_MS` measured: the ceiling's hello and
//!   JSON echo, `GET /healthz`, `GET /api/user/info`, `GET /api/user/chat-history?limit=50`
//!   (over `LOAD_HISTORY` stored messages), `POST /api/send-message` with `"async": true`
//!   (the queue it leaves is drained before the next path) and synchronous. Requests per
//!   second, p50/p99 latency, non-2xx answers and failed connections / timeouts
//!   (`LOAD_TIMEOUT_MS`), the server's CPU per request (`/proc/<pid>/stat` utime + stime
//!   over the window, divided by the requests; on PostgreSQL also the CPU of the backends
//!   serving the gateway's database), the benchmark's own CPU per request, and the rate as a
//!   share of the ceiling (hello for GETs, JSON echo for POSTs). The generator runs on one
//!   thread, like `wrk -t1`.
//! - The inbound pipeline: 100 keyword rules, the echo plugin, one notify webhook endpoint on
//!   a local receiver; messages injected through the simulator's admin API, over 1 device and
//!   over 10. First saturated (`LOAD_INBOUND_CONCURRENCY` requests in flight, accepted
//!   messages waiting for their reply bounded), then paced at half the saturated rate. Replies
//!   per second, end-to-end latency (accepted → reply in the simulator's outbox), and the
//!   CPU over the measured window per reply in it.
//! - Memory: `VmRSS` of the gateway idle after start, and of a fresh gateway before and after
//!   pairing `LOAD_DEVICES` simulated devices (stated per 1,000 devices).
//!
//! Knobs (environment): `LOAD_QUICK=1`, `LOAD_CONNECTIONS` (32), `LOAD_WARMUP_MS` (1000),
//! `LOAD_DURATION_MS` (5000), `LOAD_TIMEOUT_MS` (2000), `LOAD_INBOUND_CONCURRENCY` (16),
//! `LOAD_CONTACTS` (100), `LOAD_HISTORY` (1000), `LOAD_DEVICES` (1000), `LOAD_DRAIN_S` (60),
//! `LOAD_PARTS` (`http,inbound,memory`), `LOAD_LOG` (the gateway's log level, `warn`).

#[path = "load/api.rs"]
mod api;
#[path = "load/client.rs"]
mod client;
#[path = "load/inbound.rs"]
mod inbound;
#[path = "load/procs.rs"]
mod procs;
#[path = "load/report.rs"]
mod report;

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;

use api::Api;
use client::Window;
use inbound::{Knobs, Mode};
use procs::Server;
use report::{duration, latency, mib, micros, thousands, Row};

/// What to run and for how long.
#[derive(Debug, Clone)]
struct Settings {
    window: Window,
    connections: usize,
    timeout: Duration,
    inbound_concurrency: usize,
    contacts: u64,
    history: u64,
    devices: usize,
    drain_limit: Duration,
    parts: Vec<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value"))
        }
        _ => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("LOAD_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let (warmup, duration, history, devices) =
            if quick { (200, 1000, 200, 100) } else { (1000, 5000, 1000, 1000) };
        Settings {
            window: Window {
                warmup: Duration::from_millis(env_or("LOAD_WARMUP_MS", warmup)),
                duration: Duration::from_millis(env_or("LOAD_DURATION_MS", duration)),
            },
            connections: env_or("LOAD_CONNECTIONS", 32),
            timeout: Duration::from_millis(env_or("LOAD_TIMEOUT_MS", 2000)),
            inbound_concurrency: env_or("LOAD_INBOUND_CONCURRENCY", 16),
            contacts: env_or("LOAD_CONTACTS", 100),
            history: env_or("LOAD_HISTORY", history),
            devices: env_or("LOAD_DEVICES", devices),
            drain_limit: Duration::from_secs(env_or("LOAD_DRAIN_S", 60)),
            parts: env_or("LOAD_PARTS", "http,inbound,memory".to_string())
                .split(',')
                .map(|p| p.trim().to_string())
                .collect(),
        }
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if std::env::var_os(procs::CEILING_CHILD).is_some() {
        return runtime.block_on(procs::serve_ceiling());
    }
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let settings = Settings::from_env();
    if settings.runs("inbound") {
        api::check_echo_plugin()?;
    }
    let started = Instant::now();
    let machine = common::machine();
    let load_before = loadavg();
    println!("load benchmark on {machine}; load average before: {load_before}");
    println!("{settings:?}");
    let mut rows = Vec::new();

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("gateway.db").display());
    rows.extend(
        database("SQLite", &url, dir, &settings, || async {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite:{}", dir.path().join("gateway.db").display());
            Ok((url, dir, None))
        })
        .await?,
    );

    if let Some(server) = postgres::server_url() {
        let db = postgres::PgTestDatabase::create(&server).await;
        rows.extend(
            database("PostgreSQL", db.url(), tempfile::tempdir()?, &settings, || async {
                let db = postgres::PgTestDatabase::create(&server).await;
                Ok((db.url().to_string(), tempfile::tempdir()?, Some(db)))
            })
            .await?,
        );
    }

    println!();
    println!(
        "wa-gateway load benchmark: {machine}; {} connections, {:.1} s warm-up + {:.1} s measured per path; \
         load average before {load_before}, after {}; took {:.0} s",
        settings.connections,
        settings.window.warmup.as_secs_f64(),
        settings.window.duration.as_secs_f64(),
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    println!();
    report::print(&rows);
    Ok(())
}

/// The first three numbers of `/proc/loadavg` (other work on the machine skews everything).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Everything measured on one database: `url` (kept in `dir`) for the main gateway, and a
/// fresh database from `fresh` for the memory run.
async fn database<F, Fut>(
    name: &str,
    url: &str,
    dir: tempfile::TempDir,
    settings: &Settings,
    fresh: F,
) -> Result<Vec<Row>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(String, tempfile::TempDir, Option<postgres::PgTestDatabase>)>>,
{
    println!("== {name}");
    let mut rows = Vec::new();
    if settings.runs("http") || settings.runs("inbound") {
        let ceiling = procs::start_ceiling().await?;
        let gateway = procs::start_gateway(url, dir).await?;
        let probe = gateway.probe();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cpu0 = probe.sample();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_cpu = (probe.sample() - cpu0).per(2.0);
        let idle = procs::rss_bytes(gateway.pid());
        println!("  gateway pid {} idle RSS {}", gateway.pid(), mib(idle));
        let mut idle_row = Row::new(name, "gateway RSS, idle after start");
        idle_row.rate = mib(idle);
        idle_row.server_cpu = format!("{}/s", report::server_cpu(idle_cpu, probe.has_database()));
        idle_row.note = "VmRSS 2.5 s after it listens; CPU: used per second while idle (2 s)".into();
        rows.push(idle_row);

        let api = Api::tenant(&gateway.base).await?;
        let sender = api.pair_device("6281300000001").await?;
        if settings.runs("http") {
            rows.extend(http_paths(name, settings, &api, &gateway, &ceiling, sender).await?);
        }
        if settings.runs("inbound") {
            rows.extend(pipeline(name, settings, &api, &gateway).await?);
        }
        let (warnings, last) = gateway.warnings();
        if warnings > 0 {
            println!(
                "  the gateway logged {warnings} lines on stderr; the last: {}",
                last.unwrap_or_default()
            );
        }
        gateway.stop().await;
        ceiling.stop().await;
    }
    if settings.runs("memory") {
        let (url, dir, db) = fresh().await?;
        rows.extend(memory(name, settings, &url, dir).await?);
        drop(db);
    }
    Ok(rows)
}

/// The ceiling's two paths and the gateway's five.
async fn http_paths(
    name: &str,
    s: &Settings,
    api: &Api,
    gateway: &Server,
    ceiling: &Server,
    sender: i64,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let load = |server: &Server, request: Vec<u8>| {
        client::closed_loop(server.addr, s.connections, request, s.window, s.timeout, server.probe())
    };
    let pg = gateway.probe().has_database();
    let send_body = |asynchronous: bool| {
        format!(
            r#"{{"device":{sender},"to":"6281299990001","text":"Halo, pesanan Anda sudah kami terima.","async":{asynchronous}}}"#
        )
    };
    let key = api.key.clone();
    let auth = [("x-api-key", key.as_str())];

    let hello = load(ceiling, client::request("GET", ceiling.addr, "/hello", &[], None)).await;
    println!("  ceiling hello: {:.0} req/s", hello.rate());
    rows.push(Row::http(name, "ceiling: axum hello (GET)", &hello, None, false));
    let echo =
        load(ceiling, client::request("POST", ceiling.addr, "/echo", &[], Some(&send_body(true)))).await;
    println!("  ceiling JSON echo: {:.0} req/s", echo.rate());
    rows.push(Row::http(name, "ceiling: axum JSON echo (POST)", &echo, None, false));

    // History for the list to read: inbound messages stored on the sending device.
    let (rate, intake, failed, cpu) =
        inbound::seed(gateway, sender, s.history, s.inbound_concurrency, s.timeout).await?;
    println!("  stored {} inbound messages at {rate:.0}/s", s.history);
    rows.push(Row {
        rate: format!("{} msg/s", thousands(rate)),
        p50: latency(&intake, 0.50),
        p99: latency(&intake, 0.99),
        failures: format!("{} / {}", failed.0, failed.1),
        server_cpu: report::server_cpu(cpu, pg),
        client_cpu: micros(cpu.bench),
        note: format!(
            "{} messages, {} in flight, no rules/plugins/webhooks: intake only (request → stored and acknowledged)",
            s.history, s.inbound_concurrency
        ),
        ..Row::new(name, "inbound via admin simulator API, store only, 1 device")
    });

    let gets = [
        ("GET /healthz", client::request("GET", gateway.addr, "/healthz", &[], None)),
        ("GET /api/user/info", client::request("GET", gateway.addr, "/api/user/info", &auth, None)),
        (
            "GET /api/user/chat-history?limit=50",
            client::request("GET", gateway.addr, "/api/user/chat-history?limit=50", &auth, None),
        ),
    ];
    for (path, request) in gets {
        let m = load(gateway, request).await;
        println!("  {path}: {:.0} req/s", m.rate());
        let mut row = Row::http(name, path, &m, Some(hello.rate()), pg);
        if path.contains("chat-history") {
            row.note = format!("{} stored messages", s.history);
        }
        rows.push(row);
    }

    for (path, asynchronous) in
        [("POST /api/send-message, async", true), ("POST /api/send-message, sync (pacing 0)", false)]
    {
        let request =
            client::request("POST", gateway.addr, "/api/send-message", &auth, Some(&send_body(asynchronous)));
        let m = load(gateway, request).await;
        println!("  {path}: {:.0} req/s", m.rate());
        let mut row = Row::http(name, path, &m, Some(echo.rate()), pg);
        // What the load left queued goes out before the next path starts.
        let queued = api.queued().await?;
        let drained = api.wait_drained(s.drain_limit).await?;
        row.note = match (queued, drained) {
            (0, _) => "nothing left queued".into(),
            (q, Some(took)) => format!(
                "{q} left queued, sent in {:.1} s ({}/s)",
                took.as_secs_f64(),
                thousands(q as f64 / took.as_secs_f64().max(0.001))
            ),
            (q, None) => format!("{q} left queued, not sent within {} s", s.drain_limit.as_secs()),
        };
        println!("    {}", row.note);
        rows.push(row);
    }
    Ok(rows)
}

/// The inbound pipeline over 1 and over 10 devices, saturated then at half that rate.
async fn pipeline(name: &str, s: &Settings, api: &Api, gateway: &Server) -> Result<Vec<Row>> {
    let (receiver, webhooks) = common::receiver().await?;
    let one = vec![api.pair_device("6281300000002").await?];
    let mut ten = Vec::new();
    for i in 0..10 {
        ten.push(api.pair_device(&format!("62813000001{i:02}")).await?);
    }
    inbound::configure_pipeline(api, receiver).await?;
    let knobs = Knobs {
        window: s.window,
        timeout: s.timeout,
        contacts: s.contacts,
        backlog: 64,
        drain_limit: s.drain_limit,
    };
    let mut rows = Vec::new();
    let pg = gateway.probe().has_database();
    for (label, devices) in [("1 device", &one), ("10 devices", &ten)] {
        let tag = format!("sat{}", devices.len());
        let injectors = s.inbound_concurrency;
        let sat =
            inbound::run(api, gateway, &webhooks, devices, &tag, Mode::Saturate { injectors }, knobs).await?;
        println!("  inbound {label}, saturated: {:.0} msg/s", sat.rate);
        rows.push(pipeline_row(
            name,
            &format!("inbound pipeline, {label}, saturated"),
            &sat,
            &format!(
                "{injectors} requests in flight, at most max({}, 0.5 s × rate) messages waiting for their reply",
                knobs.backlog
            ),
            pg,
        ));
        let rate = (sat.rate / 2.0).max(1.0);
        let tag = format!("half{}", devices.len());
        let half = inbound::run(api, gateway, &webhooks, devices, &tag, Mode::Paced { rate }, knobs).await?;
        println!("  inbound {label}, paced at {rate:.0}/s: {:.0} msg/s", half.rate);
        rows.push(pipeline_row(
            name,
            &format!("inbound pipeline, {label}, at half that rate"),
            &half,
            &format!("offered {rate:.0} msg/s"),
            pg,
        ));
    }
    Ok(rows)
}

fn pipeline_row(name: &str, path: &str, o: &inbound::Outcomes, how: &str, pg: bool) -> Row {
    let mut note = format!(
        "{how}; intake p50 {} p99 {}; {} accepted, {} webhook deliveries; replies and deliveries done {} after the window",
        latency(&o.intake, 0.50),
        latency(&o.intake, 0.99),
        o.accepted,
        o.webhooks,
        duration(o.drain),
    );
    if o.missing > 0 {
        note.push_str(&format!("; {} NEVER REPLIED", o.missing));
    }
    if o.dropped > 0 {
        note.push_str(&format!("; {} not offered (generator behind)", o.dropped));
    }
    Row {
        rate: format!("{} msg/s", thousands(o.rate)),
        p50: latency(&o.e2e, 0.50),
        p99: latency(&o.e2e, 0.99),
        failures: format!("{} / {}", o.errors, o.timeouts),
        server_cpu: report::server_cpu(o.cpu_per_msg, pg),
        client_cpu: micros(o.cpu_per_msg.bench),
        note,
        ..Row::new(name, path)
    }
}

/// RSS of a fresh gateway before and after pairing `s.devices` simulated devices.
async fn memory(name: &str, s: &Settings, url: &str, dir: tempfile::TempDir) -> Result<Vec<Row>> {
    let gateway = procs::start_gateway(url, dir).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = procs::rss_bytes(gateway.pid());
    let api = Api::tenant(&gateway.base).await?;
    let started = Instant::now();
    let n = s.devices;
    let results: Vec<Result<i64>> = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let id = api.add_device(&format!("628140{:07}", i + 1)).await?;
                api.scan(id).await?;
                Ok(id)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r.context("pairing a device")?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut connected = api.connected_devices().await?;
    while connected < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        connected = api.connected_devices().await?;
    }
    let paired_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = procs::rss_bytes(gateway.pid());
    let per_thousand = (loaded.saturating_sub(idle)) as f64 * 1000.0 / n.max(1) as f64;
    println!("  RSS idle {} → {} with {connected} devices connected", mib(idle), mib(loaded));
    let mut row = Row::new(name, &format!("gateway RSS, {n} simulated devices connected"));
    row.rate = mib(loaded);
    row.note = format!(
        "fresh gateway: {} before pairing, +{} per 1,000 devices; {connected}/{n} connected, paired in {:.1} s ({:.0}/s)",
        mib(idle),
        mib(per_thousand as u64),
        paired_in.as_secs_f64(),
        n as f64 / paired_in.as_secs_f64()
    );
    gateway.stop().await;
    Ok(vec![row])
}
