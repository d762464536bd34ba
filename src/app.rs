//! The composition root: connects storage, builds services and workers, serves HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::{Node, SingleProcessLock};
use crate::config::{Config, DriverKind};
use crate::db::{ConnectOptions, Db};
use crate::devices::balancer::Balancer;
use crate::devices::contacts::ContactService;
use crate::devices::driver::Driver;
use crate::devices::groups::service::GroupService;
use crate::devices::manager::DeviceManager;
use crate::devices::service::DeviceService;
use crate::devices::simulator::remote::RemoteNetwork;
use crate::devices::simulator::{SimTiming, Simulator};
use crate::devices::whatsapp_web::driver::{WaNetwork, WhatsappWeb};
use crate::limits::{LimitsService, RateLimiter};
use crate::messages::guard::ReplyGuard;
use crate::messages::inbound::Inbound;
use crate::messages::keeper::MediaKeeper;
use crate::messages::media::store::{MediaLinks, MediaStore};
use crate::messages::media::MediaFetcher;
use crate::messages::outbound::Outbound;
use crate::messages::service::MessageService;
use crate::metrics::Metrics;
use crate::plugins::manage::PluginService;
use crate::plugins::runtime::Runtime;
use crate::plugins::{PluginStage, Plugins};
use crate::retention::Retention;
use crate::rules::service::RuleService;
use crate::rules::RulesStage;
use crate::scheduler::service::ScheduleService;
use crate::scheduler::Scheduler;
pub use crate::state::{AppState, Services};
use crate::tenants::{AdminToken, TenantService};
use crate::webhooks::endpoints::EndpointService;
use crate::webhooks::Webhooks;

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
    /// One simulated WhatsApp network shared by several gateways in one test process (as
    /// real processes share WhatsApp): a device's session opened by one replaces another's.
    pub simulator: Option<Arc<Simulator>>,
}

