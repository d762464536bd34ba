//! The wasmtime host: one engine, components validated against a version of the `auto-reply`
//! world and compiled once, and each message run in a fresh, limited store.
//!
//! A [`Runtime`] holds the engine (component model, pooling allocator, epoch interruption with
//! a ticker thread) and the one linker with the gateway's imports of every [`World`] version
//! it serves (0.1.0, 0.2.0 and 0.3.0). Which version a component implements is found when it is
//! prepared (at upload and at load) from the type of its `handle` export; the run then calls
//! it through that version's bindings, and its decision becomes the one [`Decision`] every
//! version shares, checked against the same caps. [`Runtime::compile`] turns
//! an upload into a [`Prepared`] plugin (an `InstancePre`, cheap to clone and cache) plus the
//! artefact to store; [`Runtime::load`] gets the same back from a stored artefact without
//! compiling. [`Runtime::run`] runs one message: a fresh `Store` with a memory cap, a CPU
//! deadline and a wall-clock timeout, output caps, bounded logs, the plugin's key-value store
//! and, for a 0.3.0 plugin that imports `http`, its outbound requests ([`Runtime::run_with`]);
//! every failure is a [`RunReport`] outcome, never a panic or an error.

mod bindings;
mod engine;
mod host;
mod http;
mod output;
mod priority;
mod types;
mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

use self::bindings::{transform, v0_1, v0_2, v0_3};
use self::host::{Deadline, HostState, Limiter, LogBuffer, Stopped};
pub use self::http::{HttpCall, HttpLog, NetAccess};
use self::http::{HttpLimits, HttpSession};
use self::output::OutputCaps;
pub use self::priority::supported as can_lower_priority;
use self::priority::Demotion;
use crate::config::PluginsConfig;
use crate::net::{HttpClient, HttpOptions};
pub use crate::plugins::kv::KvAccess;
use crate::plugins::kv::{KvLimits, KvSession};

pub use self::output::{TRANSFORM_BODY_MAX, TRANSFORM_HEADERS_MAX, TRANSFORM_PATH_MAX};
pub use self::types::{
    Action, Decision, Input, LogLine, Outcome, PluginContext, PluginMedia, PluginMessage, RunInput,
    RunReport, TransformContext, TransformEvent, TransformInput, Transformed, TransformedRequest,
};
pub use self::validate::{
    PluginKind, World, EXPORT, INTERFACES, PACKAGE, TRANSFORM_EXPORT, TRANSFORM_PACKAGE, TRANSFORM_WORLD,
    WORLD,
};

/// Why bytes are not a plugin the gateway can run. The reason is meant for the tenant (the
/// API answers 422 with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidPlugin {
    reason: String,
}

