//! The inbound pipeline under load: messages from simulated contacts go in through the
//! simulator's admin API (`POST /api/admin/simulator/inbound`, which answers once the gateway
//! has stored the message and acknowledged it), the tenant's pipeline runs (100 keyword rules
//! that do not match, the echo plugin that answers `echo: <text>`, one notify webhook endpoint
//! on every event) and the reply goes out through the same device into the simulator's outbox.
//!
//! Each message has a unique text (`<tag> <n>`), so its reply is found in the outbox by text;
//! the outbox entry carries the time the simulated network took the reply (`at`). End-to-end
//! latency is `at` minus the moment the bench got the inbound request's answer (accepted).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::client::{self, Conn, Latencies, Outcome, Window};
use crate::procs::{Cpu, Server, ADMIN_TOKEN};

/// How the messages are offered.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// `injectors` requests in flight at once, each sending the next message when the last was
    /// accepted, while no more than a bounded number of accepted messages wait for their reply
    /// (so a pipeline slower than the intake does not build an ever longer queue).
    Saturate { injectors: usize },
    /// An open loop at a fixed rate (messages per second).
    Paced { rate: f64 },
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Replies that reached the outbox inside the measured window, per second.
    pub rate: f64,
    /// Accepted → reply in the outbox, for messages accepted inside the window.
    pub e2e: Latencies,
    /// Request sent → accepted (stored and acknowledged), for the same messages.
    pub intake: Latencies,
    pub accepted: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// Accepted messages without a reply when the run gave up waiting.
    pub missing: u64,
    /// Paced runs: messages the generator could not start on time (too many in flight).
    pub dropped: u64,
    /// CPU seconds of the gateway (its PostgreSQL backends) and of this process during the
    /// window, per reply in the window.
    pub cpu_per_msg: Cpu,
    /// Webhook deliveries the receiver got during the run, and how long the run waited after
    /// the window for the last replies and deliveries.
    pub webhooks: u64,
    pub drain: Duration,
}

/// Knobs shared by the runs.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    pub window: Window,
    pub timeout: Duration,
    /// Contacts the messages come from (round robin).
    pub contacts: u64,
    /// The least number of accepted messages allowed to wait for their reply (saturation).
    pub backlog: u64,
    /// How long to wait for the last replies after the window.
    pub drain_limit: Duration,
}

