//! What the gateway counts for Prometheus (`GET /metrics`, `[metrics]`): HTTP requests,
//! messages, the inbound pipeline, webhook attempts, plugin runs and scheduler runs as they
//! happen; the outbound queue, devices by status and the database pools read at each scrape.
//!
//! One [`Metrics`] per gateway (not a process-wide recorder), so several gateways in one test
//! process count apart. Labels never name a tenant unless `[metrics] per_tenant` is on: a
//! tenant label multiplies the series by the number of tenants, and names customers to
//! whoever reads the metrics.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

use crate::config::MetricsConfig;
use crate::db::{Db, DbResult};

/// A label set: names are fixed strings, values come from the event.
type Labels = Vec<(&'static str, String)>;

/// The gateway's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    per_tenant: bool,
    http_requests: Family<Labels, Counter>,
    http_duration: Family<Labels, Histogram>,
    messages: Family<Labels, Counter>,
    pipeline_duration: Histogram,
    pipeline_stages: Family<Labels, Counter>,
    webhook_attempts: Family<Labels, Counter>,
    webhook_duration: Family<Labels, Histogram>,
    plugin_runs: Family<Labels, Counter>,
    plugin_duration: Family<Labels, Histogram>,
    scheduler_runs: Family<Labels, Counter>,
    queue_depth: Gauge,
    queue_oldest_age: Gauge,
    devices: Family<Labels, Gauge>,
    db_connections: Family<Labels, Gauge>,
}

