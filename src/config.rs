//! Configuration: the embedded `gateway.toml` defaults, then a file, then `GATEWAY_*` variables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The documented defaults, compiled into the binary.
pub const DEFAULTS: &str = include_str!("../gateway.toml");

/// Why the configuration could not be loaded. The message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // `reason` is shown in the message, not chained as a source, so it is printed once.
    #[error("cannot read config file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: std::io::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub admin: AdminConfig,
    pub whatsapp: WhatsappConfig,
    pub limits: LimitsConfig,
    pub packages: BTreeMap<String, PackageConfig>,
    pub rules: RulesConfig,
    pub scheduler: SchedulerConfig,
    pub webhooks: WebhooksConfig,
    pub plugins: PluginsConfig,
    pub dashboard: DashboardConfig,
    pub media: MediaConfig,
    pub cluster: ClusterConfig,
    pub metrics: MetricsConfig,
    pub retention: RetentionConfig,
    pub log: LogConfig,
}

/// How long the gateway keeps what piles up, in days (0: forever); a package may set its own
/// (`[packages.NAME.retention]`). Media bytes age by `[media] retention_days`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub messages_days: u32,
    pub webhook_logs_days: u32,
    pub activity_logs_days: u32,
    /// Minutes between sweeps (one process of a cluster sweeps each time).
    pub interval_minutes: u64,
    /// Rows per delete statement; the sweep pauses a moment between batches.
    pub batch_size: u32,
}

/// A package's own retention, in days (0: forever); what it leaves out comes from `[retention]`
/// and `[media] retention_days`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRetention {
    pub messages_days: Option<u32>,
    pub webhook_logs_days: Option<u32>,
    pub activity_logs_days: Option<u32>,
    pub media_days: Option<u32>,
}

/// `GET /metrics` for Prometheus.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether `/metrics` answers (otherwise it is 404).
    pub enabled: bool,
    /// The bearer token a scraper sends; the admin token works too. Empty: no token needed.
    pub token: String,
    /// Whether counters carry a `tenant` label (one series per tenant; names tenants' ids).
    pub per_tenant: bool,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .field("per_tenant", &self.per_tenant)
            .finish()
    }
}

/// Several gateway processes on one PostgreSQL database: each process renews a lease on the
/// database's clock and owns the sessions of some devices.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The process's name in the cluster view; empty: host name and process id. A process
    /// restarted under the same configured name takes its previous run's devices at once.
    pub node_name: String,
    /// Milliseconds after its last renewal that a silent process counts as dead.
    pub node_ttl_ms: u64,
    /// Milliseconds between renewals.
    pub renew_interval_ms: u64,
    /// Milliseconds after the start of its last good renewal that a process which cannot
    /// renew stops its sessions (before anyone else may take them).
    pub renew_deadline_ms: u64,
    /// Milliseconds between looks for devices without a live owner and queued messages.
    pub scan_interval_ms: u64,
    /// Most devices a process gives away per scan when it holds more than its share.
    pub handover_batch: usize,
}

/// Where media bytes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaStoreKind {
    Filesystem,
    S3,
}

/// Whether inbound media is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaDownload {
    Always,
    Never,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    pub store: MediaStoreKind,
    pub path: PathBuf,
    pub download: MediaDownload,
    pub max_bytes: u64,
    pub retention_days: u64,
    pub link_ttl: u64,
    pub download_concurrency: usize,
    pub s3: S3Config,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub prefix: String,
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &if self.secret_access_key.is_empty() { "" } else { "<redacted>" })
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub public_url: String,
    pub body_limit: usize,
    pub request_timeout: u64,
    pub shutdown_grace: u64,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name the client.
    pub trusted_proxies: Vec<TrustedProxy>,
}

/// A trusted proxy: one address (`10.0.0.1`, `::1`) or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxy(ipnet::IpNet);

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<TrustedProxy> for String {
    fn from(p: TrustedProxy) -> String {
        p.to_string()
    }
}

