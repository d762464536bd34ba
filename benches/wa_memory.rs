//! Memory per connected device with the `whatsapp-web` driver: the gateway runs the real
//! `whatsapp-rust` client for N devices against the fake WhatsApp server of the test suite
//! (`tests/support/fake_wa`), and the resident set size (`VmRSS` of `/proc/self/status`) is
//! read before and after.
//!
//! `cargo bench --bench wa_memory` (release profile). Knobs (environment):
//! `WA_MEMORY_DEVICES` (default 200), `WA_MEMORY_PARALLEL` (pairings at a time, default 16),
//! `WA_MEMORY_INPROCESS=0` skips the in-process cross-check, `WA_MEMORY_LOG=1` prints the
//! gateway's log (`RUST_LOG` filters it).
//!
//! Method. Every measured run is a process of its own, so allocator state left by one run
//! cannot flatter the next:
//!
//! 1. The fake server runs in a child process and serves the clients over loopback TCP (the
//!    bytes the real client would send over its WebSocket, without TLS). Its own RSS is read
//!    through a control connection, so its share is measured, not guessed.
//! 2. "pair": a gateway process (SQLite file database) builds the app, starts it, creates a
//!    tenant, then creates and pairs N devices through the supervisor, the calls the HTTP
//!    handlers make (`create_device`, `DeviceManager::start`, `DeviceManager::qr`, the fake
//!    phone scans each QR, status `connected`). It waits until every client finished its
//!    post-login queries and its RSS is stable, and reports RSS before/after.
//! 3. "resume": a new gateway process on the same database: every device reconnects from its
//!    stored keys (Noise IK), the steady state of a gateway after a restart.
//! 4. "in-process" (cross-check): one process holding gateway, clients and fake, connected by
//!    the fake's in-memory pipe (as the tests run). Its delta minus the fake's own measured
//!    share should match the gateway's share from (2).
//!
//! Not in the numbers: the real transport's TLS and WebSocket buffers (the library estimates
//! them at 64 KiB per session, `Transport::resource_report`), printed as an adjusted figure.
//!
//! Goal (issue 4): <= 1 MiB RSS per idle connected device.

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

#[path = "../tests/support/fake_wa/mod.rs"]
mod fake_wa;

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use fake_wa::FakeWhatsApp;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use wa_gateway::app::AppOptions;
use wa_gateway::config::DriverKind;
use wa_gateway::devices::manager::DeviceStatus;
use wa_gateway::devices::whatsapp_web::driver::WaNetwork;
use wa_gateway::tenants::CreateTenant;
use wa_gateway::{App, Config};
use whatsapp_rust::async_channel;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::transport::{DisconnectReason, Transport, TransportEvent, TransportFactory};

/// The library's own estimate of the real WebSocket transport per session (TLS state and
/// read/write buffers), which the loopback TCP transport here does not have.
const REAL_TRANSPORT_ESTIMATE_KIB: f64 = 64.0;
const GOAL_KIB: f64 = 1024.0;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(600);