impl InvalidPlugin {
    pub fn new(reason: impl Into<String>) -> InvalidPlugin {
        InvalidPlugin { reason: reason.into() }
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A compiled upload: the artefact to store with it, and the plugin ready to run.
pub struct Compiled {
    pub artefact: Vec<u8>,
    pub prepared: Prepared,
}

/// A stored plugin made ready to run.
pub struct Loaded {
    pub prepared: Prepared,
    /// `Some(artefact)` when the stored artefact could not be used and the component was
    /// compiled again: store this one in its place (under [`Runtime::engine_id`]).
    pub recompiled: Option<Vec<u8>>,
}

/// A plugin ready to instantiate: imports resolved and types checked, for the world version
/// it implements. Cheap to clone.
#[derive(Clone)]
pub struct Prepared {
    pre: PreparedWorld,
    /// Whether it imports `http`: its runs get the longer wall-clock limit.
    http: bool,
}

#[derive(Clone)]
enum PreparedWorld {
    V0_1(Arc<v0_1::AutoReplyPre<HostState>>),
    V0_2(Arc<v0_2::AutoReplyPre<HostState>>),
    V0_3(Arc<v0_3::AutoReplyPre<HostState>>),
    Transform(Arc<transform::TransformPre<HostState>>),
}

impl Prepared {
    /// The world version the plugin implements.
    pub fn world(&self) -> World {
        match self.pre {
            PreparedWorld::V0_1(_) => World::V0_1,
            PreparedWorld::V0_2(_) => World::V0_2,
            PreparedWorld::V0_3(_) => World::V0_3,
            PreparedWorld::Transform(_) => World::Transform0_1,
        }
    }

    /// What the plugin is for: messages, or an endpoint's events.
    pub fn kind(&self) -> PluginKind {
        self.world().kind()
    }

    /// Whether the plugin imports `http` (and so may make requests).
    pub fn uses_http(&self) -> bool {
        self.http
    }

    fn engine(&self) -> &Engine {
        match &self.pre {
            PreparedWorld::V0_1(pre) => pre.engine(),
            PreparedWorld::V0_2(pre) => pre.engine(),
            PreparedWorld::V0_3(pre) => pre.engine(),
            PreparedWorld::Transform(pre) => pre.engine(),
        }
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prepared({})", self.world())
    }
}

/// The limits of one run, from `[plugins]`.
#[derive(Debug, Clone, Copy)]
struct RunLimits {
    max_size: usize,
    memory_limit: usize,
    cpu_ms: u64,
    timeout_ms: u64,
    /// The wall-clock limit of a plugin that imports `http`.
    http_timeout_ms: u64,
    http: HttpLimits,
    output: OutputCaps,
    max_log_lines: usize,
    max_log_line_bytes: usize,
    kv: KvLimits,
    /// Bytes the host copies out of the guest in one call (a decision, a log line, a value).
    copy_budget: usize,
    /// CPU time after which a run lowers its thread's priority.
    lower_priority_after: Option<Duration>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    /// The hardened client plugins' requests go through.
    client: HttpClient,
    id: String,
    limits: RunLimits,
    slots: Arc<Semaphore>,
}

/// The plugin host. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("engine_id", &self.inner.id).finish()
    }
}

impl Runtime {
    /// Builds the engine and the linker, and starts the epoch ticker.
    pub fn new(cfg: &PluginsConfig) -> anyhow::Result<Runtime> {
        let engine = engine::build(cfg).map_err(|e| anyhow::anyhow!("cannot set up wasmtime: {e:#}"))?;
        let mut linker = Linker::new(&engine);
        // Every version's interfaces carry their version in their names, so they sit side by
        // side in the one linker.
        v0_1::AutoReply::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .and_then(|()| {
                v0_2::AutoReply::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            })
            .and_then(|()| {
                v0_3::AutoReply::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            })
            .map_err(|e| anyhow::anyhow!("cannot link the plugin imports: {e:#}"))?;
        engine::start_ticker(&engine)?;
        if cfg.lower_priority_after_ms > 0 && !can_lower_priority() {
            tracing::info!(
                "plugin runs keep their priority however long they use the CPU: this process may \
                 not restore a thread's priority (needs CAP_SYS_NICE or RLIMIT_NICE 20)"
            );
        }
        let output = OutputCaps { max_actions: cfg.max_actions, max_reply_bytes: cfg.max_reply_bytes };
        let kv = KvLimits::from_config(cfg);
        let http = HttpLimits {
            max_requests: cfg.http_max_requests,
            max_request_bytes: cfg.http_max_request_bytes,
            max_response_bytes: cfg.http_max_response_bytes,
            request_timeout: Duration::from_millis(cfg.http_request_timeout_ms.max(1)),
        };
        let client = HttpClient::new(HttpOptions::new(http.request_timeout, cfg.allow_private_targets))
            .map_err(|e| anyhow::anyhow!("cannot build the plugins' HTTP client: {e}"))?;
        let copy_budget = (1usize << 20)
            .max(output.copy_budget())
            .max(http.max_request_bytes.saturating_add(http.max_response_bytes).saturating_mul(2))
            .max(kv.max_value_bytes.saturating_add(kv.max_key_bytes).saturating_mul(2))
            .max(cfg.max_log_line_bytes.saturating_mul(4));
        let limits = RunLimits {
            max_size: cfg.max_size,
            memory_limit: cfg.memory_limit,
            cpu_ms: cfg.cpu_ms,
            timeout_ms: cfg.timeout_ms,
            http_timeout_ms: cfg.http_timeout_ms.max(cfg.timeout_ms),
            http,
            output,
            max_log_lines: cfg.max_log_lines,
            max_log_line_bytes: cfg.max_log_line_bytes,
            kv,
            copy_budget,
            lower_priority_after: (cfg.lower_priority_after_ms > 0)
                .then(|| Duration::from_millis(cfg.lower_priority_after_ms)),
        };
        let id = engine::id(&engine);
        let slots = Arc::new(Semaphore::new(engine::SLOTS as usize));
        Ok(Runtime { inner: Arc::new(Inner { engine, linker, client, id, limits, slots }) })
    }

