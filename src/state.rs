//! The gateway's services as request handlers and pages see them, built once by `app`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::db::Db;
use crate::devices::contacts::ContactService;
use crate::devices::groups::service::GroupService;
use crate::devices::manager::DeviceManager;
use crate::devices::service::DeviceService;
use crate::devices::simulator::Simulator;
use crate::limits::{LimitsService, RateLimiter};
use crate::messages::inbound::Inbound;
use crate::messages::keeper::MediaKeeper;
use crate::messages::media::MediaFetcher;
use crate::messages::outbound::Outbound;
use crate::messages::service::MessageService;
use crate::metrics::Metrics;
use crate::plugins::manage::PluginService;
use crate::retention::Retention;
use crate::rules::service::RuleService;
use crate::scheduler::service::ScheduleService;
use crate::scheduler::Scheduler;
use crate::tenants::{AdminToken, TenantService};
use crate::webhooks::endpoints::EndpointService;
use crate::webhooks::Webhooks;

/// Everything a request handler may use: the [`Services`] behind one `Arc`. axum clones the
/// state for every request (and every extractor that asks for it); one reference count is
/// what that costs, where cloning every service's handles was a third of the CPU of a
/// `/healthz` under load.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// Every service, built once by `app`.
pub struct Services {
    pub config: Arc<Config>,
    pub db: Db,
    pub limits: LimitsService,
    pub tenants: TenantService,
    pub rate: Arc<RateLimiter>,
    pub admin_token: Arc<AdminToken>,
    /// The device sessions: one supervisor per linked device.
    pub device_manager: DeviceManager,
    /// Tenants' devices: adding, pairing, logging out.
    pub devices: DeviceService,
    /// Devices' WhatsApp groups.
    pub groups: GroupService,
    /// The people devices talk to: profiles, blocking.
    pub contacts: ContactService,
    pub outbound: Outbound,
    pub inbound: Inbound,
    /// The scheduled-message worker.
    pub scheduler: Scheduler,
    /// Webhook endpoints' secrets, the delivery worker and event emission.
    pub webhooks: Webhooks,
    /// Tenants' WebAssembly plugins: uploading, settings, dry runs (the inbound pipeline's
    /// plugin stage runs them).
    pub plugins: PluginService,
    /// Downloads media sent by URL.
    pub media: MediaFetcher,
    /// Keeps media bytes (inbound downloads, sent media) and signs download links.
    pub media_keeper: MediaKeeper,
    /// What `/metrics` shows.
    pub metrics: Metrics,
    /// Deletes what is older than its retention.
    pub retention: Retention,
    /// Tenants' keyword auto-reply rules.
    pub rules: RuleService,
    /// Tenants' scheduled messages.
    pub schedules: ScheduleService,
    /// Tenants' webhook endpoints and their log.
    pub endpoints: EndpointService,
    /// Sending and the history, as tenants see them.
    pub messages: MessageService,
    /// The simulated network, when `whatsapp.driver = "simulator"`.
    pub simulator: Option<Arc<Simulator>>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}