fn main() -> Result<()> {
    match std::env::var("WA_MEMORY_ROLE").as_deref() {
        Ok("fake") => runtime().block_on(fake_server()),
        Ok(phase @ ("pair" | "resume" | "inprocess")) => {
            let phase = phase.to_string();
            runtime().block_on(gateway(&phase))
        }
        _ => orchestrate(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // As `wa-gateway serve` runs: `#[tokio::main]`, one worker per core.
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
}

fn devices() -> usize {
    std::env::var("WA_MEMORY_DEVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

fn parallel() -> usize {
    std::env::var("WA_MEMORY_PARALLEL").ok().and_then(|v| v.parse().ok()).unwrap_or(16).max(1)
}

/// The phone number of device `i` (digits).
fn phone(i: usize) -> String {
    format!("62811{i:07}")
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    status_kib("VmRSS")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Waits until RSS stops moving (five 1 s samples within 1%, at most 30 s): lazily freed
/// pairing buffers and the last answers have settled. Returns the last sample.
async fn stable_rss() -> u64 {
    let mut samples = std::collections::VecDeque::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push_back(rss_kib());
        if samples.len() > 5 {
            samples.pop_front();
        }
        let (lo, hi) =
            (samples.iter().min().copied().unwrap_or(0), samples.iter().max().copied().unwrap_or(0));
        if samples.len() == 5 && (hi - lo) as f64 <= hi as f64 * 0.01 || Instant::now() > deadline {
            return *samples.back().unwrap_or(&0);
        }
    }
}

// ---- the orchestrator ----------------------------------------------------------------------

fn orchestrate() -> Result<()> {
    let n = devices();
    let machine = common::machine();
    println!("wa_memory: RSS per idle connected device, whatsapp-web driver on the fake server");
    println!("machine: {machine}");
    println!("devices: {n}, pairing {} at a time, SQLite file database", parallel());
    println!();

    let dir = tempfile::tempdir().context("a temporary folder")?;
    let mut fake = FakeProcess::spawn()?;
    let fake_fresh = fake.rss()?;

    let pair = run_phase("pair", &dir.path().join("pair.db"), Some(&fake))?;
    let fake_paired = fake.rss()?;
    let resume = run_phase("resume", &dir.path().join("pair.db"), Some(&fake))?;
    let fake_resumed = fake.rss()?;
    fake.stop();
    let inprocess = if std::env::var("WA_MEMORY_INPROCESS").as_deref() == Ok("0") {
        None
    } else {
        Some(run_phase("inprocess", &dir.path().join("inprocess.db"), None)?)
    };

    let per = |r: &PhaseResult| (r.rss_idle as f64 - r.rss_before as f64) / n as f64;
    let fake_share = (fake_paired as f64 - fake_fresh as f64) / n as f64;
    println!();
    println!("== results ({n} devices) ==");
    println!("machine: {machine}");
    for r in [Some(&pair), Some(&resume)].into_iter().flatten() {
        println!(
            "{:<9} gateway process RSS {:>8.1} MiB before -> {:>8.1} MiB idle with {} connected (peak {:.1} MiB); \
             {:>6.1} KiB per device; all connected in {:.1} s",
            r.phase,
            mib(r.rss_before),
            mib(r.rss_idle),
            r.connected,
            mib(r.rss_peak),
            per(r),
            r.connect_secs
        );
    }
    println!(
        "pair      (the gateway built, before its HTTP server and workers started: {:.1} MiB; started, no device: {:.1} MiB)",
        mib(pair.rss_built),
        mib(pair.rss_before)
    );
    println!(
        "fake      server process RSS {:.1} MiB fresh -> {:.1} MiB with {n} paired+connected -> {:.1} MiB after the \
         resume run: {:.1} KiB per device (its accounts, key bundles, connections, journal)",
        mib(fake_fresh),
        mib(fake_paired),
        mib(fake_resumed),
        fake_share
    );
    if let Some(r) = &inprocess {
        let combined = per(r);
        println!(
            "inprocess one process (gateway + clients + fake): {:.1} MiB -> {:.1} MiB: {:.1} KiB per device; minus the \
             fake's {:.1} KiB = {:.1} KiB per device for the gateway (cross-check of 'pair': {:.1})",
            mib(r.rss_before),
            mib(r.rss_idle),
            combined,
            fake_share,
            combined - fake_share,
            per(&pair)
        );
    }
    let worst = per(&pair).max(per(&resume));
    let with_transport = worst + REAL_TRANSPORT_ESTIMATE_KIB;
    println!(
        "gateway per idle connected device: {:.1} KiB measured (worst of pair/resume), ~{:.1} KiB with the real \
         transport's TLS/WebSocket buffers (library estimate {REAL_TRANSPORT_ESTIMATE_KIB} KiB); goal <= {GOAL_KIB} KiB: {}",
        worst,
        with_transport,
        if with_transport <= GOAL_KIB { "met" } else { "NOT met" }
    );
    println!(
        "method: separate processes; gateway deltas exclude the fake entirely (it runs in its own process over \
         loopback TCP, whose socket buffers live in the kernel, not in RSS); the fake's share is its own RSS delta"
    );
    Ok(())
}

/// What a gateway process reports (one line of `key=value` pairs on its stdout).
#[derive(Debug, Default)]
struct PhaseResult {
    phase: String,
    rss_built: u64,
    rss_before: u64,
    rss_idle: u64,
    rss_peak: u64,
    connected: usize,
    connect_secs: f64,
}

fn run_phase(phase: &str, db: &std::path::Path, fake: Option<&FakeProcess>) -> Result<PhaseResult> {
    println!("-- {phase} --");
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env("WA_MEMORY_ROLE", phase)
        .env("WA_MEMORY_DB", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(fake) = fake {
        command
            .env("WA_MEMORY_FAKE_DATA", fake.data.to_string())
            .env("WA_MEMORY_FAKE_CTL", fake.ctl.to_string());
    }
    let mut child = command.spawn().context("start a gateway process")?;
    let stdout = child.stdout.take().expect("piped");
    let mut result = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(fields) = line.strip_prefix("RESULT ") {
            let mut r = PhaseResult { phase: phase.to_string(), ..Default::default() };
            for (k, v) in fields.split_whitespace().filter_map(|f| f.split_once('=')) {
                match k {
                    "rss_built" => r.rss_built = v.parse()?,
                    "rss_before" => r.rss_before = v.parse()?,
                    "rss_idle" => r.rss_idle = v.parse()?,
                    "rss_peak" => r.rss_peak = v.parse()?,
                    "connected" => r.connected = v.parse()?,
                    "connect_secs" => r.connect_secs = v.parse()?,
                    _ => {}
                }
            }
            result = Some(r);
        } else {
            println!("  {line}");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the {phase} process failed: {status}");
    }
    result.ok_or_else(|| anyhow!("the {phase} process reported nothing"))
}

/// The fake server in a child process: its data and control addresses.
struct FakeProcess {
    child: Child,
    data: SocketAddr,
    ctl: SocketAddr,
}

impl FakeProcess {
    fn spawn() -> Result<FakeProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .env("WA_MEMORY_ROLE", "fake")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start the fake server process")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let mut parts = line.split_whitespace().skip(1);
        let data = parts.next().ok_or_else(|| anyhow!("fake server said {line:?}"))?.parse()?;
        let ctl = parts.next().ok_or_else(|| anyhow!("fake server said {line:?}"))?.parse()?;
        Ok(FakeProcess { child, data, ctl })
    }

    fn rss(&self) -> Result<u64> {
        let mut stream = std::net::TcpStream::connect(self.ctl)?;
        stream.write_all(b"rss\n")?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        line.trim().strip_prefix("ok ").ok_or_else(|| anyhow!("fake: {line}"))?.parse().map_err(Into::into)
    }

    /// Closing its stdin ends it.
    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

// ---- the fake server process -----------------------------------------------------------------

async fn fake_server() -> Result<()> {
    let fake = FakeWhatsApp::new();
    let data = TcpListener::bind("127.0.0.1:0").await?;
    let ctl = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {} {}", data.local_addr()?, ctl.local_addr()?);
    std::io::stdout().flush()?;
    let accept_fake = fake.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = data.accept().await {
            tokio::spawn(bridge(accept_fake.clone(), socket));
        }
    });
    let ctl_fake = fake.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = ctl.accept().await {
            tokio::spawn(control(ctl_fake.clone(), socket));
        }
    });
    // Runs until the orchestrator closes our stdin.
    let mut stdin = tokio::io::stdin();
    let mut sink = Vec::new();
    let _ = stdin.read_to_end(&mut sink).await;
    Ok(())
}

/// Pipes one TCP connection into a connection of the fake (its in-process transport).
async fn bridge(fake: Arc<FakeWhatsApp>, socket: TcpStream) {
    let _ = socket.set_nodelay(true);
    let Ok((transport, events)) = fake.transport_factory().create_transport().await else {
        return;
    };
    let (mut rd, mut wr) = socket.into_split();
    let to_client = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                TransportEvent::Connected => {}
                TransportEvent::DataReceived(bytes) => {
                    // Length-prefixed: the client sees each write as one message, as it would
                    // see one WebSocket message (its handshake reads one frame per message).
                    let len = (bytes.len() as u32).to_be_bytes();
                    if wr.write_all(&len).await.is_err() || wr.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                TransportEvent::Disconnected(_) => break,
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if transport.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    break;
                }
            }
        }
    }
    transport.disconnect().await;
    let _ = to_client.await;
}