    /// Names the wasmtime version and the settings that shape compiled code. Artefacts are
    /// stored with it; one made under another id is compiled again.
    pub fn engine_id(&self) -> &str {
        &self.inner.id
    }

    /// The engine, for describing components (`plugin check`).
    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Validates an upload (size, a component, imports only the gateway's interfaces, exports
    /// `handle` with the type of one world version, fits the limits) and compiles it.
    pub fn compile(&self, wasm: &[u8]) -> Result<Compiled, InvalidPlugin> {
        self.check_size(wasm)?;
        self.compile_unchecked_size(wasm)
    }

    /// Refuses an upload over `[plugins] max_size`.
    pub(crate) fn check_size(&self, wasm: &[u8]) -> Result<(), InvalidPlugin> {
        let max = self.inner.limits.max_size;
        if wasm.len() > max {
            return Err(InvalidPlugin::new(format!(
                "the plugin is {} bytes, the limit is {max}",
                wasm.len()
            )));
        }
        Ok(())
    }

    fn compile_unchecked_size(&self, wasm: &[u8]) -> Result<Compiled, InvalidPlugin> {
        let component = self.component(wasm)?;
        let prepared = self.prepare(&component)?;
        let artefact = component
            .serialize()
            .map_err(|e| InvalidPlugin::new(format!("the compiled plugin cannot be stored: {e:#}")))?;
        Ok(Compiled { artefact, prepared })
    }

    /// Parses and compiles `wasm` as a component (no world checks).
    pub(crate) fn component(&self, wasm: &[u8]) -> Result<Component, InvalidPlugin> {
        validate::header(wasm)?;
        Component::new(&self.inner.engine, wasm).map_err(|e| {
            let why = format!("{e:#}");
            if why.contains("pooling allocator") {
                // Checked while compiling: a memory or table that starts over the limits.
                InvalidPlugin::new(format!("it needs more than the plugin limits allow: {why}"))
            } else {
                InvalidPlugin::new(format!("not a valid WebAssembly component: {why}"))
            }
        })
    }

    /// Checks a compiled component against the worlds and the limits, finds the world version
    /// it implements, and pre-instantiates it for that version.
    pub(crate) fn prepare(&self, component: &Component) -> Result<Prepared, InvalidPlugin> {
        let engine = &self.inner.engine;
        validate::imports(engine, component)?;
        let pre = self.inner.linker.instantiate_pre(component).map_err(|e| {
            InvalidPlugin::new(format!("its imports do not match what the gateway provides: {e:#}"))
        })?;
        let kind = validate::exports(engine, component)?;
        validate::resources(component, self.inner.limits.memory_limit)?;
        let http = validate::imports_http(engine, component);
        if kind == PluginKind::Transform {
            return match transform::TransformPre::new(pre) {
                Ok(pre) => Ok(Prepared { pre: PreparedWorld::Transform(Arc::new(pre)), http }),
                Err(e) => Err(InvalidPlugin::new(format!(
                    "its `{TRANSFORM_EXPORT}` export does not have the type of the {TRANSFORM_WORLD} world: {e:#}"
                ))),
            };
        }
        // The type of `handle` decides. The version its imports name (if any) is tried first,
        // and its reason is the one given when no version fits; else the newest's.
        let hinted = validate::imported_world(engine, component);
        let mut order = World::ALL.to_vec();
        if let Some(world) = hinted {
            order.retain(|w| *w != world);
            order.insert(0, world);
        }
        let mut first_reason = None;
        for world in order {
            let attempt = match world {
                World::V0_1 => v0_1::AutoReplyPre::new(pre.clone()).map(|p| PreparedWorld::V0_1(Arc::new(p))),
                World::V0_2 => v0_2::AutoReplyPre::new(pre.clone()).map(|p| PreparedWorld::V0_2(Arc::new(p))),
                World::V0_3 => v0_3::AutoReplyPre::new(pre.clone()).map(|p| PreparedWorld::V0_3(Arc::new(p))),
                // Not among the auto-reply worlds (`World::ALL`).
                World::Transform0_1 => continue,
            };
            match attempt {
                Ok(pre) => return Ok(Prepared { pre, http }),
                Err(e) => {
                    first_reason.get_or_insert_with(|| (world, format!("{e:#}")));
                }
            }
        }
        let (world, why) = first_reason.unwrap_or((World::ALL[0], String::new()));
        let others: Vec<&str> = World::ALL.iter().filter(|w| **w != world).map(|w| w.version()).collect();
        Err(InvalidPlugin::new(format!(
            "its `{EXPORT}` export does not have the type of the {world} world (nor of {}): {why}",
            others.join(", ")
        )))
    }

    /// Makes a stored plugin ready: from `artefact` (bytes and the engine id they were made
    /// under) when it was made by this engine, else by compiling `wasm` again. The upload size
    /// cap is not applied again.
    pub fn load(&self, wasm: &[u8], artefact: Option<(&[u8], &str)>) -> Result<Loaded, InvalidPlugin> {
        if let Some((bytes, id)) = artefact.filter(|(_, id)| *id == self.engine_id()) {
            // SAFETY: `Component::deserialize` trusts its input to be wasmtime's own output.
            // These bytes are: they were produced by `Component::serialize` on an engine with
            // this very engine id (wasmtime version plus every setting that shapes compiled
            // code), stored by the gateway in its own database, and never taken from a tenant
            // (uploads always go through `compile`). wasmtime additionally checks the
            // artefact's header against the engine before using it.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize(&self.inner.engine, bytes) };
            match loaded {
                Ok(component) => {
                    return Ok(Loaded { prepared: self.prepare(&component)?, recompiled: None });
                }
                Err(err) => {
                    tracing::warn!(engine = id, error = %format!("{err:#}"), "stored plugin artefact unusable, compiling again");
                }
            }
        }
        let compiled = self.compile_unchecked_size(wasm)?;
        Ok(Loaded { prepared: compiled.prepared, recompiled: Some(compiled.artefact) })
    }

    /// Runs one message through a plugin in a fresh store, on a blocking thread. At most
    /// [`engine::SLOTS`] runs are in flight; further calls wait for a slot. A successful
    /// run's key-value writes are applied before this returns (with [`KvAccess::Store`]). The
    /// plugin reaches no host over HTTP.
    pub async fn run(&self, prepared: &Prepared, input: impl Into<Input>, kv: KvAccess) -> RunReport {
        self.run_with(prepared, input, kv, NetAccess::default()).await
    }

    /// [`Runtime::run`], with the hosts the plugin may reach and its tenant turn, given back
    /// while a request is in flight.
    pub async fn run_with(
        &self,
        prepared: &Prepared,
        input: impl Into<Input>,
        kv: KvAccess,
        net: NetAccess,
    ) -> RunReport {
        let input = input.into();
        let started = Instant::now();
        let Ok(permit) = self.inner.slots.clone().acquire_owned().await else {
            return failed(Outcome::Internal, "the plugin runtime is shut down", started);
        };
        let runtime = self.clone();
        let prepared = prepared.clone();
        let wall_ms = self.wall_ms(&prepared);
        let task = tokio::task::spawn_blocking(move || {
            let report = runtime.run_blocking_with(&prepared, input, kv, net);
            drop(permit);
            report
        });
        // The run stops itself at its deadlines; this only guards against a thread that
        // does not come back (it keeps its slot until it does).
        let guard = Duration::from_millis(wall_ms.saturating_mul(2)) + Duration::from_secs(1);
        let mut report = match tokio::time::timeout(guard, task).await {
            Ok(Ok(report)) => report,
            Ok(Err(err)) => {
                tracing::error!(error = %err, "plugin run panicked");
                failed(Outcome::Internal, "the plugin runner failed", started)
            }
            Err(_) => failed(Outcome::Timeout, "the run did not stop at its deadline", started),
        };
        report.latency = started.elapsed();
        report
    }

    /// [`Runtime::run`] on the calling thread, without waiting for a slot: blocks, so call it
    /// from a blocking thread (or a benchmark). A key-value store needs a tokio runtime to be
    /// current (a blocking thread of one is).
    pub fn run_blocking(&self, prepared: &Prepared, input: impl Into<Input>, kv: KvAccess) -> RunReport {
        self.run_blocking_with(prepared, input, kv, NetAccess::default())
    }

    /// [`Runtime::run_blocking`] with [`NetAccess`]. Requests need a tokio runtime to be
    /// current, as a key-value store does; without one they fail (the run goes on).
    pub fn run_blocking_with(
        &self,
        prepared: &Prepared,
        input: impl Into<Input>,
        kv: KvAccess,
        net: NetAccess,
    ) -> RunReport {
        let input = input.into();
        let started = Instant::now();
        let current = tokio::runtime::Handle::try_current().ok();
        let handle = match (&kv, &current) {
            (KvAccess::None, _) => None,
            (_, Some(handle)) => Some(handle.clone()),
            (_, None) => {
                return failed(Outcome::Internal, "a key-value store needs a tokio runtime", started);
            }
        };
        if !Engine::same(prepared.engine(), &self.inner.engine) {
            return failed(Outcome::Internal, "the plugin was prepared by another runtime", started);
        }
        let limits = self.inner.limits;
        let session = KvSession::new(kv, limits.kv, handle.clone());
        let state = HostState {
            limiter: Limiter { memory_limit: limits.memory_limit, refused: false },
            deadline: Deadline::start(limits.cpu_ms, self.wall_ms(prepared)),
            demotion: Demotion::new(limits.lower_priority_after),
            logs: LogBuffer::new(limits.max_log_lines, limits.max_log_line_bytes),
            kv: session,
            http: HttpSession::new(net, self.inner.client.clone(), limits.http, current),
            stopped: None,
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_hostcall_fuel(limits.copy_budget);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            let cpu_used = state.deadline.cpu_used();
            match state.stopped.or_else(|| state.deadline.check_cpu(cpu_used)) {
                None => {
                    if let Some(used) = cpu_used {
                        state.demotion.observe(used);
                    }
                    Ok(UpdateDeadline::Continue(1))
                }
                Some(stopped) => {
                    state.stopped = Some(stopped);
                    Err(wasmtime::Error::new(stopped))
                }
            }
        });

        let result = call(&prepared.pre, &mut store, input);
        // Dropping the store frees the instance's slot before the database is touched.
        let HostState { limiter, logs, kv, http, stopped, mut demotion, .. } = store.into_data();
        let lowered = demotion.lowered();
        demotion.restore();

        let checked = result.map(|answer| {
            answer.map(|answer| match answer {
                Answer::Decision(decision) => output::check(decision, limits.output).map(Answer::Decision),
                Answer::Transformed(t) => output::check_transform(t).map(Answer::Transformed),
            })
        });
        let (outcome, answer, error) = match checked {
            Ok(Ok(Ok(answer))) => match kv.into_pending() {
                // A successful run's writes land in one transaction, or the run fails.
                Some(pending) => match handle.as_ref().map(|h| h.block_on(pending.apply())) {
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "plugin key-value writes not applied");
                        let why = "the plugin's key-value writes could not be saved";
                        (Outcome::Internal, None, Some(why.to_string()))
                    }
                    _ => (Outcome::Success, Some(answer), None),
                },
                None => (Outcome::Success, Some(answer), None),
            },
            Ok(Ok(Err((outcome, why)))) => (outcome, None, Some(why)),
            Ok(Err(plugin_error)) => {
                let max = limits.max_log_line_bytes.max(256);
                let why = match plugin_error {
                    GuestError::BadConfig(m) => format!("bad config: {}", host::cut(&m, max)),
                    GuestError::Failed(m) => host::cut(&m, max).to_string(),
                };
                (Outcome::Error, None, Some(why))
            }
            Err(failure) => {
                let (outcome, why) = classify(failure, stopped, limiter.refused, limits.memory_limit);
                (outcome, None, Some(why))
            }
        };
        let (decision, transformed) = match answer {
            Some(Answer::Decision(d)) => (Some(d), None),
            Some(Answer::Transformed(t)) => (None, Some(t)),
            None => (None, None),
        };
        RunReport {
            outcome,
            decision,
            transformed,
            error,
            logs: logs.finish(),
            http: http.finish(),
            latency: started.elapsed(),
            lowered,
        }
    }

    /// The wall-clock limit of one run of `prepared`.
    fn wall_ms(&self, prepared: &Prepared) -> u64 {
        let limits = &self.inner.limits;
        if prepared.uses_http() {
            limits.http_timeout_ms
        } else {
            limits.timeout_ms
        }
    }
}

