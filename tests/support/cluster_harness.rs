//! Three real `wa-gateway serve` processes on one PostgreSQL database, sharing one simulated
//! WhatsApp network served by this process over TCP (`[whatsapp] simulator_network`). While
//! sends arrive through all three APIs, contacts write to every device and scheduled messages
//! fall due, the harness kills the holder of devices with SIGKILL, freezes one with SIGSTOP
//! (then SIGCONT), restarts the killed one and stops one with SIGTERM. Then it checks what a
//! tenant and WhatsApp would see:
//!
//! - every send the API accepted went out, and under exactly one WhatsApp id (an in-flight
//!   message re-sent after a takeover keeps its id, which WhatsApp deduplicates);
//! - every scheduled message went out once;
//! - every inbound message the gateway acknowledged is stored, once;
//! - the network never saw a second connection for a device while one was open;
//! - every device is connected again at the end.
//!
//! It reports how long the devices were offline after each disruption and what the processes
//! counted (fenced writes, re-sends after a takeover). Shared through `#[path]` by the test
//! that runs the short plan in CI and by the `cluster` benchmark that runs the long one.

// The test runs the short plan, the benchmark the long one.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use wa_gateway::db::{ConnectOptions, Db};
use wa_gateway::devices::simulator::remote;
use wa_gateway::devices::simulator::{SimInbound, SimTiming, Simulator};

const ADMIN: &str = "cluster-harness-admin-token-0123456789";
/// A process is dead 4 s after its last renewal; it renews every 0.5 s and stops its
/// sessions 2.5 s after its last good renewal began.
const NODE_TTL_MS: u64 = 4_000;
const CONTACT: &str = "6285700000001";
/// How long the harness waits for the cluster to settle before it gives up.
const SETTLE: Duration = Duration::from_secs(120);

/// How much traffic and how many rounds of disruptions.
#[derive(Debug, Clone)]
pub struct Plan {
    pub devices: usize,
    pub schedules: usize,
    /// Sends per second through the APIs (round robin over the processes).
    pub sends_per_second: u32,
    /// Inbound messages per second from contacts.
    pub inbound_per_second: u32,
    /// Rounds of kill -9, SIGSTOP, restart, graceful stop.
    pub rounds: u32,
}

impl Plan {
    /// What CI runs: every disruption once.
    pub fn short() -> Plan {
        Plan { devices: 30, schedules: 300, sends_per_second: 20, inbound_per_second: 10, rounds: 1 }
    }

    /// The documented benchmark.
    pub fn long() -> Plan {
        Plan { devices: 30, schedules: 300, sends_per_second: 50, inbound_per_second: 25, rounds: 3 }
    }
}

/// What the run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub plan: Option<Plan>,
    /// Per disruption: its kind and how long until every device it took offline was
    /// connected through another process.
    pub takeovers: Vec<(&'static str, Duration)>,
    pub sends_accepted: usize,
    /// Sends whose answer never came (the process froze or died mid-request): each went out
    /// at most once.
    pub sends_in_doubt: usize,
    pub scheduled: usize,
    pub inbound_acked: usize,
    /// Copies of a message the network saw again under the same id.
    pub resent_same_id: usize,
    pub fenced_writes: u64,
    pub resent_after_takeover: u64,
    pub sessions_opened: u64,
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(plan) = &self.plan {
            writeln!(f, "plan: {plan:?}")?;
        }
        writeln!(f, "| disruption | devices back online after |")?;
        writeln!(f, "| --- | --- |")?;
        for (kind, took) in &self.takeovers {
            writeln!(f, "| {kind} | {:.2} s |", took.as_secs_f64())?;
        }
        writeln!(
            f,
            "sends accepted {} (in doubt {}), scheduled {}, inbound stored {}, sessions opened {}",
            self.sends_accepted,
            self.sends_in_doubt,
            self.scheduled,
            self.inbound_acked,
            self.sessions_opened
        )?;
        writeln!(
            f,
            "fenced writes {}, re-sent after a takeover {} (copies seen again under the same id: {}), \
             run took {:.1} s",
            self.fenced_writes,
            self.resent_after_takeover,
            self.resent_same_id,
            self.elapsed.as_secs_f64()
        )
    }
}