/// One control request per connection, one line each way:
/// `rss` → `ok KIB`; `scan PHONE QR` → `ok`; `settled COUNT N SECS` → `ok` once the first N
/// phones each finished the post-login queries of COUNT logins.
async fn control(fake: Arc<FakeWhatsApp>, socket: TcpStream) {
    let (rd, mut wr) = socket.into_split();
    let mut line = String::new();
    if tokio::io::BufReader::new(rd).read_line(&mut line).await.is_err() {
        return;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let answer = match words.as_slice() {
        ["rss"] => Ok(format!("ok {}", rss_kib())),
        ["scan", phone, qr] => fake.scan_as(qr, phone).await.map(|_| "ok".to_string()),
        ["settled", count, n, secs] => {
            let (count, n, secs): (usize, usize, u64) =
                (count.parse().unwrap_or(1), n.parse().unwrap_or(0), secs.parse().unwrap_or(60));
            all_settled(&fake, count, n, Duration::from_secs(secs)).await.map(|_| "ok".to_string())
        }
        _ => Err(anyhow!("unknown request {line:?}")),
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => format!("err {}", format!("{e:#}").replace('\n', " | ")),
    };
    let _ = wr.write_all(format!("{answer}\n").as_bytes()).await;
}

async fn all_settled(fake: &FakeWhatsApp, count: usize, n: usize, timeout: Duration) -> Result<()> {
    fake.wait_until(&format!("{n} devices settled after login #{count}"), timeout, |f| {
        let online: std::collections::HashSet<String> =
            f.connections().into_iter().filter(|c| c.logged_in).filter_map(|c| c.phone).collect();
        (0..n).all(|i| {
            let p = phone(i);
            online.contains(&p) && f.iq_count(&p, "encrypt", "digest") >= count
        })
    })
    .await
    .map_err(|e| anyhow!("{}", e.to_string().lines().next().unwrap_or_default()))
}

// ---- the client side of the loopback transport ------------------------------------------------

/// Plain TCP to the fake server process, server writes length-prefixed: the message pipe the
/// WebSocket transport would be.
struct TcpTransportFactory {
    addr: SocketAddr,
}

struct TcpTransport {
    writer: tokio::sync::Mutex<Option<tokio::net::tcp::OwnedWriteHalf>>,
    closed: CancellationToken,
}

#[whatsapp_rust::async_trait]
impl TransportFactory for TcpTransportFactory {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>)> {
        let socket = TcpStream::connect(self.addr).await?;
        socket.set_nodelay(true)?;
        let (mut rd, wr) = socket.into_split();
        // Bounded like the WebSocket transport's event channel.
        let (tx, rx) = async_channel::bounded(64);
        tx.send(TransportEvent::Connected).await?;
        let closed = CancellationToken::new();
        let stop = closed.clone();
        tokio::spawn(async move {
            // One message per server write (see `bridge`), like WebSocket messages.
            async fn message(rd: &mut tokio::net::tcp::OwnedReadHalf) -> std::io::Result<Bytes> {
                let len = rd.read_u32().await? as usize;
                let mut buf = BytesMut::zeroed(len);
                rd.read_exact(&mut buf).await?;
                Ok(buf.freeze())
            }
            let reason = loop {
                tokio::select! {
                    _ = stop.cancelled() => break DisconnectReason::Unknown,
                    read = message(&mut rd) => match read {
                        Ok(data) => {
                            if tx.send(TransportEvent::DataReceived(data)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break DisconnectReason::StreamEnded,
                        Err(e) => break DisconnectReason::ReadError(e.to_string()),
                    },
                }
            };
            let _ = tx.send(TransportEvent::Disconnected(reason)).await;
        });
        let transport = TcpTransport { writer: tokio::sync::Mutex::new(Some(wr)), closed };
        Ok((Arc::new(transport), rx))
    }
}

#[whatsapp_rust::async_trait]
impl Transport for TcpTransport {
    async fn send(&self, data: Bytes) -> Result<()> {
        let mut writer = self.writer.lock().await;
        let writer = writer.as_mut().ok_or_else(|| anyhow!("socket closed"))?;
        writer.write_all(&data).await?;
        Ok(())
    }

    async fn disconnect(&self) {
        self.closed.cancel();
        if let Some(mut writer) = self.writer.lock().await.take() {
            let _ = writer.shutdown().await;
        }
    }
}

/// The client must not need HTTP here: the version is pinned and nothing is uploaded.
struct NoHttp;

#[whatsapp_rust::async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse> {
        bail!("unexpected HTTP request in the memory benchmark: {}", request.url)
    }
}

