//! The servers under load, each a child process so its CPU and memory can be read from
//! `/proc/<pid>`: the release gateway (`wa-gateway serve`, simulator driver) and the ceiling,
//! a minimal axum server that is this same benchmark binary started again with
//! [`CEILING_CHILD`] set.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Set in the environment of the ceiling child: the binary serves the ceiling and nothing else.
pub const CEILING_CHILD: &str = "LOAD_BENCH_CEILING_CHILD";
/// The admin token the benchmark's gateways are started with.
pub const ADMIN_TOKEN: &str = "load-bench-admin-token-3c5e1d7f09ab";

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
    /// Lines the process wrote to stderr (its warnings), the last few kept.
    pub log: Arc<Mutex<LogTail>>,
    /// The PostgreSQL database the server uses, if any: its backends' CPU counts too.
    database: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// How many lines a server logged, and the last ones.
#[derive(Debug, Default)]
pub struct LogTail {
    pub lines: u64,
    pub last: Vec<String>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// What to read this server's CPU time from.
    pub fn probe(&self) -> Probe {
        Probe { pid: self.pid(), database: self.database.clone() }
    }

    /// Stops the process (SIGKILL: nothing of it is measured any more) and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Warnings logged so far: their number and the last one.
    pub fn warnings(&self) -> (u64, Option<String>) {
        let log = self.log.lock().unwrap();
        (log.lines, log.last.last().cloned())
    }
}

/// Starts `wa-gateway serve` (the release binary cargo built for this benchmark) on
/// `database_url` with the simulator driver, send pacing 0, log level `warn`, webhooks to
/// loopback allowed and the reply loop guard opened wide (the benchmark's contacts write many
/// times a minute). Waits until it listens.
pub async fn start_gateway(database_url: &str, dir: tempfile::TempDir) -> Result<Server> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wa-gateway"));
    command.arg("serve").current_dir(dir.path());
    // Only what this benchmark sets: no configuration variable of the caller leaks in.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("GATEWAY_") && n.contains("__") || n == "RUST_LOG") {
            command.env_remove(name);
        }
    }
    command
        .env("GATEWAY_SERVER__BIND", "127.0.0.1:0")
        .env("GATEWAY_DATABASE__URL", database_url)
        .env("GATEWAY_ADMIN__TOKEN", ADMIN_TOKEN)
        .env("GATEWAY_WHATSAPP__DRIVER", "simulator")
        .env("GATEWAY_WHATSAPP__SEND_MIN_GAP_MS", "0")
        .env("GATEWAY_WHATSAPP__SEND_JITTER_MS", "0")
        .env("GATEWAY_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")
        .env("GATEWAY_RULES__MAX_REPLIES_PER_CHAT_PER_MINUTE", "1000000")
        .env("GATEWAY_LOG__LEVEL", std::env::var("LOAD_LOG").unwrap_or_else(|_| "warn".into()));
    let mut server =
        spawn(command, "wa-gateway listening on ", Some(dir)).await.context("the gateway did not start")?;
    if database_url.starts_with("postgres") {
        let url = reqwest::Url::parse(database_url)?;
        server.database = Some(url.path().trim_start_matches('/').to_string());
    }
    Ok(server)
}

/// Starts the ceiling: this binary again, serving [`serve_ceiling`].
pub async fn start_ceiling() -> Result<Server> {
    let mut command = Command::new(std::env::current_exe()?);
    command.env(CEILING_CHILD, "1");
    spawn(command, "ceiling listening on ", None).await.context("the ceiling server did not start")
}

async fn spawn(mut command: Command, ready: &str, dir: Option<tempfile::TempDir>) -> Result<Server> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the process")?;
    let log = Arc::new(Mutex::new(LogTail::default()));
    let stderr = child.stderr.take().context("no stderr")?;
    let tail = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = tail.lock().unwrap();
            log.lines += 1;
            log.last.push(line);
            if log.last.len() > 5 {
                log.last.remove(0);
            }
        }
    });
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix(ready) {
                return Ok(url.trim().to_string());
            }
        }
        bail!("exited before listening: {:?}", log.lock().unwrap().last)
    })
    .await
    .context("not listening after 120 s")??;
    // Keep reading so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = if url.starts_with("http://") { url } else { format!("http://{url}") };
    let addr: SocketAddr = base.trim_start_matches("http://").trim_end_matches('/').parse()?;
    Ok(Server { child, addr, base: format!("http://{addr}"), log, database: None, _dir: dir })
}

/// The ceiling: a minimal axum server, `GET /hello` answering a short text and `POST /echo`
/// answering the JSON it was sent (parsed and written again). Runs in the child process.
pub async fn serve_ceiling() -> Result<()> {
    use axum::routing::{get, post};
    use axum::Json;
    let app = axum::Router::new()
        .route("/hello", get(|| async { "Hello, World!" }))
        .route("/echo", post(|Json(body): Json<serde_json::Value>| async move { Json(body) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("ceiling listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// CPU seconds used so far by a server, by the PostgreSQL backends serving its database (on
/// this machine) and by this benchmark process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub server: f64,
    pub database: f64,
    pub bench: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        Cpu {
            server: self.server - earlier.server,
            database: self.database - earlier.database,
            bench: self.bench - earlier.bench,
        }
    }
}

impl Cpu {
    /// Each part divided by `n` (operations).
    pub fn per(self, n: f64) -> Cpu {
        let n = n.max(1.0);
        Cpu { server: self.server / n, database: self.database / n, bench: self.bench / n }
    }
}

/// Where a server's CPU time is read: its process and, on PostgreSQL, the backend processes
/// whose title names its database (a backend that exits between two samples is missed; the
/// gateway's pool keeps its connections).
#[derive(Debug, Clone)]
pub struct Probe {
    pid: u32,
    database: Option<String>,
}

impl Probe {
    pub fn has_database(&self) -> bool {
        self.database.is_some()
    }

    pub fn sample(&self) -> Cpu {
        let database = match &self.database {
            Some(name) => postgres_backends(name).into_iter().map(cpu_seconds).sum(),
            None => 0.0,
        };
        Cpu { server: cpu_seconds(self.pid), database, bench: cpu_seconds(std::process::id()) }
    }
}

/// The processes whose command line (a PostgreSQL backend's title: `postgres: user database
/// host(port) state`) names `database`.
fn postgres_backends(database: &str) -> Vec<u32> {
    let needle = format!(" {database} ");
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// User plus system CPU time of process `pid` so far, in seconds (all its threads).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // The command name may contain spaces and parentheses: the fields follow its last `)`.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime) are the 12th and 13th after the name.
    let ticks: u64 =
        fields.get(11..13).map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum()).unwrap_or(0);
    ticks as f64 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// The resident set of process `pid` (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
