//! The composition root: connects storage, builds services and workers, serves HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, DriverKind};
use crate::db::{ConnectOptions, Db};
use crate::devices::driver::Driver;
use crate::devices::manager::DeviceManager;
use crate::devices::simulator::{SimTiming, Simulator};
use crate::devices::whatsapp_web::driver::{WaNetwork, WhatsappWeb};
use crate::limits::{LimitsService, RateLimiter};
use crate::messages::inbound::{Inbound, MediaFetch};
use crate::messages::outbound::Outbound;
use crate::net::{HttpClient, HttpOptions};
use crate::plugins::runtime::Runtime;
use crate::plugins::{PluginStage, Plugins};
use crate::rules::RulesStage;
use crate::scheduler::Scheduler;
use crate::tenants::{AdminToken, TenantService};
use crate::webhooks::Webhooks;

/// Everything a request handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub limits: LimitsService,
    pub tenants: TenantService,
    pub rate: Arc<RateLimiter>,
    pub admin_token: Arc<AdminToken>,
    pub devices: DeviceManager,
    pub outbound: Outbound,
    pub inbound: Inbound,
    /// The scheduled-message worker.
    pub scheduler: Scheduler,
    /// Webhook endpoints' secrets, the delivery worker and event emission.
    pub webhooks: Webhooks,
    /// Tenant-uploaded WebAssembly plugins.
    pub plugins: Plugins,
    /// The simulated network, when `whatsapp.driver = "simulator"`.
    pub simulator: Option<Arc<Simulator>>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// Connects to the configured database and applies migrations.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&ConnectOptions {
        url: config.database.url.clone(),
        max_connections: config.database.max_connections,
        acquire_timeout: Duration::from_secs(config.database.acquire_timeout),
    })
    .await
    .with_context(|| format!("cannot open the database at {}", redact(&config.database.url)))?;
    db.migrate().await.context("database migrations failed")?;
    Ok(db)
}

/// Hides the password of a database URL.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Builds the services on top of an open database.
pub fn services(config: &Config, db: &Db) -> (LimitsService, TenantService) {
    let limits = LimitsService::new(db.clone(), config);
    let tenants = TenantService::new(db.clone(), limits.clone(), config.limits.default_package.clone());
    (limits, tenants)
}

/// What the composition root can be given instead of its defaults (tests plug in a fake
/// WhatsApp network here).
#[derive(Default)]
pub struct AppOptions {
    pub whatsapp_network: Option<WaNetwork>,
}

/// A built gateway, bound to its port and ready to run.
pub struct App {
    listener: TcpListener,
    state: AppState,
    /// An admin token generated on this first start, to show once.
    pub generated_admin_token: Option<String>,
}

impl App {
    /// Opens the database, runs migrations, builds services and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        App::build_with(config, AppOptions::default()).await
    }

    /// Like [`App::build`], with parts replaced.
    pub async fn build_with(config: Config, options: AppOptions) -> anyhow::Result<App> {
        let db = open_db(&config).await?;
        let (admin_token, generated_admin_token) =
            AdminToken::bootstrap(&db, &config.admin.token).await.context("cannot set up the admin token")?;
        let (limits, tenants) = services(&config, &db);
        let listener = TcpListener::bind(config.server.bind)
            .await
            .with_context(|| format!("cannot listen on {} (server.bind)", config.server.bind))?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (driver, simulator): (Arc<dyn Driver>, Option<Arc<Simulator>>) = match config.whatsapp.driver {
            DriverKind::Simulator => {
                let sim = Arc::new(Simulator::new(db.clone(), SimTiming::default()));
                (sim.clone(), Some(sim))
            }
            DriverKind::WhatsappWeb => {
                let network = options.whatsapp_network.unwrap_or_else(WaNetwork::real);
                (
                    Arc::new(WhatsappWeb::new(
                        db.clone(),
                        network,
                        config.whatsapp.device_name.clone(),
                        config.whatsapp.wa_version(),
                    )),
                    None,
                )
            }
        };
        let reconnect = (
            Duration::from_millis(config.whatsapp.reconnect_min_ms),
            Duration::from_millis(config.whatsapp.reconnect_max_ms),
        );
        let devices = DeviceManager::new(driver, db.clone(), reconnect, shutdown.clone(), tasks.clone());
        let outbound = Outbound::new(
            db.clone(),
            devices.clone(),
            limits.clone(),
            &config.whatsapp,
            shutdown.clone(),
            tasks.clone(),
        );
        // Keyword rules run first after a message is stored (SPEC §8).
        let mut stages: Vec<Arc<dyn crate::messages::inbound::Stage>> =
            vec![Arc::new(RulesStage::new(db.clone(), &config.rules))];
        let webhooks = Webhooks::build(db.clone(), &config, shutdown.clone(), tasks.clone())
            .await
            .context("cannot set up webhooks")?;
        // Then the tenant's plugins (SPEC §8, §12).
        let runtime = Runtime::new(&config.plugins).context("cannot set up the plugin runtime")?;
        let plugins = Plugins::new(db.clone(), runtime, config.plugins.clone(), webhooks.events());
        stages.push(Arc::new(PluginStage::new(
            plugins.clone(),
            db.clone(),
            config.rules.max_replies_per_chat_per_minute,
        )));
        // Then reply-mode webhooks (SPEC §8, §11).
        stages.push(Arc::new(webhooks.reply_stage()));
        let media_timeout = Duration::from_secs(config.whatsapp.media_fetch_timeout.max(1));
        let media = MediaFetch {
            http: HttpClient::new(HttpOptions::new(media_timeout, config.webhooks.allow_private_targets))
                .context("cannot set up the media client")?,
            whatsapp: config.whatsapp.clone(),
        };
        let inbound = Inbound::new(db.clone(), outbound.clone(), stages, media, tasks.clone());
        let scheduler = Scheduler::new(
            db.clone(),
            outbound.clone(),
            webhooks.events(),
            &config,
            shutdown.clone(),
            tasks.clone(),
        );
        devices.set_sink(Arc::new(inbound.clone()));
        let state = AppState {
            config: Arc::new(config),
            db,
            limits,
            tenants,
            rate: Arc::new(RateLimiter::default()),
            admin_token: Arc::new(admin_token),
            devices,
            outbound,
            inbound,
            scheduler,
            webhooks,
            plugins,
            simulator,
            shutdown,
            tasks,
        };
        Ok(App { listener, state, generated_admin_token })
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A token that stops the gateway when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains in-flight work.
    pub async fn run(self) -> anyhow::Result<()> {
        let App { listener, state, .. } = self;
        let resumed = state.devices.start_all().await.context("cannot start device sessions")?;
        state.outbound.start().await.context("cannot start the outbound queue")?;
        state.scheduler.start();
        state.webhooks.start(&state.devices);
        let pending = state.inbound.resume().await.context("cannot resume the inbound pipeline")?;
        tracing::info!(devices = resumed, pending_inbound = pending, "workers started");
        let router = crate::api::router(state.clone());
        let shutdown = state.shutdown.clone();
        tracing::info!(addr = %listener.local_addr()?, "listening");
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .context("HTTP server failed")?;
        state.shutdown.cancel();
        state.tasks.close();
        let grace = Duration::from_secs(state.config.server.shutdown_grace);
        if tokio::time::timeout(grace, state.tasks.wait()).await.is_err() {
            tracing::warn!("background work did not finish within the shutdown grace");
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}