/// One `wa-gateway serve` child process.
pub struct Gateway {
    name: &'static str,
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(name: &'static str, database: &str, network: &str) -> Result<Gateway> {
        Ok(Gateway::launch(name, database, Some(network), Some(ADMIN)).await?.0)
    }

    /// Starts `wa-gateway serve` on `database` (with the shared `network`, or a simulator of
    /// its own) and waits until it listens; with no `admin` token it makes one on a first
    /// start, which is answered too.
    pub async fn launch(
        name: &'static str,
        database: &str,
        network: Option<&str>,
        admin: Option<&str>,
    ) -> Result<(Gateway, Option<String>)> {
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_wa-gateway"))
            .arg("serve")
            .current_dir(dir.path())
            .env("GATEWAY_SERVER__BIND", "127.0.0.1:0")
            .env("GATEWAY_DATABASE__URL", database)
            .env("GATEWAY_DATABASE__MAX_CONNECTIONS", "8")
            .env("GATEWAY_ADMIN__TOKEN", admin.unwrap_or(""))
            .env("GATEWAY_WHATSAPP__DRIVER", "simulator")
            .env("GATEWAY_WHATSAPP__SIMULATOR_NETWORK", network.unwrap_or(""))
            .env("GATEWAY_WHATSAPP__SEND_MIN_GAP_MS", "0")
            .env("GATEWAY_WHATSAPP__SEND_JITTER_MS", "0")
            .env("GATEWAY_WHATSAPP__RECONNECT_MIN_MS", "200")
            .env("GATEWAY_WHATSAPP__RECONNECT_MAX_MS", "2000")
            .env("GATEWAY_CLUSTER__NODE_NAME", name)
            .env("GATEWAY_CLUSTER__NODE_TTL_MS", NODE_TTL_MS.to_string())
            .env("GATEWAY_CLUSTER__RENEW_INTERVAL_MS", "500")
            .env("GATEWAY_CLUSTER__RENEW_DEADLINE_MS", "2500")
            .env("GATEWAY_CLUSTER__SCAN_INTERVAL_MS", "200")
            .env("GATEWAY_SCHEDULER__POLL_INTERVAL_MS", "200")
            .env("GATEWAY_SCHEDULER__CLAIM_LEASE", "5")
            .env("GATEWAY_LOG__LEVEL", std::env::var("HARNESS_LOG").unwrap_or_else(|_| "error".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the wa-gateway binary")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (base, token) = tokio::time::timeout(Duration::from_secs(60), async {
            let mut token = None;
            while let Some(line) = lines.next_line().await? {
                if let Some((_, t)) = line.split_once("Generated admin token (shown once, store it now): ") {
                    token = Some(t.trim().to_string());
                }
                if let Some(url) = line.strip_prefix("wa-gateway listening on ") {
                    return Ok((url.trim().to_string(), token));
                }
            }
            bail!("gateway {name} exited before listening")
        })
        .await
        .with_context(|| format!("gateway {name} did not start in time"))??;
        // Keep reading so the gateway never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok((Gateway { name, child, base, _dir: dir }, token))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn pid(&self) -> i32 {
        self.child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0)
    }

    fn signal(&self, signal: i32) -> Result<()> {
        let pid = self.pid();
        ensure!(pid > 0, "gateway {} has exited", self.name);
        // SAFETY: `kill` only sends a signal to our own child process.
        let rc = unsafe { libc::kill(pid, signal) };
        ensure!(rc == 0, "cannot signal gateway {}: {}", self.name, std::io::Error::last_os_error());
        Ok(())
    }
}

/// The HTTP side: one client, the tenant's key, the processes' addresses.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    key: Arc<Mutex<String>>,
}