// ---- a gateway process ----------------------------------------------------------------------

/// Where the fake phone is: in another process (control connection) or in this one.
enum Phone {
    Remote(SocketAddr),
    Local(Arc<FakeWhatsApp>),
}

impl Phone {
    async fn request(addr: SocketAddr, line: String) -> Result<String> {
        let socket = TcpStream::connect(addr).await?;
        let (rd, mut wr) = socket.into_split();
        wr.write_all(format!("{line}\n").as_bytes()).await?;
        let mut answer = String::new();
        tokio::io::BufReader::new(rd).read_line(&mut answer).await?;
        let answer = answer.trim().to_string();
        if answer.starts_with("ok") {
            Ok(answer)
        } else {
            bail!("fake server: {answer}")
        }
    }

    async fn scan(&self, qr: &str, phone: &str) -> Result<()> {
        match self {
            Phone::Remote(addr) => Phone::request(*addr, format!("scan {phone} {qr}")).await.map(|_| ()),
            Phone::Local(fake) => fake.scan_as(qr, phone).await.map(|_| ()),
        }
    }

    async fn settled(&self, count: usize, n: usize, timeout: Duration) -> Result<()> {
        match self {
            Phone::Remote(addr) => {
                Phone::request(*addr, format!("settled {count} {n} {}", timeout.as_secs())).await.map(|_| ())
            }
            Phone::Local(fake) => all_settled(fake, count, n, timeout).await,
        }
    }
}