/// The tenant's pipeline: 100 keyword rules of every match mode that the benchmark's texts
/// never match (so every message is tried against all of them), the echo plugin, and one
/// notify webhook endpoint receiving every event (the default) at `receiver`.
pub async fn configure_pipeline(api: &Api, receiver: SocketAddr) -> Result<()> {
    for i in 0..100 {
        let (mode, keyword) = match i % 4 {
            0 => ("contains", format!("promo{i:03}")),
            1 => ("exact", format!("harga paket {i}")),
            2 => ("starts_with", format!("/menu{i}")),
            _ => ("regex", format!(r"^order-\d{{4}}-{i}$")),
        };
        let rule = json!({"keyword": keyword, "match": mode, "reply": format!("Balasan aturan {i}")});
        api.user(Method::POST, "/api/user/auto-reply", Some(rule)).await?;
    }
    api.upload_echo_plugin().await?;
    let hook = json!({"url": format!("http://{receiver}/hook"), "mode": "notify"});
    api.user(Method::POST, "/api/user/webhooks", Some(hook)).await?;
    Ok(())
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// The accepted messages and the replies seen, by message number.
#[derive(Default)]
struct Ledger {
    /// n → (request sent, accepted), Unix microseconds.
    accepted: Mutex<HashMap<u64, (i64, i64)>>,
    /// n → when the reply reached the outbox, Unix microseconds.
    replied: Mutex<HashMap<u64, i64>>,
    accepted_count: AtomicU64,
    replied_count: AtomicU64,
    /// Per device, the last outbox entry read.
    cursors: Mutex<HashMap<i64, u64>>,
    errors: AtomicU64,
    timeouts: AtomicU64,
    next: AtomicU64,
}

/// Where the messages go and how they are told apart.
struct Target {
    addr: SocketAddr,
    devices: Vec<i64>,
    tag: String,
    contacts: u64,
    timeout: Duration,
    auth: String,
}

impl Target {
    /// Sends message `n` and records it when accepted.
    async fn inject(&self, conn: &mut Conn, ledger: &Ledger, n: u64) {
        let device = self.devices[(n % self.devices.len() as u64) as usize];
        // Numbers ending in 0000 are "not on WhatsApp" in the simulator: the last four digits
        // stay within 1000..=9998.
        let from = 6_285_710_001_000u64 + n % self.contacts;
        let body = format!(r#"{{"device":{device},"from":"{from}","text":"{} {n}"}}"#, self.tag);
        let request = client::request(
            "POST",
            self.addr,
            "/api/admin/simulator/inbound",
            &[("authorization", &self.auth)],
            Some(&body),
        );
        let sent = now_us();
        match conn.call(&request, self.timeout).await {
            o if o.is_success() => {
                ledger.accepted.lock().unwrap().insert(n, (sent, now_us()));
                ledger.accepted_count.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Timeout => {
                ledger.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                ledger.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Reads the outboxes of the devices and records the replies to this run's messages.
async fn collect_replies(api: &Api, target: &Target, ledger: &Ledger) -> Result<()> {
    let prefix = format!("echo: {} ", target.tag);
    for device in &target.devices {
        let after = ledger.cursors.lock().unwrap().get(device).copied().unwrap_or(0);
        let sent = api.outbox(*device, after).await?;
        if let Some(last) = sent.last() {
            ledger.cursors.lock().unwrap().insert(*device, last.seq);
        }
        let mut replied = ledger.replied.lock().unwrap();
        for s in sent {
            let Some(n) =
                s.text.as_deref().and_then(|t| t.strip_prefix(&prefix)).and_then(|n| n.parse().ok())
            else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = replied.entry(n) {
                if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&s.at) {
                    slot.insert(at.timestamp_micros());
                }
            }
        }
        ledger.replied_count.store(replied.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Runs one load of inbound messages over `devices` and waits for every reply.
pub async fn run(
    api: &Api,
    gateway: &Server,
    webhooks: &AtomicU64,
    devices: &[i64],
    tag: &str,
    mode: Mode,
    knobs: Knobs,
) -> Result<Outcomes> {
    let target = Arc::new(Target {
        addr: gateway.addr,
        devices: devices.to_vec(),
        tag: tag.to_string(),
        contacts: knobs.contacts.clamp(1, 8_999),
        timeout: knobs.timeout,
        auth: format!("Bearer {ADMIN_TOKEN}"),
    });
    let ledger = Arc::new(Ledger::default());
    let hooks0 = webhooks.load(Ordering::Relaxed);
    let start = Instant::now();
    let start_us = now_us();
    let from_us = start_us + knobs.window.warmup.as_micros() as i64;
    let until_us = from_us + knobs.window.duration.as_micros() as i64;
    let until = start + knobs.window.warmup + knobs.window.duration;
    let sampler = {
        let probe = gateway.probe();
        let from = start + knobs.window.warmup;
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            let first = probe.sample();
            tokio::time::sleep_until(until.into()).await;
            probe.sample() - first
        })
    };

    // The outboxes are read four times a second while the load runs.
    let stop_polling = CancellationToken::new();
    let poller = {
        let (api, target, ledger, stop) = (api.clone(), target.clone(), ledger.clone(), stop_polling.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Err(e) = collect_replies(&api, &target, &ledger).await {
                    eprintln!("  reading the outbox failed: {e:#}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.cancelled() => {}
                }
            }
        })
    };

    let dropped = match mode {
        Mode::Saturate { injectors } => {
            let mut tasks = Vec::new();
            for _ in 0..injectors {
                let (target, ledger) = (target.clone(), ledger.clone());
                let backlog = knobs.backlog;
                tasks.push(tokio::spawn(async move {
                    let mut conn = Conn::new(target.addr);
                    while Instant::now() < until {
                        // Half a second of replies at the rate seen so far may wait, at least `backlog`.
                        let replied = ledger.replied_count.load(Ordering::Relaxed);
                        let waiting = ledger.accepted_count.load(Ordering::Relaxed).saturating_sub(replied);
                        let rate = replied as f64 / start.elapsed().as_secs_f64().max(0.001);
                        if waiting > backlog.max((rate * 0.5) as u64) {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            continue;
                        }
                        let n = ledger.next.fetch_add(1, Ordering::Relaxed);
                        target.inject(&mut conn, &ledger, n).await;
                    }
                }));
            }
            for task in tasks {
                task.await?;
            }
            0
        }
        Mode::Paced { rate } => paced(&target, &ledger, rate, start, until).await,
    };

    // Wait for the last replies, then for the webhook deliveries to stop arriving.
    let window_end = Instant::now();
    stop_polling.cancel();
    poller.await?;
    loop {
        collect_replies(api, &target, &ledger).await?;
        let accepted = ledger.accepted_count.load(Ordering::Relaxed);
        let done = {
            let replied = ledger.replied.lock().unwrap();
            ledger.accepted.lock().unwrap().keys().all(|n| replied.contains_key(n))
        };
        if done || window_end.elapsed() > knobs.drain_limit {
            if !done {
                eprintln!("  gave up waiting for replies ({accepted} accepted)");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settle(webhooks, knobs.drain_limit).await;
    let drain = window_end.elapsed();
    let cpu = sampler.await?;

    let accepted = ledger.accepted.lock().unwrap();
    let replied = ledger.replied.lock().unwrap();
    let in_window = |t: i64| (from_us..=until_us).contains(&t);
    let mut e2e = Vec::new();
    let mut intake = Vec::new();
    for (n, (sent, ok)) in accepted.iter() {
        if !in_window(*ok) {
            continue;
        }
        intake.push(u32::try_from(ok - sent).unwrap_or(u32::MAX));
        if let Some(at) = replied.get(n) {
            e2e.push(u32::try_from((at - ok).max(0)).unwrap_or(u32::MAX));
        }
    }
    let replies_in_window =
        replied.iter().filter(|(n, at)| accepted.contains_key(n) && in_window(**at)).count();
    let missing = accepted.keys().filter(|n| !replied.contains_key(n)).count() as u64;
    Ok(Outcomes {
        rate: replies_in_window as f64 / knobs.window.duration.as_secs_f64(),
        e2e: Latencies::from_micros(e2e),
        intake: Latencies::from_micros(intake),
        accepted: accepted.len() as u64,
        errors: ledger.errors.load(Ordering::Relaxed),
        timeouts: ledger.timeouts.load(Ordering::Relaxed),
        missing,
        dropped,
        cpu_per_msg: cpu.per(replies_in_window as f64),
        webhooks: webhooks.load(Ordering::Relaxed) - hooks0,
        drain,
    })
}

/// Offers messages at `rate` per second until `until`, each on a connection of its own task
/// (at most 512 in flight; a message that finds none free is dropped and counted).
async fn paced(target: &Arc<Target>, ledger: &Arc<Ledger>, rate: f64, start: Instant, until: Instant) -> u64 {
    const IN_FLIGHT: usize = 512;
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let pool: Arc<Mutex<Vec<Conn>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut issued = 0u64;
    let mut dropped = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while issued < due {
            issued += 1;
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                dropped += 1;
                continue;
            };
            let (target, ledger, pool) = (target.clone(), ledger.clone(), pool.clone());
            tokio::spawn(async move {
                let mut conn = pool.lock().unwrap().pop().unwrap_or_else(|| Conn::new(target.addr));
                let n = ledger.next.fetch_add(1, Ordering::Relaxed);
                target.inject(&mut conn, &ledger, n).await;
                pool.lock().unwrap().push(conn);
                drop(slot);
            });
        }
    }
    let _ = slots.acquire_many(IN_FLIGHT as u32).await;
    dropped
}

/// Waits until the receiver has had no delivery for half a second (at most `limit`).
async fn settle(webhooks: &AtomicU64, limit: Duration) {
    let started = Instant::now();
    let mut last = webhooks.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = webhooks.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_millis(500) {
            return;
        }
    }
}

/// Stores `count` inbound messages on `device` with `injectors` in flight (no pipeline is set
/// up yet: this is the history the read paths list, and the intake alone). Returns the
/// messages accepted per second, the intake latencies, errors and timeouts, and the CPU per
/// message.
pub async fn seed(
    gateway: &Server,
    device: i64,
    count: u64,
    injectors: usize,
    timeout: Duration,
) -> Result<(f64, Latencies, (u64, u64), Cpu)> {
    let target = Arc::new(Target {
        addr: gateway.addr,
        devices: vec![device],
        tag: "history".into(),
        contacts: 100,
        timeout,
        auth: format!("Bearer {ADMIN_TOKEN}"),
    });
    let ledger = Arc::new(Ledger::default());
    let probe = gateway.probe();
    let cpu0 = probe.sample();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..injectors {
        let (target, ledger) = (target.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target.addr);
            loop {
                let n = ledger.next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                target.inject(&mut conn, &ledger, n).await;
            }
        }));
    }
    for task in tasks {
        task.await.context("an injector")?;
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = probe.sample() - cpu0;
    let accepted = ledger.accepted.lock().unwrap();
    let intake = Latencies::from_micros(
        accepted.values().map(|(sent, ok)| u32::try_from(ok - sent).unwrap_or(u32::MAX)).collect(),
    );
    let failed = (ledger.errors.load(Ordering::Relaxed), ledger.timeouts.load(Ordering::Relaxed));
    Ok((accepted.len() as f64 / took, intake, failed, cpu.per(accepted.len() as f64)))
}