/// Seconds from 1 ms to about 33 s, doubling: HTTP handlers, pipeline runs, webhook answers
/// and plugin runs all fall in this range.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    pub fn new(config: &MetricsConfig) -> Metrics {
        let mut registry = Registry::with_prefix("wa_gateway");
        let r = &mut registry;
        let histograms = || Family::<Labels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let http_requests =
            registered(r, "http_requests", "HTTP requests by route, method and status", Family::default());
        let http_duration = registered(
            r,
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route and method",
            histograms(),
        );
        let messages = registered(
            r,
            "messages",
            "Messages by direction (in, out), status (received; queued, sent, failed) and kind",
            Family::default(),
        );
        let pipeline_duration = registered(
            r,
            "pipeline_duration_seconds",
            "Time from an inbound message stored to its pipeline finished, replies handed to the queue",
            latency_histogram(),
        );
        let pipeline_stages = registered(
            r,
            "pipeline_stage_outcomes",
            "Pipeline stage results by stage (rules, plugins, webhooks) and outcome (replied, stopped, nothing)",
            Family::default(),
        );
        let webhook_attempts = registered(
            r,
            "webhook_attempts",
            "Webhook requests by mode (notify, reply) and outcome",
            Family::default(),
        );
        let webhook_duration = registered(
            r,
            "webhook_attempt_duration_seconds",
            "Time for a webhook endpoint to answer, by mode",
            histograms(),
        );
        let plugin_runs =
            registered(r, "plugin_runs", "Plugin runs on inbound messages by outcome", Family::default());
        let plugin_duration = registered(
            r,
            "plugin_run_duration_seconds",
            "Time of a plugin run on an inbound message, by outcome",
            histograms(),
        );
        let scheduler_runs = registered(
            r,
            "scheduler_runs",
            "Scheduled runs recorded, by outcome (sent: handed to the queue; failed; missed)",
            Family::default(),
        );
        let queue_depth =
            registered(r, "outbound_queue_depth", "Messages queued to be sent", Gauge::default());
        let queue_oldest_age = registered(
            r,
            "outbound_queue_oldest_age_seconds",
            "Age of the oldest queued message (0 when none)",
            Gauge::default(),
        );
        let devices = registered(r, "devices", "Linked devices by status", Family::default());
        let db_connections = registered(
            r,
            "db_connections",
            "Database pool connections by pool and state (idle, in_use)",
            Family::default(),
        );
        Metrics(Arc::new(Inner {
            registry,
            per_tenant: config.per_tenant,
            http_requests,
            http_duration,
            messages,
            pipeline_duration,
            pipeline_stages,
            webhook_attempts,
            webhook_duration,
            plugin_runs,
            plugin_duration,
            scheduler_runs,
            queue_depth,
            queue_oldest_age,
            devices,
            db_connections,
        }))
    }

    /// `labels`, with the tenant when `[metrics] per_tenant` is on.
    fn with_tenant(&self, mut labels: Labels, tenant: i64) -> Labels {
        if self.0.per_tenant {
            labels.push(("tenant", tenant.to_string()));
        }
        labels
    }

    /// An HTTP request answered; `route` is the matched route's template (no ids).
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let route_labels: Labels = vec![("route", route.to_string()), ("method", method.to_string())];
        self.0.http_duration.get_or_create(&route_labels).observe(took.as_secs_f64());
        let mut labels = route_labels;
        labels.push(("status", status.to_string()));
        self.0.http_requests.get_or_create(&labels).inc();
    }

    /// A message of `tenant` stored or moved to `status`.
    pub fn message(&self, tenant: i64, direction: &'static str, status: &str, kind: &str) {
        let labels =
            vec![("direction", direction.to_string()), ("status", status.into()), ("kind", kind.into())];
        self.0.messages.get_or_create(&self.with_tenant(labels, tenant)).inc();
    }

    /// An inbound message's pipeline finished.
    pub fn pipeline_run(&self, took: Duration) {
        self.0.pipeline_duration.observe(took.as_secs_f64());
    }

    /// What one stage of the pipeline decided.
    pub fn pipeline_stage(&self, stage: &'static str, outcome: &'static str) {
        let labels = vec![("stage", stage.to_string()), ("outcome", outcome.to_string())];
        self.0.pipeline_stages.get_or_create(&labels).inc();
    }

    /// A webhook request of `tenant` answered (or not) after `took`.
    pub fn webhook_attempt(&self, tenant: i64, mode: &'static str, outcome: &str, took: Duration) {
        let mode_labels: Labels = vec![("mode", mode.to_string())];
        self.0.webhook_duration.get_or_create(&mode_labels).observe(took.as_secs_f64());
        let mut labels = mode_labels;
        labels.push(("outcome", outcome.to_string()));
        self.0.webhook_attempts.get_or_create(&self.with_tenant(labels, tenant)).inc();
    }

    /// A plugin of `tenant` ran on an inbound message.
    pub fn plugin_run(&self, tenant: i64, outcome: &str, took: Duration) {
        let labels: Labels = vec![("outcome", outcome.to_string())];
        self.0.plugin_duration.get_or_create(&labels).observe(took.as_secs_f64());
        self.0.plugin_runs.get_or_create(&self.with_tenant(labels, tenant)).inc();
    }

    /// A scheduled message came due and was handled with `outcome`.
    pub fn scheduler_run(&self, outcome: &'static str) {
        self.0.scheduler_runs.get_or_create(&vec![("outcome", outcome.to_string())]).inc();
    }

    /// Reads what is measured at scrape time from the database, then writes every metric in
    /// the OpenMetrics text format (which Prometheus reads).
    pub async fn render(&self, db: &Db) -> DbResult<String> {
        let gauges = db.metrics_snapshot().await?;
        let m = &self.0;
        m.queue_depth.set(gauges.queued);
        m.queue_oldest_age.set(gauges.oldest_queued_age_ms / 1000);
        // A status no device has any more disappears rather than staying at its last count.
        m.devices.clear();
        for (status, n) in gauges.devices {
            m.devices.get_or_create(&vec![("status", status)]).set(n);
        }
        for pool in db.pool_usage() {
            let idle = pool.idle as i64;
            let in_use = pool.size as i64 - idle;
            m.db_connections
                .get_or_create(&vec![("pool", pool.name.into()), ("state", "idle".into())])
                .set(idle);
            m.db_connections
                .get_or_create(&vec![("pool", pool.name.into()), ("state", "in_use".into())])
                .set(in_use);
        }
        let mut text = String::new();
        encode(&mut text, &m.registry).expect("writing to a String cannot fail");
        Ok(text)
    }
}

/// Registers `metric` under `name` with `help` and hands it back (the registry keeps a shared
/// handle of it).
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