async fn gateway(phase: &str) -> Result<()> {
    let n = devices();
    let db: PathBuf = std::env::var_os("WA_MEMORY_DB").context("WA_MEMORY_DB")?.into();
    let mut config = Config::from_toml("").context("the embedded defaults")?;
    config.server.bind = "127.0.0.1:0".parse()?;
    config.admin.token = "wa-memory-bench-admin-token".into();
    config.database.url = format!("sqlite:{}", db.display());
    config.whatsapp.driver = DriverKind::WhatsappWeb;
    config.whatsapp.version = "2.3000.1023456789".into();
    if std::env::var_os("WA_MEMORY_LOG").is_some() {
        wa_gateway::telemetry::init(&config.log);
    }
    let (network, phone_side) = match std::env::var("WA_MEMORY_FAKE_DATA") {
        Ok(data) => {
            let ctl: SocketAddr = std::env::var("WA_MEMORY_FAKE_CTL")?.parse()?;
            let transport = Arc::new(TcpTransportFactory { addr: data.parse()? });
            (WaNetwork { transport, http: Arc::new(NoHttp) }, Phone::Remote(ctl))
        }
        Err(_) => {
            let fake = FakeWhatsApp::new();
            let transport = Arc::new(fake.transport_factory());
            (WaNetwork { transport, http: Arc::new(NoHttp) }, Phone::Local(fake))
        }
    };
    let rss_start = rss_kib();
    let app =
        App::build_with(config, AppOptions { whatsapp_network: Some(network), ..Default::default() }).await?;
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    let rss_built = rss_kib();
    let resuming = phase == "resume";
    let run = tokio::spawn(app.run());
    println!("process started at {:.1} MiB, gateway built: {:.1} MiB", mib(rss_start), mib(rss_built));

    let started = Instant::now();
    let (ids, rss_before, login) = if resuming {
        // The devices are back from the database as soon as the gateway runs.
        let ids: Vec<i64> = state.db.system_paired_devices().await?.iter().map(|d| d.id).collect();
        if ids.len() != n {
            bail!("expected {n} paired devices in the database, found {}", ids.len());
        }
        (ids, rss_built, 2)
    } else {
        let (tenant, _key) = state
            .tenants
            .create(CreateTenant {
                name: "Memory bench".into(),
                email: "bench@example.com".into(),
                package: Some("enterprise".into()),
                password: None,
            })
            .await
            .map_err(|e| anyhow!("create the tenant: {e}"))?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_before = rss_kib();
        println!("running with no device: {:.1} MiB; pairing {n} devices", mib(rss_before));
        let started = Instant::now();
        let phone_side = &phone_side;
        let state = &state;
        let ids: Vec<Result<i64>> = futures::stream::iter(0..n)
            .map(|i| async move {
                let number = phone(i);
                let row =
                    match state.db.create_device(tenant.id, &number, &format!("Device {i}"), None).await? {
                        Some(row) => row,
                        None => bail!("over the device limit"),
                    };
                state.device_manager.start(&row);
                let qr = loop {
                    match state.device_manager.qr(&row).await {
                        Ok(qr) => break qr,
                        Err(wa_gateway::devices::manager::DeviceError::NoQrYet) => continue,
                        Err(e) => bail!("device {i}: no QR: {e}"),
                    }
                };
                phone_side.scan(&qr.code, &number).await.with_context(|| format!("scan of device {i}"))?;
                let deadline = Instant::now() + Duration::from_secs(120);
                while state.device_manager.live(row.id).map(|l| l.status) != Some(DeviceStatus::Connected) {
                    if Instant::now() > deadline {
                        bail!("device {i} not connected: {:?}", state.device_manager.live(row.id));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(row.id)
            })
            .buffer_unordered(parallel())
            .collect()
            .await;
        let ids = ids.into_iter().collect::<Result<Vec<_>>>()?;
        println!("paired {n} devices in {:.1} s", started.elapsed().as_secs_f64());
        (ids, rss_before, 1)
    };

    // Every device connected, every client done with its post-login queries.
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let connected = ids
            .iter()
            .filter(|id| state.device_manager.live(**id).is_some_and(|l| l.status == DeviceStatus::Connected))
            .count();
        if connected == ids.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("{connected} of {} devices connected after {CONNECT_TIMEOUT:?}", ids.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    phone_side.settled(login, n, Duration::from_secs(120)).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    println!("{n} devices connected and settled after {connect_secs:.1} s; waiting for RSS to settle");
    let rss_idle = stable_rss().await;
    let still = ids
        .iter()
        .filter(|id| state.device_manager.live(**id).is_some_and(|l| l.status == DeviceStatus::Connected))
        .count();
    let rss_peak = status_kib("VmHWM");
    if let Phone::Local(fake) = &phone_side {
        println!("fake server (in this process) holds {} open connections", fake.connections().len());
    }
    println!(
        "idle: {:.1} MiB with {still} connected: {:.1} KiB per device over 'before' ({:.1} MiB)",
        mib(rss_idle),
        (rss_idle as f64 - rss_before as f64) / n as f64,
        mib(rss_before)
    );
    println!(
        "RESULT rss_built={rss_built} rss_before={rss_before} rss_idle={rss_idle} rss_peak={rss_peak} connected={still} \
         connect_secs={connect_secs:.2}"
    );
    shutdown.cancel();
    let stopping = Instant::now();
    run.await??;
    println!("clean shutdown of {n} sessions in {:.1} s", stopping.elapsed().as_secs_f64());
    Ok(())
}
