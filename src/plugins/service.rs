//! The plugin service: uploads (validate, compile, store), a cache of components ready to run,
//! runs with their record in `webhook_logs`, and the failure tally that disables a plugin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::fairness::Fairness;
use super::hosts::AllowedHosts;
use super::runtime::{
    Input, InvalidPlugin, KvAccess, NetAccess, Outcome, Prepared, RunInput, RunReport, Runtime,
    TransformInput,
};
use crate::config::PluginsConfig;
use crate::db::plugins::{NewPlugin, PluginRow, Tally};
use crate::db::webhooks::NewLog;
use crate::db::{without_nul, Db, DbError};
use crate::metrics::Metrics;
use crate::webhooks::events::{EventType, PluginFailedData};
use crate::webhooks::{truncate, Events};

/// Largest request or response kept in a run's log row.
const LOG_BODY_BYTES: usize = 4096;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the plugin is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("not a valid plugin: {0}")]
    Invalid(String),
    #[error("the plugin limit of the package is reached")]
    OverLimit,
    #[error("a plugin with this name exists")]
    NameTaken,
    #[error(transparent)]
    Db(DbError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a run is about, for its log row and its `plugin.failed` event.
#[derive(Debug, Clone, Default)]
pub struct RunAbout {
    /// The event the run handled: `message.received` for an auto-reply plugin.
    pub event: String,
    pub message_id: Option<i64>,
    pub device_id: Option<i64>,
    /// The webhook endpoint and delivery a transformation ran for.
    pub endpoint_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub webhook_id: Option<String>,
}

impl RunAbout {
    fn message(input: &RunInput) -> RunAbout {
        RunAbout {
            event: EventType::MessageReceived.as_str().into(),
            message_id: (input.message.id > 0).then_some(input.message.id),
            device_id: (input.context.device_id > 0).then_some(input.context.device_id),
            ..RunAbout::default()
        }
    }
}

/// A plugin to upload.
pub struct Upload {
    pub name: String,
    pub wasm: Vec<u8>,
    pub enabled: bool,
    pub devices: Vec<i64>,
    pub run_order: i64,
    pub config: String,
}

/// The plugin service. Cheap to clone.
#[derive(Clone)]
pub struct Plugins {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    runtime: Runtime,
    config: PluginsConfig,
    events: Events,
    /// Components ready to run, by plugin id, with the hash of the component they were made
    /// from (a replaced component is loaded again).
    cache: Mutex<HashMap<i64, (String, Prepared)>>,
    fairness: Fairness,
    metrics: Metrics,
}

impl Plugins {
    pub fn new(db: Db, runtime: Runtime, config: PluginsConfig, events: Events, metrics: Metrics) -> Plugins {
        let fairness = Fairness::new(
            config.runs_per_tenant(),
            config.http_concurrency,
            std::time::Duration::from_millis(config.queue_timeout_ms),
        );
        Plugins {
            inner: Arc::new(Inner {
                db,
                runtime,
                config,
                events,
                cache: Mutex::new(HashMap::new()),
                fairness,
                metrics,
            }),
        }
    }

    pub fn config(&self) -> &PluginsConfig {
        &self.inner.config
    }

    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Validates, compiles and stores an uploaded plugin (`limit`: the package's plugin count,
    /// `None` = unlimited).
    pub async fn upload(
        &self,
        tenant: i64,
        upload: Upload,
        limit: Option<i64>,
    ) -> Result<PluginRow, UploadError> {
        let max = self.inner.config.max_size;
        if upload.wasm.len() > max {
            return Err(UploadError::TooLarge { max });
        }
        let runtime = self.inner.runtime.clone();
        let wasm = Arc::new(upload.wasm);
        let bytes = wasm.clone();
        // Compiling takes from milliseconds to seconds of CPU: off the async workers.
        let compiled = tokio::task::spawn_blocking(move || runtime.compile(&bytes))
            .await
            .map_err(|e| UploadError::Internal(e.to_string()))?
            .map_err(|e: InvalidPlugin| UploadError::Invalid(e.to_string()))?;
        let sha256 = hex::encode(Sha256::digest(wasm.as_slice()));
        let new = NewPlugin {
            kind: compiled.prepared.kind().as_str().to_string(),
            name: upload.name,
            sha256: sha256.clone(),
            wasm: Arc::unwrap_or_clone(wasm),
            compiled: compiled.artefact,
            engine: self.inner.runtime.engine_id().to_string(),
            enabled: upload.enabled,
            devices: upload.devices,
            run_order: upload.run_order,
            config: upload.config,
        };
        let row = match self.inner.db.create_plugin(tenant, &new, limit).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(UploadError::OverLimit),
            Err(DbError::Conflict(_)) => return Err(UploadError::NameTaken),
            Err(e) => return Err(UploadError::Db(e)),
        };
        self.cache().insert(row.id, (sha256, compiled.prepared));
        Ok(row)
    }

    /// Forgets a deleted plugin.
    pub fn forget(&self, plugin_id: i64) {
        self.cache().remove(&plugin_id);
        self.inner.fairness.forget(plugin_id);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (String, Prepared)>> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plugin ready to run: from the cache, else from its stored artefact (compiled
    /// again, and stored, only when wasmtime or its settings changed).
    async fn prepared(&self, row: &PluginRow) -> Result<Prepared, String> {
        if let Some((sha, prepared)) = self.cache().get(&row.id) {
            if *sha == row.sha256 {
                return Ok(prepared.clone());
            }
        }
        let code = self
            .inner
            .db
            .plugin_code(row.user_id, row.id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the plugin was deleted".to_string())?;
        let runtime = self.inner.runtime.clone();
        let (wasm, compiled, engine) = (code.wasm, code.compiled, code.engine);
        let loaded = tokio::task::spawn_blocking(move || {
            let artefact = compiled.as_deref().zip(engine.as_deref());
            runtime.load(&wasm, artefact)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if let Some(artefact) = &loaded.recompiled {
            tracing::info!(plugin_id = row.id, "plugin compiled again for this wasmtime");
            let engine = self.inner.runtime.engine_id();
            if let Err(e) = self.inner.db.store_plugin_artefact(row.user_id, row.id, artefact, engine).await {
                tracing::warn!(plugin_id = row.id, error = %e, "cannot store the compiled plugin");
            }
        }
        self.cache().insert(row.id, (code.sha256, loaded.prepared.clone()));
        Ok(loaded.prepared)
    }

    /// Runs a plugin on a message of the inbound pipeline and records the run, once the
    /// plugin's gate lets it in (see [`super::fairness`]). `None` when the plugin was disabled
    /// by other runs while this one waited: it did not run.
    pub async fn run_for_message(&self, row: &PluginRow, input: RunInput) -> Option<RunReport> {
        let limit = i64::from(self.inner.config.disable_after_failures);
        let gate = self.inner.fairness.gate(row.id, row.updated_at, row.failures);
        let Some(admission) = gate.admit(limit).await else {
            tracing::debug!(
                plugin_id = row.id,
                message_id = input.message.id,
                "plugin disabled meanwhile, not run"
            );
            return None;
        };
        let about = RunAbout::message(&input);
        let (report, tally) = self.run_recorded(row, input.into(), about, false).await;
        self.inner.metrics.plugin_run(row.user_id, report.outcome.as_str(), report.latency);
        match tally {
            Some(tally) => admission.finish(tally.failures, tally.runs, tally.disabled_now),
            None => drop(admission),
        }
        Some(report)
    }

    /// Runs a plugin on one message and records the run (log row, failure tally, and
    /// `plugin.failed` when it failed). `dry_run` reads the key-value store but keeps no write
    /// and records nothing.
    pub async fn run(&self, row: &PluginRow, input: RunInput, dry_run: bool) -> RunReport {
        let about = RunAbout::message(&input);
        self.run_recorded(row, input.into(), about, dry_run).await.0
    }

    /// Runs a transformation on one event and records the run like a message's (log row,
    /// failure tally, `plugin.failed`). `dry_run` as for [`Plugins::run`]. A disabled plugin
    /// does not run (unless dry): the answer is an `error` run, recorded.
    pub async fn transform(
        &self,
        row: &PluginRow,
        input: TransformInput,
        about: RunAbout,
        dry_run: bool,
    ) -> RunReport {
        if !row.enabled && !dry_run {
            let why = match &row.disabled_reason {
                Some(reason) => format!("the plugin is disabled: {reason}"),
                None => "the plugin is disabled".to_string(),
            };
            let report = RunReport::failure(Outcome::Error, why, std::time::Duration::ZERO);
            self.log_run(row, &about, &serde_json::to_string(&input).unwrap_or_default(), &report).await;
            return report;
        }
        let (report, _) = self.run_recorded(row, input.into(), about, dry_run).await;
        if !dry_run {
            self.inner.metrics.plugin_run(row.user_id, report.outcome.as_str(), report.latency);
        }
        report
    }

    /// [`Plugins::run`], with the failure tally after the run when one was recorded. A run
    /// waits for one of its tenant's turns; without one in time it is skipped as `busy`.
    async fn run_recorded(
        &self,
        row: &PluginRow,
        input: Input,
        about: RunAbout,
        dry_run: bool,
    ) -> (RunReport, Option<Tally>) {
        let started = std::time::Instant::now();
        let request = match &input {
            Input::Message(m) => serde_json::to_string(m),
            Input::Event(e) => serde_json::to_string(e),
        }
        .unwrap_or_default();
        let Some(turn) = self.inner.fairness.turn(row.user_id).await else {
            let why = format!(
                "the account's plugin runs were all busy for {} ms; this run was skipped",
                self.inner.config.queue_timeout_ms
            );
            let report = RunReport::failure(Outcome::Busy, why, started.elapsed());
            if !dry_run {
                self.log_run(row, &about, &request, &report).await;
            }
            return (report, None);
        };
        let prepared = match self.prepared(row).await {
            Ok(p) => p,
            Err(why) => {
                let why = format!("cannot load the plugin: {why}");
                let report = RunReport::failure(Outcome::Internal, why, std::time::Duration::ZERO);
                let tally = if dry_run { None } else { self.record(row, &about, &request, &report).await };
                return (report, tally);
            }
        };
        let (db, tenant, plugin_id) = (self.inner.db.clone(), row.user_id, row.id);
        let kv = if dry_run {
            KvAccess::ReadOnly { db, tenant, plugin_id }
        } else {
            KvAccess::Store { db, tenant, plugin_id }
        };
        // Only a plugin that imports `http` has hosts to reach: the others skip the parse.
        let allowed = match prepared.uses_http() {
            true => AllowedHosts::from_stored(Some(&row.allowed_hosts)),
            false => AllowedHosts::default(),
        };
        let net = NetAccess { allowed, log_bodies: row.log_http_bodies, turn: Some(turn) };
        let report = self.inner.runtime.run_with(&prepared, input, kv, net).await;
        let tally = if dry_run { None } else { self.record(row, &about, &request, &report).await };
        if report.outcome != Outcome::Success {
            tracing::info!(
                plugin_id = row.id,
                message_id = about.message_id,
                delivery_id = about.delivery_id,
                outcome = report.outcome.as_str(),
                error = report.error.as_deref().unwrap_or(""),
                "plugin run failed"
            );
        }
        (report, tally)
    }

    /// The run's row in `webhook_logs`.
    async fn log_run(&self, row: &PluginRow, about: &RunAbout, request: &str, report: &RunReport) {
        let outcome = report.outcome.as_str();
        let mut response = match &report.transformed {
            Some(transformed) => serde_json::json!({ "transformed": transformed, "logs": report.logs }),
            None => serde_json::json!({ "decision": report.decision, "logs": report.logs }),
        };
        if !report.http.is_empty() {
            response["http"] = serde_json::json!(report.http);
        }
        let log = NewLog {
            user_id: row.user_id,
            kind: "plugin".into(),
            target: row.name.clone(),
            event: about.event.clone(),
            message_id: about.message_id,
            attempt: 1,
            outcome: outcome.into(),
            http_status: None,
            latency_ms: Some(report.latency.as_millis() as i64),
            // A run's error can quote the plugin's own text.
            error: report.error.as_deref().map(|e| without_nul(e).into_owned()),
            request: Some(truncate(request, LOG_BODY_BYTES)),
            response: Some(truncate(&response.to_string(), LOG_BODY_BYTES)),
            endpoint_id: about.endpoint_id,
            delivery_id: about.delivery_id,
            webhook_id: about.webhook_id.clone(),
            plugin_id: Some(row.id),
            device_id: about.device_id,
        };
        if let Err(e) = self.inner.db.insert_webhook_log(&log).await {
            tracing::warn!(plugin_id = row.id, error = %e, "cannot log a plugin run");
        }
    }

    /// Records a run: its log row, the failure tally (returned; `None` when it could not be
    /// written), and `plugin.failed` when it failed.
    async fn record(
        &self,
        row: &PluginRow,
        about: &RunAbout,
        request: &str,
        report: &RunReport,
    ) -> Option<Tally> {
        self.log_run(row, about, request, report).await;
        let db = &self.inner.db;
        let outcome = report.outcome.as_str();
        let success = report.outcome == Outcome::Success;
        let limit = i64::from(self.inner.config.disable_after_failures);
        let reason = format!("disabled after {limit} failed runs in a row (last: {outcome})");
        let tally = match db.record_plugin_run(row.user_id, row.id, outcome, success, limit, &reason).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(plugin_id = row.id, error = %e, "cannot record a plugin run");
                return None;
            }
        };
        if success {
            return Some(tally);
        }
        if tally.disabled_now {
            // Only the compiled code goes: the gate stays and, marked disabled by this run,
            // turns away pipelines that read the plugin before it was disabled. Forgetting it
            // would let such a pipeline open a fresh gate from its stale row and run once more.
            self.cache().remove(&row.id);
            tracing::warn!(tenant = row.user_id, plugin_id = row.id, "{reason}");
        }
        if about.event == EventType::PluginFailed.as_str() {
            // A transformation failing on `plugin.failed` would otherwise feed itself.
            return Some(tally);
        }
        let data = PluginFailedData {
            plugin_id: row.id,
            plugin: row.name.clone(),
            message_id: about.message_id,
            outcome: outcome.into(),
            error: report.error.clone().unwrap_or_default(),
            disabled: tally.disabled_now,
        };
        if let Err(e) =
            self.inner.events.emit(row.user_id, about.device_id, EventType::PluginFailed, &data).await
        {
            tracing::warn!(plugin_id = row.id, error = %e, "cannot queue plugin.failed");
        }
        Some(tally)
    }
}