impl Api {
    async fn call(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self.http.request(method, format!("{base}{path}"));
        request = if path.starts_with("/api/admin") {
            request.bearer_auth(ADMIN)
        } else {
            request.header("x-api-key", self.key.lock().unwrap().clone())
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn expect(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        want: StatusCode,
    ) -> Result<Value> {
        let (status, answer) = self.call(base, method.clone(), path, body).await?;
        ensure!(status == want, "{method} {path} answered {status}: {answer}");
        Ok(answer)
    }
}

/// What the load generators recorded.
#[derive(Default, Clone)]
struct Ledger {
    /// Text of each accepted send, with the gateway's message id.
    accepted: HashMap<String, i64>,
    in_doubt: HashSet<String>,
    /// WhatsApp ids of inbound messages the gateway acknowledged, by device.
    acked: HashMap<String, i64>,
    /// Inbound messages not acknowledged yet (the device was moving): sent again later, as
    /// WhatsApp redelivers.
    unacked: HashMap<String, (i64, String)>,
}

/// Waits until `check` answers `Some`, polling every 20 ms, for at most `limit`.
async fn until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the plan against a fresh, migrated PostgreSQL database at `database`.
pub async fn run(database: &str, plan: Plan) -> Result<Report> {
    let started = Instant::now();
    let db = Db::connect(&ConnectOptions {
        url: database.to_string(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
    })
    .await?;
    let sim = Simulator::new(db.clone(), SimTiming::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let network = listener.local_addr()?.to_string();
    let network_stop = CancellationToken::new();
    tokio::spawn(remote::serve(sim.clone(), listener, network_stop.clone()));
    let _stop_network = network_stop.clone().drop_guard();

    let names = ["a", "b", "c"];
    let mut gateways = Vec::new();
    for name in names {
        gateways.push(Some(Gateway::start(name, database, &network).await?));
    }
    let api = Api {
        http: reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?,
        key: Arc::default(),
    };
    let first = gateways[0].as_ref().map(|g| g.base.clone()).unwrap_or_default();
    let tenant = api
        .expect(
            &first,
            Method::POST,
            "/api/admin/tenants",
            Some(&json!({"name": "Harness", "email": "harness@example.com", "package": "enterprise"})),
            StatusCode::CREATED,
        )
        .await?;
    *api.key.lock().unwrap() = tenant["api_key"].as_str().context("an api key")?.to_string();

    // Devices, paired through whichever process the request lands on.
    let mut devices: Vec<(i64, String)> = Vec::new();
    for n in 0..plan.devices {
        let base = gateways[n % 3].as_ref().map(|g| g.base.clone()).unwrap_or_default();
        let phone = format!("6281300{:06}", n);
        let body = json!({"phone": phone, "name": format!("Device {n}")});
        let device =
            api.expect(&base, Method::POST, "/api/user/devices", Some(&body), StatusCode::CREATED).await?;
        let id = device["id"].as_i64().context("a device id")?;
        api.expect(&base, Method::GET, &format!("/api/user/devices/{id}/qr"), None, StatusCode::OK).await?;
        until(SETTLE, "a QR code to scan", || {
            let sim = sim.clone();
            async move { Ok(sim.scan(id).await.ok()) }
        })
        .await?;
        devices.push((id, phone));
    }
    all_connected(&sim, &devices).await?;

    // Scheduled messages falling due over the whole run.
    let schedules_from = tokio::time::Instant::now();
    let due_from = Utc::now();
    let spread_ms = 20_000 * i64::from(plan.rounds) + 10_000;
    for n in 0..plan.schedules {
        let (_, phone) = &devices[n % devices.len()];
        let due =
            due_from + chrono::Duration::milliseconds(3_000 + spread_ms * n as i64 / plan.schedules as i64);
        let body = json!({
            "device": phone, "to": CONTACT, "text": format!("schedule-{n}"),
            "send_at": due.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        let base = gateways[n % 3].as_ref().map(|g| g.base.clone()).unwrap_or_default();
        api.expect(&base, Method::POST, "/api/user/scheduled-messages", Some(&body), StatusCode::CREATED)
            .await?;
    }

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let bases: Arc<Mutex<Vec<Option<String>>>> =
        Arc::new(Mutex::new(gateways.iter().map(|g| g.as_ref().map(|g| g.base.clone())).collect()));
    let load_stop = CancellationToken::new();
    let senders = tokio::spawn(send_load(
        api.clone(),
        bases.clone(),
        devices.clone(),
        plan.clone(),
        ledger.clone(),
        load_stop.clone(),
    ));
    let contacts = tokio::spawn(inbound_load(
        sim.clone(),
        devices.clone(),
        plan.clone(),
        ledger.clone(),
        load_stop.clone(),
    ));

    let mut report = Report { plan: Some(plan.clone()), ..Report::default() };
    let mut stats = Stats::default();
    let quiet = Duration::from_secs(2);
    for _ in 0..plan.rounds {
        // kill -9 the process holding the most devices.
        tokio::time::sleep(quiet).await;
        let victim = busiest(&db, &api, &gateways, &devices).await?;
        let held = held_by(&db, &api, gateways[victim].as_ref().context("live")?, &devices).await?;
        stats.add(&api, gateways[victim].as_ref().context("live")?).await;
        bases.lock().unwrap()[victim] = None;
        let mut killed = gateways[victim].take().context("live")?;
        let before = opened(&sim, &held);
        let t0 = Instant::now();
        killed.child.start_kill()?;
        killed.child.wait().await?;
        back_online(&sim, &before, "kill -9").await?;
        report.takeovers.push(("kill -9", t0.elapsed()));

        // Restart it under the same name; it takes its share back gradually.
        let name = killed.name;
        drop(killed);
        let restarted = Gateway::start(name, database, &network).await?;
        bases.lock().unwrap()[victim] = Some(restarted.base.clone());
        gateways[victim] = Some(restarted);
        tokio::time::sleep(quiet).await;

        // Freeze the busiest one past its lease, then let it run again.
        let frozen = busiest(&db, &api, &gateways, &devices).await?;
        let gateway = gateways[frozen].as_ref().context("live")?;
        let held = held_by(&db, &api, gateway, &devices).await?;
        let node = node_id(&api, gateway).await?;
        let t0 = Instant::now();
        gateway.signal(libc::SIGSTOP)?;
        let offline = back_online_elsewhere(&sim, &db, &held, &node).await;
        gateway.signal(libc::SIGCONT)?;
        offline?;
        report.takeovers.push(("SIGSTOP", t0.elapsed()));
        tokio::time::sleep(quiet).await;

        // Stop the busiest one gracefully: its devices move at once.
        let leaving = busiest(&db, &api, &gateways, &devices).await?;
        let gateway = gateways[leaving].as_ref().context("live")?;
        let held = held_by(&db, &api, gateway, &devices).await?;
        stats.add(&api, gateway).await;
        bases.lock().unwrap()[leaving] = None;
        let mut stopping = gateways[leaving].take().context("live")?;
        let before = opened(&sim, &held);
        let t0 = Instant::now();
        stopping.signal(libc::SIGTERM)?;
        let node = stopping.name;
        back_online(&sim, &before, "SIGTERM").await?;
        report.takeovers.push(("graceful stop", t0.elapsed()));
        let status = tokio::time::timeout(Duration::from_secs(30), stopping.child.wait()).await??;
        ensure!(status.success(), "gateway {node} exited with {status} after SIGTERM");
        drop(stopping);
        let restarted = Gateway::start(node, database, &network).await?;
        bases.lock().unwrap()[leaving] = Some(restarted.base.clone());
        gateways[leaving] = Some(restarted);
    }

    // Let the schedules fall due, then stop the load and let everything settle.
    tokio::time::sleep_until(schedules_from + Duration::from_millis(4_000 + spread_ms as u64)).await;
    load_stop.cancel();
    senders.await?;
    contacts.await?;
    all_connected(&sim, &devices).await?;
    redeliver(&sim, &ledger).await?;
    for gateway in gateways.iter().flatten() {
        stats.add(&api, gateway).await;
    }
    check(database, &sim, &devices, &ledger, &plan, &mut report).await?;
    report.fenced_writes = stats.fenced_writes;
    report.resent_after_takeover = stats.resent_after_takeover;
    report.sessions_opened = devices.iter().map(|(id, _)| sim.sessions(*id).opened).sum();
    report.elapsed = started.elapsed();
    for gateway in gateways.iter_mut().flatten() {
        let _ = gateway.signal(libc::SIGTERM);
        let _ = tokio::time::timeout(Duration::from_secs(30), gateway.child.wait()).await;
    }
    Ok(report)
}

/// Counters summed over the processes (read before each leaves, and at the end).
#[derive(Default)]
struct Stats {
    fenced_writes: u64,
    resent_after_takeover: u64,
}

impl Stats {
    async fn add(&mut self, api: &Api, gateway: &Gateway) {
        if let Ok((StatusCode::OK, body)) =
            api.call(&gateway.base, Method::GET, "/api/admin/cluster?limit=1", None).await
        {
            self.fenced_writes += body["stats"]["fenced_writes"].as_u64().unwrap_or(0);
            self.resent_after_takeover += body["stats"]["resent_after_takeover"].as_u64().unwrap_or(0);
        }
    }
}

async fn node_id(api: &Api, gateway: &Gateway) -> Result<String> {
    let body =
        api.expect(&gateway.base, Method::GET, "/api/admin/cluster?limit=1", None, StatusCode::OK).await?;
    Ok(body["this_node"].as_str().context("this_node")?.to_string())
}

/// The devices whose lease the gateway holds.
async fn held_by(db: &Db, api: &Api, gateway: &Gateway, devices: &[(i64, String)]) -> Result<Vec<i64>> {
    let node = node_id(api, gateway).await?;
    let mut held = Vec::new();
    for (id, _) in devices {
        if db.cluster_holder(*id).await?.is_some_and(|(holder, _)| holder == node) {
            held.push(*id);
        }
    }
    Ok(held)
}

/// The index of the live gateway holding the most devices.
async fn busiest(
    db: &Db,
    api: &Api,
    gateways: &[Option<Gateway>],
    devices: &[(i64, String)],
) -> Result<usize> {
    let mut best = (0, 0);
    for (i, gateway) in gateways.iter().enumerate() {
        if let Some(gateway) = gateway {
            let n = held_by(db, api, gateway, devices).await?.len();
            if n >= best.1 {
                best = (i, n);
            }
        }
    }
    ensure!(best.1 > 0, "no process holds a device");
    Ok(best.0)
}

async fn all_connected(sim: &Simulator, devices: &[(i64, String)]) -> Result<()> {
    until(SETTLE, "every device connected", || async {
        Ok(devices.iter().all(|(id, _)| sim.is_connected(*id)).then_some(()))
    })
    .await
}

/// Sessions opened so far for each device.
fn opened(sim: &Simulator, held: &[i64]) -> Vec<(i64, u64)> {
    held.iter().map(|id| (*id, sim.sessions(*id).opened)).collect()
}

/// Waits until each device has a new session (its holder is gone) and is connected.
async fn back_online(sim: &Simulator, before: &[(i64, u64)], what: &str) -> Result<()> {
    until(SETTLE, &format!("the devices back online after {what}"), || async {
        Ok(before.iter().all(|(id, n)| sim.sessions(*id).opened > *n && sim.is_connected(*id)).then_some(()))
    })
    .await
}

/// Waits until another process than `node` holds each device and it is connected.
async fn back_online_elsewhere(sim: &Simulator, db: &Db, held: &[i64], node: &str) -> Result<()> {
    until(SETTLE, "the frozen process's devices connected elsewhere", || async {
        for id in held {
            let moved = db.cluster_holder(*id).await?.is_some_and(|(holder, _)| holder != node);
            if !moved || !sim.is_connected(*id) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
}

/// Starts `task(n)` for n = 1, 2, … at `per_second` until `stop`, then waits for the tasks
/// still running. `task` answers `None` to skip a turn.
async fn paced<F, Fut>(per_second: u32, stop: CancellationToken, mut task: F)
where
    F: FnMut(usize) -> Option<Fut>,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut every = tokio::time::interval(Duration::from_secs(1) / per_second.max(1));
    let mut in_flight = tokio::task::JoinSet::new();
    for n in 1.. {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        if let Some(work) = task(n) {
            in_flight.spawn(work);
        }
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

/// Sends through the processes in turn at the plan's rate, recording what was accepted.
async fn send_load(
    api: Api,
    bases: Arc<Mutex<Vec<Option<String>>>>,
    devices: Vec<(i64, String)>,
    plan: Plan,
    ledger: Arc<Mutex<Ledger>>,
    stop: CancellationToken,
) {
    paced(plan.sends_per_second, stop, |n| {
        let base = bases.lock().unwrap()[n % 3].clone()?;
        let (_, phone) = &devices[n % devices.len()];
        let text = format!("send-{n}");
        let body = json!({"device": phone, "to": CONTACT, "text": text, "async": true});
        let (api, ledger) = (api.clone(), ledger.clone());
        Some(async move {
            match api.call(&base, Method::POST, "/api/send-message", Some(&body)).await {
                Ok((StatusCode::OK, answer)) => {
                    let id = answer["id"].as_i64().unwrap_or(0);
                    ledger.lock().unwrap().accepted.insert(text, id);
                }
                // Refused before it was stored (the process is stopping, or a limit).
                Ok((status, _)) if status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE => {}
                // No answer: the process may have stored it before it froze or died.
                _ => {
                    ledger.lock().unwrap().in_doubt.insert(text);
                }
            }
        })
    })
    .await
}

/// Contacts write to the devices at the plan's rate; unacknowledged messages wait for
/// [`redeliver`].
async fn inbound_load(
    sim: Simulator,
    devices: Vec<(i64, String)>,
    plan: Plan,
    ledger: Arc<Mutex<Ledger>>,
    stop: CancellationToken,
) {
    paced(plan.inbound_per_second, stop, |n| {
        let (device, _) = devices[n % devices.len()];
        let wa_id = format!("3EB0HARNESS{n:08}");
        let text = format!("inbound-{n}");
        let (sim, ledger) = (sim.clone(), ledger.clone());
        Some(async move {
            let msg = SimInbound {
                from: CONTACT.into(),
                text: Some(text.clone()),
                id: Some(wa_id.clone()),
                ..Default::default()
            };
            let acked = sim.inbound(device, msg).await.is_ok();
            let mut ledger = ledger.lock().unwrap();
            if acked {
                ledger.acked.insert(wa_id, device);
            } else {
                ledger.unacked.insert(wa_id, (device, text));
            }
        })
    })
    .await
}

/// Sends every unacknowledged inbound message again until the gateway acknowledges it.
async fn redeliver(sim: &Simulator, ledger: &Arc<Mutex<Ledger>>) -> Result<()> {
    let unacked: Vec<_> = std::mem::take(&mut ledger.lock().unwrap().unacked).into_iter().collect();
    for (wa_id, (device, text)) in unacked {
        until(SETTLE, "an inbound message acknowledged", || {
            let msg = SimInbound {
                from: CONTACT.into(),
                text: Some(text.clone()),
                id: Some(wa_id.clone()),
                ..Default::default()
            };
            async move { Ok(sim.inbound(device, msg).await.ok()) }
        })
        .await?;
        ledger.lock().unwrap().acked.insert(wa_id, device);
    }
    Ok(())
}

/// The end state: nothing lost, nothing twice, never two connections.
async fn check(
    database: &str,
    sim: &Simulator,
    devices: &[(i64, String)],
    ledger: &Arc<Mutex<Ledger>>,
    plan: &Plan,
    report: &mut Report,
) -> Result<()> {
    let pool = sqlx::PgPool::connect(database).await?;
    // Every schedule fell due and was handled (none still pending).
    let scheduled: i64 = until(SETTLE, "every schedule handled", || async {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM scheduled_messages WHERE status = 'pending'")
                .fetch_one(&pool)
                .await?;
        let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_messages WHERE status = 'sent'")
            .fetch_one(&pool)
            .await?;
        Ok((pending == 0).then_some(sent))
    })
    .await?;
    // Every outbound message left the queue as sent.
    until(SETTLE, "every outbound message sent", || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE direction = 'out' AND status NOT IN ('sent', 'delivered', 'read', 'failed')",
        )
        .fetch_one(&pool)
        .await?;
        Ok((open == 0).then_some(()))
    })
    .await?;
    let failed: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT COALESCE(text, ''), error FROM messages WHERE direction = 'out' AND status = 'failed'",
    )
    .fetch_all(&pool)
    .await?;
    ensure!(failed.is_empty(), "messages failed: {failed:?}");
    ensure!(scheduled == plan.schedules as i64, "{scheduled} of {} schedules sent", plan.schedules);

    // What the network saw, by text: the ids each went out under, and the copies.
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    let mut copies = 0usize;
    for (id, _) in devices {
        for sent in sim.outbox(*id) {
            let text = sent.text.unwrap_or_default();
            copies += 1;
            seen.entry(text).or_default().insert(sent.id);
        }
    }
    let total_ids: usize = seen.values().map(HashSet::len).sum();
    report.resent_same_id = copies - total_ids;
    let twice: Vec<_> = seen.iter().filter(|(_, ids)| ids.len() > 1).collect();
    ensure!(twice.is_empty(), "messages delivered under two ids: {twice:?}");

    let ledger = ledger.lock().unwrap().clone();
    let missing: Vec<_> = ledger.accepted.keys().filter(|t| !seen.contains_key(*t)).collect();
    ensure!(missing.is_empty(), "{} accepted sends never reached WhatsApp: {missing:?}", missing.len());
    let missing: Vec<_> =
        (0..plan.schedules).map(|n| format!("schedule-{n}")).filter(|t| !seen.contains_key(t)).collect();
    ensure!(missing.is_empty(), "scheduled messages never sent: {missing:?}");
    let strangers: Vec<_> = seen
        .keys()
        .filter(|t| {
            !ledger.accepted.contains_key(*t) && !ledger.in_doubt.contains(*t) && !t.starts_with("schedule-")
        })
        .collect();
    ensure!(strangers.is_empty(), "the network saw messages nobody sent: {strangers:?}");

    // Every acknowledged inbound message stored once.
    let stored: Vec<(String, i64)> =
        sqlx::query_as("SELECT wa_id, count(*) FROM messages WHERE direction = 'in' GROUP BY wa_id")
            .fetch_all(&pool)
            .await?;
    let stored: HashMap<String, i64> = stored.into_iter().collect();
    let lost: Vec<_> = ledger.acked.keys().filter(|id| !stored.contains_key(*id)).collect();
    ensure!(lost.is_empty(), "acknowledged inbound messages not stored: {lost:?}");
    let doubled: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(doubled.is_empty(), "inbound messages stored twice: {doubled:?}");

    // Never a second connection for a device while one was open.
    let replaced: Vec<_> =
        devices.iter().map(|(id, _)| (*id, sim.sessions(*id).replaced)).filter(|(_, n)| *n > 0).collect();
    ensure!(replaced.is_empty(), "devices with a session opened over a live one: {replaced:?}");

    report.sends_accepted = ledger.accepted.len();
    report.sends_in_doubt = ledger.in_doubt.len();
    report.scheduled = scheduled as usize;
    report.inbound_acked = ledger.acked.len();
    pool.close().await;
    Ok(())
}
