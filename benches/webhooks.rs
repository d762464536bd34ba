//! The webhook benchmark: signed deliveries per second from the real delivery worker to a
//! local HTTP receiver.
//!
//! `cargo bench --bench webhooks` builds a gateway over a fresh SQLite file (simulator driver,
//! private targets allowed), creates a tenant with endpoints pointing at a receiver on
//! 127.0.0.1 that answers `200` at once, queues N deliveries per scenario while the gateway is
//! stopped, then starts it and times the worker draining the queue: claim with a lease, sign
//! (HMAC-SHA256 over id, timestamp and body), POST, read the answer, record the attempt, its
//! log row and the endpoint's health. It prints deliveries per second with the machine. With
//! `GATEWAY_TEST_POSTGRES_URL` set it runs the same on a fresh PostgreSQL database too. It also
//! prints the cost of signing alone.
//!
//! Knobs: `WEBHOOK_BENCH_DELIVERIES` (default 3,000 per scenario).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wa_gateway::config::DriverKind;
use wa_gateway::db::webhooks::{EndpointSettings, NewDelivery};
use wa_gateway::tenants::CreateTenant;
use wa_gateway::webhooks::events::{self, DeviceStatusData, EventType};
use wa_gateway::webhooks::signing::{self, Secret};
use wa_gateway::{App, Config};

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

struct Scenario {
    name: &'static str,
    endpoints: usize,
    max_in_flight: u32,
    concurrency: u32,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "1 endpoint, max_in_flight 4 (default)",
        endpoints: 1,
        max_in_flight: 4,
        concurrency: 64,
    },
    Scenario { name: "1 endpoint, max_in_flight 32", endpoints: 1, max_in_flight: 32, concurrency: 64 },
    Scenario { name: "8 endpoints, max_in_flight 4 each", endpoints: 8, max_in_flight: 4, concurrency: 64 },
];

/// Queues `n` deliveries spread over the endpoints, runs the gateway and times the drain.
/// Returns deliveries per second.
async fn scenario(
    url: &str,
    s: &Scenario,
    n: usize,
    target: SocketAddr,
    count: &AtomicU64,
) -> anyhow::Result<f64> {
    let mut config = Config::from_toml("")?;
    config.server.bind = "127.0.0.1:0".parse()?;
    config.admin.token = "bench-admin-token".into();
    config.whatsapp.driver = DriverKind::Simulator;
    config.database.url = url.to_string();
    config.webhooks.allow_private_targets = true;
    config.webhooks.max_in_flight = s.max_in_flight;
    config.webhooks.concurrency = s.concurrency;
    let app = App::build(config).await?;
    let state = app.state().clone();
    let (tenant, _) = state
        .tenants
        .create(CreateTenant {
            name: "Bench".into(),
            email: format!("bench{}@example.com", rand::random::<u32>()),
            package: Some("enterprise".into()),
            password: None,
        })
        .await?;
    let mut endpoints = Vec::new();
    for i in 0..s.endpoints {
        let settings = EndpointSettings {
            url: format!("http://{target}/hook/{i}"),
            description: String::new(),
            events: "[\"device.status\"]".into(),
            mode: "notify".into(),
            device_id: None,
            transform_plugin_id: None,
            enabled: true,
        };
        let (_, sealed) = state.webhooks.new_secret(tenant.id);
        match state.db.create_webhook(tenant.id, &settings, &sealed, None).await? {
            Some(row) => endpoints.push(row.id),
            None => anyhow::bail!("over the endpoint limit"),
        }
    }
    let data = DeviceStatusData {
        device_id: 1,
        device: "6281381830651".into(),
        status: "connected".into(),
        detail: None,
    };
    let payload = events::body(EventType::DeviceStatus, wa_gateway::db::now_ms(), &data);
    let queued = Instant::now();
    let list: Vec<NewDelivery> = (0..n)
        .map(|i| NewDelivery {
            user_id: tenant.id,
            endpoint_id: endpoints[i % endpoints.len()],
            webhook_id: signing::new_message_id(),
            event: "device.status".into(),
            message_id: None,
            device_id: None,
            payload: payload.clone(),
            max_attempts: 8,
            due: wa_gateway::db::now_ms(),
        })
        .collect();
    for chunk in list.chunks(500) {
        state.db.enqueue_deliveries(chunk).await?;
    }
    let enqueue = queued.elapsed();

    let before = count.load(Ordering::Relaxed);
    let shutdown = app.shutdown_token();
    let started = Instant::now();
    let run = tokio::spawn(app.run());
    while count.load(Ordering::Relaxed) - before < n as u64 {
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("the queue did not drain in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = started.elapsed();
    // Let the last attempts be recorded, then check every delivery was.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (logs, _) = state.db.list_webhook_logs(tenant.id, None, &Default::default(), 1, 0).await?;
    shutdown.cancel();
    let _ = run.await;
    let rate = n as f64 / took.as_secs_f64();
    println!(
        "  {:<40} {n} deliveries in {:>7.2} s = {:>7.0} deliveries/s (queued in {:.2} s; last log row: {})",
        s.name,
        took.as_secs_f64(),
        rate,
        enqueue.as_secs_f64(),
        logs.first().map(|l| l.outcome.as_str()).unwrap_or("none"),
    );
    Ok(rate)
}

fn signing_cost() {
    let secret = Secret::generate();
    for size in [1024usize, 20 * 1024] {
        let body = "x".repeat(size);
        let n = 20_000;
        let t = Instant::now();
        for i in 0..n {
            std::hint::black_box(signing::signature_header(
                std::slice::from_ref(&secret),
                "msg_01",
                i,
                body.as_bytes(),
            ));
        }
        println!(
            "  signing alone, {:>5} B body: {:.2} µs per signature",
            size,
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}

async fn run() -> anyhow::Result<()> {
    let n: usize =
        std::env::var("WEBHOOK_BENCH_DELIVERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    println!("webhook delivery benchmark on {}", common::machine());
    signing_cost();
    let (target, count) = common::receiver().await?;
    let dir = tempfile::tempdir()?;
    println!("SQLite:");
    for (i, s) in SCENARIOS.iter().enumerate() {
        let url = format!("sqlite:{}", dir.path().join(format!("bench{i}.db")).display());
        scenario(&url, s, n, target, &count).await?;
    }
    if let Some(server) = postgres::server_url() {
        println!("PostgreSQL:");
        for s in SCENARIOS {
            let db = postgres::PgTestDatabase::create(&server).await;
            scenario(db.url(), s, n, target, &count).await?;
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}