/// Where a run went wrong before or while `handle` ran.
enum Failure {
    /// Instantiation failed.
    Instantiate(wasmtime::Error),
    /// The call failed: a trap, a deadline, or the answer could not be read.
    Call(wasmtime::Error),
    /// The input is not for this kind of plugin.
    Mismatch(&'static str),
}

/// What a plugin returned, by its kind.
enum Answer {
    Decision(Decision),
    Transformed(Transformed),
}

/// The error a plugin returned (`plugin-error`, the same in every version, and the
/// transformation's `transform-error` of the same shape).
enum GuestError {
    BadConfig(String),
    Failed(String),
}

impl GuestError {
    fn from_v0_2(e: v0_2::PluginError) -> GuestError {
        match e {
            v0_2::PluginError::BadConfig(m) => GuestError::BadConfig(m),
            v0_2::PluginError::Failed(m) => GuestError::Failed(m),
        }
    }
}

/// Instantiates the plugin and calls `handle` (or `transform`) through the bindings of its
/// world; the answer in the host's types, not yet checked.
fn call(
    pre: &PreparedWorld,
    store: &mut Store<HostState>,
    input: Input,
) -> Result<Result<Answer, GuestError>, Failure> {
    let input = match (pre, input) {
        (PreparedWorld::Transform(pre), Input::Event(input)) => {
            let plugin = pre.instantiate(&mut *store).map_err(Failure::Instantiate)?;
            let (event, context) = to_transform(input);
            let answer = plugin.call_transform(&mut *store, &event, &context).map_err(Failure::Call)?;
            return Ok(answer.map(|o| Answer::Transformed(output::from_transform(o))).map_err(|e| match e {
                transform::TransformError::BadConfig(m) => GuestError::BadConfig(m),
                transform::TransformError::Failed(m) => GuestError::Failed(m),
            }));
        }
        (PreparedWorld::Transform(_), Input::Message(_)) => {
            return Err(Failure::Mismatch("a webhook transformation does not handle messages"));
        }
        (_, Input::Event(_)) => {
            return Err(Failure::Mismatch("an auto-reply plugin does not transform webhook events"));
        }
        (_, Input::Message(input)) => input,
    };
    call_handle(pre, store, input).map(|answer| answer.map(Answer::Decision))
}

/// [`call`] for an auto-reply plugin.
fn call_handle(
    pre: &PreparedWorld,
    store: &mut Store<HostState>,
    input: RunInput,
) -> Result<Result<Decision, GuestError>, Failure> {
    match pre {
        PreparedWorld::Transform(_) => {
            Err(Failure::Mismatch("a webhook transformation does not handle messages"))
        }
        PreparedWorld::V0_1(pre) => {
            let plugin = pre.instantiate(&mut *store).map_err(Failure::Instantiate)?;
            let (message, context) = to_v0_1(input);
            let answer = plugin.call_handle(&mut *store, &message, &context).map_err(Failure::Call)?;
            Ok(answer.map(output::from_v0_1).map_err(|e| match e {
                v0_1::PluginError::BadConfig(m) => GuestError::BadConfig(m),
                v0_1::PluginError::Failed(m) => GuestError::Failed(m),
            }))
        }
        PreparedWorld::V0_2(pre) => {
            let plugin = pre.instantiate(&mut *store).map_err(Failure::Instantiate)?;
            let (message, context) = to_v0_2(input);
            let answer = plugin.call_handle(&mut *store, &message, &context).map_err(Failure::Call)?;
            Ok(answer.map(output::from_v0_2).map_err(GuestError::from_v0_2))
        }
        // 0.3.0's types are 0.2.0's (see `bindings`).
        PreparedWorld::V0_3(pre) => {
            let plugin = pre.instantiate(&mut *store).map_err(Failure::Instantiate)?;
            let (message, context) = to_v0_2(input);
            let answer = plugin.call_handle(&mut *store, &message, &context).map_err(Failure::Call)?;
            Ok(answer.map(output::from_v0_2).map_err(GuestError::from_v0_2))
        }
    }
}

/// The outcome and reason of a failed instantiation or call.
fn classify(
    failure: Failure,
    stopped: Option<Stopped>,
    refused: bool,
    memory_limit: usize,
) -> (Outcome, String) {
    let (err, instantiating) = match failure {
        Failure::Instantiate(err) => (err, true),
        Failure::Call(err) => (err, false),
        Failure::Mismatch(why) => return (Outcome::Internal, why.to_string()),
    };
    let own = err.downcast_ref::<Stopped>().copied().or(stopped);
    match own {
        Some(s @ (Stopped::Cpu(_) | Stopped::Wall(_))) => return (Outcome::Timeout, s.to_string()),
        Some(s @ Stopped::Memory(_)) => return (Outcome::Memory, s.to_string()),
        None => {}
    }
    if refused {
        return (Outcome::Memory, Stopped::Memory(memory_limit).to_string());
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        let at = err
            .downcast_ref::<wasmtime::WasmBacktrace>()
            .and_then(|bt| bt.frames().iter().find_map(|f| f.func_name().map(str::to_string)));
        let mut why = match at {
            Some(func) => format!("{trap} (in {func})"),
            None => trap.to_string(),
        };
        if *trap == wasmtime::Trap::UnreachableCodeReached {
            why.push_str(" (a panic in the plugin ends this way)");
        }
        return (Outcome::Trap, why);
    }
    let why = format!("{err:#}");
    if instantiating {
        // Not the guest's doing (it could not start): a full pool, an allocation failure.
        tracing::warn!(error = %why, "plugin instantiation failed");
        return (Outcome::Internal, format!("the plugin could not be started: {why}"));
    }
    if why.contains("fuel allocated for hostcalls has been exhausted") {
        // The guest handed over more than any decision within the caps could hold.
        return (
            Outcome::OutputTooLarge,
            "the plugin returned far more data than the output caps allow".into(),
        );
    }
    (Outcome::InvalidOutput, format!("the plugin's answer could not be read: {why}"))
}

fn failed(outcome: Outcome, why: &str, started: Instant) -> RunReport {
    RunReport::failure(outcome, why.to_string(), started.elapsed())
}

/// The input in 0.1.0's WIT types (moved, not copied): what that version knows of it. Its
/// media kinds were `image`, `video`, `audio`, `document` and `sticker`, so a voice note is
/// `audio` there.
fn to_v0_1(input: RunInput) -> (v0_1::Message, v0_1::Context) {
    let RunInput { message: m, context: c } = input;
    let message = v0_1::Message {
        id: m.id,
        wa_id: m.wa_id,
        chat: m.chat,
        sender: m.sender,
        push_name: m.push_name,
        is_group: m.is_group,
        text: m.text,
        media: m.media.map(|media| v0_1::wa_gateway::plugin::types::Media {
            kind: if media.kind == "voice" { "audio".into() } else { media.kind },
            mime_type: media.mime_type,
            file_name: media.file_name,
            size: media.size,
        }),
        timestamp_ms: m.timestamp_ms,
    };
    let context = v0_1::Context {
        tenant_id: c.tenant_id,
        device_id: c.device_id,
        device_phone: c.device_phone,
        plugin_id: c.plugin_id,
        config: c.config,
    };
    (message, context)
}

/// The input in the transformation world's WIT types (moved, not copied).
fn to_transform(input: TransformInput) -> (transform::Event, transform::Context) {
    let TransformInput { event: e, context: c } = input;
    let event = transform::Event { id: e.id, type_: e.kind, timestamp: e.timestamp, data: e.data };
    let context = transform::Context {
        tenant_id: c.tenant_id,
        endpoint_id: c.endpoint_id,
        url: c.url,
        plugin_id: c.plugin_id,
        config: c.config,
    };
    (event, context)
}

/// The input in 0.2.0's WIT types (moved, not copied).
fn to_v0_2(input: RunInput) -> (v0_2::Message, v0_2::Context) {
    use v0_2::wa_gateway::plugin::types as wit;
    let RunInput { message: m, context: c } = input;
    let kind = match m.kind.as_str() {
        "" | "text" => wit::MessageKind::Text,
        "image" => wit::MessageKind::Image,
        "video" => wit::MessageKind::Video,
        "audio" => wit::MessageKind::Audio,
        "voice" => wit::MessageKind::Voice,
        "document" => wit::MessageKind::Document,
        "sticker" => wit::MessageKind::Sticker,
        "location" => wit::MessageKind::Location,
        "contact" => wit::MessageKind::Contact,
        "poll" => wit::MessageKind::Poll,
        // A kind this version does not name (one the gateway learns later) is only its
        // envelope to a 0.2.0 plugin.
        _ => wit::MessageKind::Unsupported,
    };
    let message = v0_2::Message {
        id: m.id,
        wa_id: m.wa_id,
        chat: m.chat,
        sender: m.sender,
        push_name: m.push_name,
        is_group: m.is_group,
        kind,
        text: m.text,
        media: m.media.map(|media| wit::Media {
            mime_type: media.mime_type,
            file_name: media.file_name,
            size: media.size,
            download_url: media.download_url,
        }),
        location: m.location.map(|l| wit::Location {
            latitude: l.latitude,
            longitude: l.longitude,
            name: l.name,
            address: l.address,
        }),
        contacts: m.contacts.into_iter().map(|c| wit::Contact { name: c.name, phone: c.phone }).collect(),
        poll: m.poll.map(|p| wit::Poll { question: p.question, options: p.options, multiple: p.multiple }),
        reply_to: m.reply_to.map(|q| wit::Quoted {
            wa_id: q.wa_id,
            id: q.id,
            sender: q.sender,
            text: q.text,
        }),
        mentions: m.mentions,
        timestamp_ms: m.timestamp_ms,
    };
    let context = v0_2::Context {
        tenant_id: c.tenant_id,
        device_id: c.device_id,
        device_phone: c.device_phone,
        plugin_id: c.plugin_id,
        config: c.config,
    };
    (message, context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_id_names_the_wasmtime_version_and_is_stable() {
        let cfg = crate::Config::from_toml("").unwrap().plugins;
        let a = Runtime::new(&cfg).unwrap();
        let b = Runtime::new(&cfg).unwrap();
        assert!(a.engine_id().starts_with("wasmtime-48.0.8-"), "{}", a.engine_id());
        assert_eq!(a.engine_id(), b.engine_id());
        // A memory limit changes the compiled code's bounds checks, so the id too.
        let other = PluginsConfig { memory_limit: cfg.memory_limit * 2, ..cfg };
        assert_ne!(Runtime::new(&other).unwrap().engine_id(), a.engine_id());
    }

    #[test]
    fn junk_and_core_modules_are_refused_with_a_reason() {
        let cfg = crate::Config::from_toml("").unwrap().plugins;
        let runtime = Runtime::new(&cfg).unwrap();
        let junk = runtime.compile(b"hello, world").err().unwrap();
        assert!(junk.reason().contains("not a WebAssembly binary"), "{junk}");
        let module = runtime.compile(b"\0asm\x01\0\0\0").err().unwrap();
        assert!(module.reason().contains("not a component"), "{module}");
        let empty = runtime.compile(b"\0asm\x0d\0\x01\0").err().unwrap();
        assert!(empty.reason().contains("does not export `handle`"), "{empty}");
        let big = PluginsConfig { max_size: 4, ..cfg };
        let too_big = Runtime::new(&big).unwrap().compile(b"\0asm\x0d\0\x01\0").err().unwrap();
        assert!(too_big.reason().contains("the limit is 4"), "{too_big}");
    }
}