impl TrustedProxy {
    /// Whether `ip` is this proxy (an IPv4 address written as IPv6, `::ffff:a.b.c.d`, counts
    /// as the IPv4 address).
    pub fn contains(&self, ip: &std::net::IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl std::str::FromStr for TrustedProxy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Ok(TrustedProxy(ipnet::IpNet::from(ip.to_canonical())));
        }
        s.parse::<ipnet::IpNet>()
            .map(|net| TrustedProxy(net.trunc()))
            .map_err(|_| format!("`{s}` is neither an IP address nor a network like 10.0.0.0/8"))
    }
}

impl std::fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: u64,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub token: String,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .finish()
    }
}

/// Which WhatsApp driver runs the device sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriverKind {
    WhatsappWeb,
    Simulator,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {
    pub driver: DriverKind,
    pub default_country_code: String,
    pub send_min_gap_ms: u64,
    pub send_jitter_ms: u64,
    pub send_wait_timeout: u64,
    pub send_max_attempts: u32,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    pub max_image_bytes: usize,
    pub max_video_bytes: usize,
    pub max_audio_bytes: usize,
    pub max_document_bytes: usize,
    pub media_fetch_timeout: u64,
    pub device_name: String,
    pub version: String,
    /// With the simulator driver: `host:port` of a simulated network shared by several
    /// processes (served by a test harness); empty: an in-process network of its own.
    pub simulator_network: String,
}

impl WhatsappConfig {
    /// The pinned WhatsApp Web version, when one is configured.
    pub fn wa_version(&self) -> Option<(u32, u32, u32)> {
        let mut parts = self.version.trim().split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next()??, parts.next()??, parts.next()??, parts.next()) {
            (a, b, c, None) => Some((a, b, c)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub default_package: String,
}

/// A package's limits as written in TOML: absent or negative means unlimited.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    pub devices: Option<i64>,
    pub messages_per_month: Option<i64>,
    pub auto_replies: Option<i64>,
    pub scheduled_messages: Option<i64>,
    pub plugins: Option<i64>,
    pub webhook_endpoints: Option<i64>,
    pub requests_per_minute: Option<i64>,
    /// API keys a tenant may hold at once (revoked ones do not count).
    pub api_keys: Option<i64>,
    /// How long this package's tenants' data is kept, where it differs from `[retention]`.
    #[serde(default)]
    pub retention: PackageRetention,
}

/// Keyword auto-replies.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// The pipeline's loop guard: most automatic replies (all stages together) to one chat of
    /// one device per minute.
    pub max_replies_per_chat_per_minute: u32,
}

/// The scheduled-message worker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Milliseconds between looks for due messages.
    pub poll_interval_ms: u64,
    /// Seconds a due message may be late and still be sent; older ones are `missed`.
    pub missed_grace: u64,
    /// Seconds a claim on a due message lasts before another process may take it over.
    pub claim_lease: u64,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub timeout: u64,
    pub reply_timeout: u64,
    pub retry_schedule: Vec<u64>,
    pub allow_private_targets: bool,
    pub disable_after: u64,
    /// Base64 of 32 bytes that encrypts endpoint secrets at rest; empty: generated and kept
    /// in the database on first start.
    pub secret_key: String,
    /// Most deliveries in flight to one endpoint at a time (across processes).
    pub max_in_flight: u32,
    /// Most deliveries in flight per gateway process.
    pub concurrency: u32,
}