/// A built gateway, bound to its port and ready to run.
pub struct App {
    listener: TcpListener,
    state: AppState,
    /// Held while serving a SQLite file: a second process on it refuses to start.
    single: Option<SingleProcessLock>,
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
        let single = SingleProcessLock::take(&config.database.url)?;
        let db = open_db(&config).await?;
        let (admin_token, generated_admin_token) =
            AdminToken::bootstrap(&db, &config.admin.token).await.context("cannot set up the admin token")?;
        let (limits, tenants) = services(&config, &db);
        let listener = TcpListener::bind(config.server.bind)
            .await
            .with_context(|| format!("cannot listen on {} (server.bind)", config.server.bind))?;
        let media = MediaFetcher::new(&config).context("cannot set up the media client")?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (driver, simulator): (Arc<dyn Driver>, Option<Arc<Simulator>>) = match config.whatsapp.driver {
            DriverKind::Simulator if !config.whatsapp.simulator_network.is_empty() => {
                let network = config.whatsapp.simulator_network.clone();
                (Arc::new(RemoteNetwork::new(db.clone(), network)), None)
            }
            DriverKind::Simulator => {
                let sim = options
                    .simulator
                    .unwrap_or_else(|| Arc::new(Simulator::new(db.clone(), SimTiming::default())));
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
        let node = Node::new(db.clone(), &config.cluster);
        let devices =
            DeviceManager::new(driver, db.clone(), node, reconnect, shutdown.clone(), tasks.clone());
        let store = MediaStore::open(&config.media)
            .map_err(anyhow::Error::msg)
            .context("cannot open the media store")?;
        let public_url = match config.server.public_url.trim() {
            "" => format!("http://{}", listener.local_addr().context("the listener has an address")?),
            url => url.to_string(),
        };
        let links = MediaLinks::bootstrap(&db, &public_url, Duration::from_secs(config.media.link_ttl))
            .await
            .context("cannot set up media links")?;
        let media_keeper = MediaKeeper::new(
            db.clone(),
            store,
            links,
            devices.clone(),
            &config.media,
            shutdown.clone(),
            tasks.clone(),
        );
        let metrics = Metrics::new(&config.metrics);
        let outbound = Outbound::new(
            db.clone(),
            devices.clone(),
            limits.clone(),
            media_keeper.clone(),
            &config.whatsapp,
            metrics.clone(),
            shutdown.clone(),
            tasks.clone(),
        );
        // The inbound pipeline: keyword rules first after a message is stored, then the
        // tenant's plugins, then reply-mode webhooks; one loop guard over all their replies.
        let mut stages: Vec<Arc<dyn crate::messages::inbound::Stage>> =
            vec![Arc::new(RulesStage::new(db.clone()))];
        let webhooks = Webhooks::build(
            db.clone(),
            &config,
            media_keeper.links().clone(),
            metrics.clone(),
            shutdown.clone(),
            tasks.clone(),
        )
        .await
        .context("cannot set up webhooks")?;
        let runtime = Runtime::new(&config.plugins).context("cannot set up the plugin runtime")?;
        let plugins =
            Plugins::new(db.clone(), runtime, config.plugins.clone(), webhooks.events(), metrics.clone());
        webhooks.use_plugins(plugins.clone());
        stages.push(Arc::new(PluginStage::new(plugins.clone(), db.clone(), media_keeper.links().clone())));
        stages.push(Arc::new(webhooks.reply_stage()));
        let guard = ReplyGuard::new(db.clone(), config.rules.max_replies_per_chat_per_minute);
        let inbound = Inbound::new(
            db.clone(),
            outbound.clone(),
            stages,
            guard,
            media.clone(),
            media_keeper.clone(),
            tasks.clone(),
        );
        let scheduler = Scheduler::new(
            db.clone(),
            outbound.clone(),
            webhooks.events(),
            media.clone(),
            &config,
            shutdown.clone(),
            tasks.clone(),
        );
        devices.set_sink(Arc::new(inbound.clone()));
        // Group events and learned LIDs are queued as webhook events before the device
        // supervisor moves on, so none is lost to a listener that falls behind.
        devices.set_update_log(Arc::new(webhooks.clone()));
        let country_code = &config.whatsapp.default_country_code;
        let device_service =
            DeviceService::new(db.clone(), limits.clone(), tenants.clone(), devices.clone(), country_code);
        let groups = GroupService::new(db.clone(), tenants.clone(), devices.clone(), country_code);
        let contacts = ContactService::new(db.clone(), tenants.clone(), devices.clone(), country_code);
        let rules = RuleService::new(db.clone(), limits.clone(), tenants.clone(), country_code);
        let schedules =
            ScheduleService::new(db.clone(), limits.clone(), tenants.clone(), scheduler.clone(), &config);
        let endpoints =
            EndpointService::new(db.clone(), limits.clone(), tenants.clone(), webhooks.clone(), country_code);
        let plugin_service = PluginService::new(
            db.clone(),
            limits.clone(),
            tenants.clone(),
            plugins,
            country_code,
            config.plugins.reenable_cooldown,
        );
        let messages = MessageService::new(
            db.clone(),
            outbound.clone(),
            media_keeper.clone(),
            devices.clone(),
            tenants.clone(),
            media.clone(),
            country_code,
        );
        let rate = RateLimiter::start(&db, &shutdown, &tasks);
        let config = Arc::new(config);
        let retention = Retention::new(db.clone(), media_keeper.clone(), config.clone());
        let state = AppState::new(Services {
            config,
            db,
            limits,
            tenants,
            rate,
            admin_token: Arc::new(admin_token),
            device_manager: devices,
            devices: device_service,
            groups,
            contacts,
            outbound,
            inbound,
            scheduler,
            webhooks,
            rules,
            schedules,
            endpoints,
            messages,
            plugins: plugin_service,
            media,
            media_keeper,
            metrics,
            retention,
            simulator,
            shutdown,
            tasks,
        });
        Ok(App { listener, state, single, generated_admin_token })
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
        let App { listener, state, single, .. } = self;
        let resumed =
            Balancer::start(state.device_manager.clone(), state.shutdown.clone(), state.tasks.clone())
                .await
                .context("cannot join the gateway cluster and start device sessions")?;
        state.device_manager.serve_commands(state.shutdown.clone(), &state.tasks);
        state.outbound.start().await.context("cannot start the outbound queue")?;
        state.scheduler.start();
        state.webhooks.start(&state.device_manager);
        let downloads = state.media_keeper.start().await.context("cannot resume media downloads")?;
        state.retention.start(state.shutdown.clone(), &state.tasks);
        tracing::info!(downloads, "media keeper started");
        tracing::info!(devices = resumed, "workers started");
        // The API and the dashboard side by side; the dashboard calls services, not the API.
        let routes = crate::api::routes(&state).merge(crate::dashboard::router(&state));
        let router = crate::api::with_layers(routes, state.clone());
        let shutdown = state.shutdown.clone();
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "listening");
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
        drop(single);
        tracing::info!(%addr, "stopped");
        Ok(())
    }
}