impl std::fmt::Debug for WebhooksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhooksConfig")
            .field("timeout", &self.timeout)
            .field("reply_timeout", &self.reply_timeout)
            .field("retry_schedule", &self.retry_schedule)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("disable_after", &self.disable_after)
            .field("secret_key", &if self.secret_key.is_empty() { "" } else { "<redacted>" })
            .field("max_in_flight", &self.max_in_flight)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    pub max_size: usize,
    pub memory_limit: usize,
    pub cpu_ms: u64,
    pub timeout_ms: u64,
    pub max_actions: usize,
    pub max_reply_bytes: usize,
    pub max_log_lines: usize,
    pub max_log_line_bytes: usize,
    pub kv_max_key_bytes: usize,
    pub kv_max_value_bytes: usize,
    pub kv_quota_bytes: usize,
    pub disable_after_failures: u32,
    /// Plugin runs of one tenant executing at once; 0 for half the CPUs (at least 1).
    pub tenant_concurrency: usize,
    /// Milliseconds a run waits for one of those before it is skipped as `busy`.
    pub queue_timeout_ms: u64,
    /// Seconds before a plugin disabled for failures may be enabled again.
    pub reenable_cooldown: u64,
    /// CPU milliseconds after which a run lowers its thread's priority; 0 for never.
    pub lower_priority_after_ms: u64,
    /// Wall-clock milliseconds of a run of a plugin that imports `http`.
    pub http_timeout_ms: u64,
    /// Milliseconds one HTTP request of a plugin may take.
    pub http_request_timeout_ms: u64,
    /// HTTP requests one run may make.
    pub http_max_requests: usize,
    /// Largest request body a plugin may send, in bytes.
    pub http_max_request_bytes: usize,
    /// Largest response body a plugin may receive, in bytes.
    pub http_max_response_bytes: usize,
    /// Runs of one tenant that may wait on HTTP at once.
    pub http_concurrency: usize,
    /// Let plugins reach private and internal addresses.
    pub allow_private_targets: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    pub enabled: bool,
    pub session_hours: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl PluginsConfig {
    /// Plugin runs of one tenant that may execute at once: `tenant_concurrency`, or half the
    /// CPUs (at least one) when it is 0.
    pub fn runs_per_tenant(&self) -> usize {
        match self.tenant_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1),
            n => n,
        }
    }
}

impl Config {
    /// Loads the defaults, then `file` (or `./gateway.toml` when it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Like [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        let path = match file {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("gateway.toml")).filter(|p| p.exists()),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path)
                .map_err(|reason| ConfigError::Unreadable { path: path.clone(), reason })?;
            figment = figment.merge(Toml::string(&text));
        }
        // Only variables with a section (`GATEWAY_SECTION__KEY`) are configuration.
        let env_toml = env_overrides(env)?;
        figment = figment.merge(Toml::string(&env_toml));
        let config: Config = figment.extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document on top of the defaults (tests and `check-config`).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            Figment::from(Toml::string(DEFAULTS)).merge(Toml::string(text)).extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid(format!("`{key}`: {why}")));
        if self.media.store == MediaStoreKind::S3 && self.media.s3.bucket.trim().is_empty() {
            return bad("media.s3.bucket", "is required when media.store is \"s3\"");
        }
        if self.media.link_ttl == 0 || self.media.download_concurrency == 0 {
            return bad("media.link_ttl", "media.link_ttl and media.download_concurrency must be positive");
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return bad("database.url", "must start with sqlite: or postgres://");
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1");
        }
        if !self.packages.contains_key(&self.limits.default_package) {
            return bad("limits.default_package", "names no package in [packages]");
        }
        let cc = &self.whatsapp.default_country_code;
        if cc.is_empty() || cc.len() > 4 || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.starts_with('0') {
            return bad("whatsapp.default_country_code", "must be 1 to 4 digits, not starting with 0");
        }
        if self.whatsapp.reconnect_min_ms == 0
            || self.whatsapp.reconnect_max_ms < self.whatsapp.reconnect_min_ms
        {
            return bad(
                "whatsapp.reconnect_max_ms",
                "must be at least whatsapp.reconnect_min_ms, which must be positive",
            );
        }
        if !self.whatsapp.version.is_empty() && self.whatsapp.wa_version().is_none() {
            return bad("whatsapp.version", "must be empty or three numbers like 2.3000.1023456789");
        }
        let network = &self.whatsapp.simulator_network;
        if !network.is_empty() {
            if self.whatsapp.driver != DriverKind::Simulator {
                return bad("whatsapp.simulator_network", "needs whatsapp.driver = \"simulator\"");
            }
            if network
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return bad("whatsapp.simulator_network", "must be host:port");
            }
        }
        if self.whatsapp.send_max_attempts == 0 {
            return bad("whatsapp.send_max_attempts", "must be at least 1");
        }
        if self.retention.batch_size == 0 || self.retention.interval_minutes == 0 {
            return bad(
                "retention.batch_size",
                "retention.batch_size and retention.interval_minutes must be at least 1",
            );
        }
        if self.scheduler.poll_interval_ms == 0 {
            return bad("scheduler.poll_interval_ms", "must be at least 1");
        }
        if self.scheduler.claim_lease == 0 {
            return bad("scheduler.claim_lease", "must be at least 1 second");
        }
        if self.webhooks.retry_schedule.is_empty() {
            return bad("webhooks.retry_schedule", "needs at least one entry");
        }
        if self.webhooks.timeout == 0 || self.webhooks.reply_timeout == 0 {
            return bad(
                "webhooks.timeout",
                "webhooks.timeout and webhooks.reply_timeout must be at least 1 second",
            );
        }
        if self.webhooks.max_in_flight == 0 || self.webhooks.concurrency == 0 {
            return bad(
                "webhooks.max_in_flight",
                "webhooks.max_in_flight and webhooks.concurrency must be at least 1",
            );
        }
        let p = &self.plugins;
        if p.memory_limit < 1 << 20 {
            return bad("plugins.memory_limit", "must be at least 1 MiB (1048576)");
        }
        if p.cpu_ms == 0 || p.timeout_ms < p.cpu_ms {
            return bad("plugins.timeout_ms", "must be at least plugins.cpu_ms, which must be positive");
        }
        if p.max_size == 0 || p.max_reply_bytes == 0 || p.kv_max_key_bytes == 0 {
            return bad(
                "plugins.max_size",
                "plugins.max_size, max_reply_bytes and kv_max_key_bytes must be positive",
            );
        }
        if p.disable_after_failures == 0 {
            return bad("plugins.disable_after_failures", "must be at least 1");
        }
        if p.http_timeout_ms < p.timeout_ms || p.http_request_timeout_ms == 0 || p.http_concurrency == 0 {
            return bad(
                "plugins.http_timeout_ms",
                "must be at least plugins.timeout_ms; http_request_timeout_ms and http_concurrency \
                 must be positive",
            );
        }
        let c = &self.cluster;
        if c.renew_interval_ms == 0
            || c.renew_deadline_ms <= c.renew_interval_ms
            || c.node_ttl_ms <= c.renew_deadline_ms
        {
            return bad(
                "cluster.renew_deadline_ms",
                "needs 0 < cluster.renew_interval_ms < renew_deadline_ms < node_ttl_ms",
            );
        }
        if c.scan_interval_ms == 0 || c.handover_batch == 0 {
            return bad(
                "cluster.scan_interval_ms",
                "cluster.scan_interval_ms and handover_batch must be positive",
            );
        }
        if self.server.body_limit < 1024 {
            return bad("server.body_limit", "must be at least 1024 bytes");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return bad("log.level", "is not a valid level or filter");
        }
        Ok(())
    }

    /// The package named `name`, if configured.
    pub fn package(&self, name: &str) -> Option<&PackageConfig> {
        self.packages.get(name)
    }
}

/// Turns `GATEWAY_SECTION__KEY=value` variables into a TOML document, so values are typed the
/// same way as in the file (numbers, booleans, arrays) and strings need no quotes.
fn env_overrides(env: &[(String, String)]) -> Result<String, ConfigError> {
    let mut table = toml::Table::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("GATEWAY_") else {
            continue;
        };
        let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
            continue;
        }
        let parsed = parse_env_value(value);
        let mut cursor = &mut table;
        for part in &parts[..parts.len() - 1] {
            let entry = cursor.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cursor = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "environment variable {name} conflicts with another variable"
                    )))
                }
            };
        }
        cursor.insert(parts[parts.len() - 1].clone(), parsed);
    }
    Ok(toml::to_string(&table).unwrap_or_default())
}

fn parse_env_value(value: &str) -> toml::Value {
    // A bare TOML value (number, bool, array) when it parses as one; else the raw string.
    let doc = format!("v = {value}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

fn describe(err: figment::Error) -> ConfigError {
    let messages: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let what = match &e.kind {
                figment::error::Kind::UnknownField(field, _) => {
                    // figment's path may already end with the unknown field.
                    let full = if e.path.last() == Some(field) {
                        key
                    } else if key.is_empty() {
                        field.clone()
                    } else {
                        format!("{key}.{field}")
                    };
                    return format!("unknown key `{full}`");
                }
                figment::error::Kind::MissingField(field) => {
                    let full = if key.is_empty() { field.to_string() } else { format!("{key}.{field}") };
                    return format!("missing key `{full}`");
                }
                kind => kind.to_string(),
            };
            if key.is_empty() {
                what
            } else {
                format!("`{key}`: {what}")
            }
        })
        .collect();
    ConfigError::Invalid(messages.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_load() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(c.database.url, "sqlite:data/gateway.db");
        assert_eq!(c.whatsapp.driver, DriverKind::WhatsappWeb);
        assert_eq!(c.packages["basic"].messages_per_month, Some(1000));
        assert_eq!(c.packages["enterprise"].devices, Some(-1));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = Config::from_toml("[server]\nbindd = \"x\"").unwrap_err().to_string();
        assert!(err.contains("server.bindd"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = Config::from_toml("[server]\nbind = \"nope\"").unwrap_err().to_string();
        assert!(err.contains("server.bind"), "{err}");
        let err =
            Config::from_toml("[whatsapp]\nsimulator_network = \"127.0.0.1:9\"").unwrap_err().to_string();
        assert!(err.contains("needs whatsapp.driver"), "{err}");
        let toml = "[whatsapp]\ndriver = \"simulator\"\nsimulator_network = \"nowhere\"";
        assert!(Config::from_toml(toml).unwrap_err().to_string().contains("host:port"));
        let toml = "[whatsapp]\ndriver = \"simulator\"\nsimulator_network = \"127.0.0.1:4100\"";
        assert_eq!(Config::from_toml(toml).unwrap().whatsapp.simulator_network, "127.0.0.1:4100");
        let err = Config::from_toml("[whatsapp]\ndriver = \"telegram\"").unwrap_err().to_string();
        assert!(err.contains("whatsapp.driver"), "{err}");
    }

    #[test]
    fn environment_variables_override_the_file() {
        let env = vec![
            ("GATEWAY_DATABASE__URL".to_string(), "postgres://x/y".to_string()),
            ("GATEWAY_WEBHOOKS__ALLOW_PRIVATE_TARGETS".to_string(), "true".to_string()),
            ("GATEWAY_SERVER__BIND".to_string(), "127.0.0.1:0".to_string()),
            ("GATEWAY_PACKAGES__BASIC__DEVICES".to_string(), "3".to_string()),
            ("UNRELATED".to_string(), "1".to_string()),
        ];
        let c = Config::load_from(None, &env).unwrap();
        assert_eq!(c.database.url, "postgres://x/y");
        assert!(c.webhooks.allow_private_targets);
        assert_eq!(c.server.bind.port(), 0);
        assert_eq!(c.packages["basic"].devices, Some(3));
    }

    #[test]
    fn an_unknown_environment_key_is_refused() {
        let env = vec![("GATEWAY_SERVER__BINDD".to_string(), "x".to_string())];
        let err = Config::load_from(None, &env).unwrap_err().to_string();
        assert!(err.contains("server.bindd"), "{err}");
    }
}
