//! The harness every API test uses: a real gateway on 127.0.0.1:0 over a fresh database.
//!
//! The database is a SQLite file in a temporary folder, or, when `GATEWAY_TEST_POSTGRES_URL`
//! is set, a new PostgreSQL database created for the test and dropped after it.

#![allow(dead_code)] // The harness also serves tests that later issues add.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wa_gateway::app::AppOptions;
use wa_gateway::config::DriverKind;
use wa_gateway::devices::manager::DeviceUpdate;
use wa_gateway::{App, AppState, Config};

#[path = "../support/postgres.rs"]
pub mod postgres;

use postgres::PgTestDatabase;

/// The admin token every test gateway is configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token-5f1c2a9e";

/// Where a test gateway keeps its data. Kept alive as long as the test needs it.
enum TestDatabase {
    /// The folder holds the database file and the media store.
    Sqlite(TempDir),
    /// The folder holds the media store.
    Postgres(PgTestDatabase, TempDir),
}

/// A tenant created through the admin API, with its first API key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: i64,
    pub api_key: String,
    pub email: String,
}

/// A running gateway.
pub struct TestApp {
    /// The address the server listens on.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    /// The configuration the gateway was built with (database URL included).
    pub config: Config,
    /// The gateway's services, for tests that call them directly.
    pub state: AppState,
    shutdown: CancellationToken,
    run: Option<JoinHandle<anyhow::Result<()>>>,
    database: Option<TestDatabase>,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A number not used before in this test process (for names and emails).
pub fn unique() -> u64 {
    UNIQUE.fetch_add(1, Ordering::Relaxed) + 1
}

fn init_logging(config: &Config) {
    // Set TEST_LOG=1 (and RUST_LOG as usual) to see the gateway's logs in test output.
    if std::env::var_os("TEST_LOG").is_some() {
        wa_gateway::telemetry::init(&config.log);
    }
}

/// The test defaults (a free port, the simulator, no send pacing) on a fresh database, then
/// `configure` applied.
async fn test_config(configure: impl FnOnce(&mut Config)) -> (Config, TestDatabase) {
    let mut config = Config::from_toml("").expect("the embedded defaults load");
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.admin.token = ADMIN_TOKEN.to_string();
    config.whatsapp.driver = DriverKind::Simulator;
    config.whatsapp.send_min_gap_ms = 0;
    config.whatsapp.send_jitter_ms = 0;
    config.server.shutdown_grace = 5;
    // Links the gateway hands out (media) point at the port it really listens on.
    config.server.public_url = String::new();
    // Hundreds of gateways start at once in the suite: on a loaded machine opening a database
    // can take longer than a quiet server's limit.
    config.database.acquire_timeout = 60;
    let database = match postgres::server_url() {
        Some(server) => {
            let db = PgTestDatabase::create(&server).await;
            config.database.url = db.url().to_string();
            config.database.max_connections = 5;
            let media = tempfile::tempdir().expect("a temporary folder");
            config.media.path = media.path().join("media");
            TestDatabase::Postgres(db, media)
        }
        None => {
            let dir = tempfile::tempdir().expect("a temporary folder");
            config.database.url = format!("sqlite:{}", dir.path().join("gateway.db").display());
            config.media.path = dir.path().join("media");
            TestDatabase::Sqlite(dir)
        }
    };
    configure(&mut config);
    init_logging(&config);
    (config, database)
}

/// Builds and starts a gateway process: the one way every test app comes to life. Returns it
/// with its device updates, subscribed before its workers started (nothing is missed; lossy
/// only past 1024 unread updates). `database` is `None` for a second process on another
/// app's database.
async fn launch(
    config: Config,
    database: Option<TestDatabase>,
    options: AppOptions,
) -> (TestApp, tokio::sync::broadcast::Receiver<DeviceUpdate>) {
    let app = App::build_with(config.clone(), options).await.expect("the gateway builds");
    let addr = app.local_addr();
    let state = app.state().clone();
    let updates = state.device_manager.subscribe();
    let shutdown = app.shutdown_token();
    let run = tokio::spawn(app.run());
    let app = TestApp {
        addr,
        base_url: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client"),
        admin_token: config.admin.token.clone(),
        config,
        state,
        shutdown,
        run: Some(run),
        database,
    };
    (app, updates)
}

impl TestApp {
    /// A gateway with the test defaults.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A gateway with the test defaults, then `configure` applied to its configuration.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
        let (config, database) = test_config(configure).await;
        launch(config, Some(database), AppOptions::default()).await.0
    }

    async fn start(config: Config, database: TestDatabase) -> TestApp {
        launch(config, Some(database), AppOptions::default()).await.0
    }

    /// Stops the gateway gracefully and starts a new one on the same database and
    /// configuration. The new one listens on a new port: use the returned app's `base_url`.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let database = self.database.take().expect("the database is still there");
        Self::start(self.config.clone(), database).await
    }

    /// Stops the gateway and waits until it has drained; the database stays.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(run) = self.run.take() {
            tokio::time::timeout(Duration::from_secs(30), run)
                .await
                .expect("the gateway stops within 30 s")
                .expect("the run task did not panic")
                .expect("the gateway ran without error");
        }
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// A request to `path` without credentials, to finish and pass to [`TestApp::send`].
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends a request and returns its status and JSON body (`Null` when empty, a string when
    /// the body is not JSON).
    pub async fn send(&self, request: RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("the request reaches the gateway");
        json_of(response).await
    }

    /// GET with `x-api-key: key`.
    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path).header("x-api-key", key)).await
    }

    /// POST a JSON body with `x-api-key: key`.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).header("x-api-key", key).json(body)).await
    }

    /// PATCH a JSON body with `x-api-key: key`.
    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.request(Method::PATCH, path).header("x-api-key", key).json(body)).await
    }

    /// DELETE with `x-api-key: key`.
    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::DELETE, path).header("x-api-key", key)).await
    }

    /// GET with the admin token.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path).bearer_auth(&self.admin_token)).await
    }

    /// POST a JSON body with the admin token.
    pub async fn admin_post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).bearer_auth(&self.admin_token).json(body)).await
    }

    /// PATCH a JSON body with the admin token.
    pub async fn admin_patch(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.request(Method::PATCH, path).bearer_auth(&self.admin_token).json(body)).await
    }

    /// Creates a tenant on `package` through the admin API.
    pub async fn create_tenant(&self, package: &str) -> TestTenant {
        let n = unique();
        let email = format!("tenant{n}-{}@example.com", std::process::id());
        let (status, body) = self
            .admin_post(
                "/api/admin/tenants",
                &serde_json::json!({
                    "name": format!("Tenant {n}"),
                    "email": email,
                    "package": package,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create tenant: {body}");
        TestTenant {
            id: body["id"].as_i64().expect("the tenant has an id"),
            api_key: body["api_key"].as_str().expect("the tenant has an api_key").to_string(),
            email,
        }
    }

    /// Sets limit overrides of a tenant (`{"messages_per_month": 10, ...}`).
    pub async fn set_limits(&self, tenant: &TestTenant, limits: Value) {
        let (status, body) = self
            .admin_patch(
                &format!("/api/admin/tenants/{}", tenant.id),
                &serde_json::json!({ "limits": limits }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "set limits: {body}");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Reads a response into its status and JSON body.
pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("a readable body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts an error answer: the status and `{"error": {"code": code, "message": ...}}`.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "the error has a message: {body}"
    );
}

/// Calls `check` every 20 ms until it returns `Some`, and returns that value. Panics when
/// `timeout` passes first. Use it instead of sleeping for asynchronous effects.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("the condition was not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Devices and messages (issue 3): pairing through the simulator, inbound messages, restarts
// with a changed configuration.
// ---------------------------------------------------------------------------------------

/// How long the device and message helpers wait for an asynchronous effect.
pub const WAIT: Duration = Duration::from_secs(15);

impl TestApp {
    /// Like [`TestApp::restart`], with `configure` applied to the configuration first.
    pub async fn restart_with(mut self, configure: impl FnOnce(&mut Config)) -> TestApp {
        self.stop().await;
        let database = self.database.take().expect("the database is still there");
        let mut config = self.config.clone();
        configure(&mut config);
        Self::start(config, database).await
    }

    /// Runs `sql` on the gateway's database directly, for what the API does not offer (edits,
    /// bulk rows, a trigger that makes the database refuse a row).
    pub async fn execute_sql(&self, sql: &str) {
        let url = &self.config.database.url;
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.expect("the SQLite file opens");
            sqlx::query(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL answers");
            sqlx::query(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
        }
    }

    /// The single integer `sql` selects, read from the gateway's database directly.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        let url = &self.config.database.url;
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.expect("the SQLite file opens");
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
            n
        } else {
            let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL answers");
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
            n
        }
    }

    /// Waits until the gateway has nothing left to do for what happened so far: every inbound
    /// message through its pipeline, no outbound message queued, every status change turned
    /// into webhook deliveries and none of those pending. After this, "nothing more happened"
    /// can be asserted without a fixed sleep.
    pub async fn wait_idle(&self) {
        const WORK: &str = "SELECT \
            (SELECT COUNT(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL) \
            + (SELECT COUNT(*) FROM messages WHERE status = 'queued') \
            + (SELECT COUNT(*) FROM message_status_history WHERE NOT webhooked) \
            + (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending')";
        poll_until(Duration::from_secs(30), || async { (self.query_i64(WORK).await == 0).then_some(()) })
            .await;
    }

    /// Whether the gateway runs on PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        !self.config.database.url.starts_with("sqlite:")
    }

    /// Creates a device for `phone`, fetches its QR, scans it through the simulator and waits
    /// until it is `connected`. Returns the device id.
    pub async fn pair_device(&self, tenant: &TestTenant, phone: &str) -> i64 {
        let (status, body) = self
            .post(
                "/api/user/devices",
                &tenant.api_key,
                &serde_json::json!({ "phone": phone, "name": format!("Device {phone}") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create device: {body}");
        let id = body["id"].as_i64().expect("the device has an id");
        self.scan_device(tenant, id).await;
        id
    }

    /// Fetches the device's QR, scans it through the simulator and waits until it is
    /// `connected`.
    pub async fn scan_device(&self, tenant: &TestTenant, id: i64) {
        let (status, body) = self.get(&format!("/api/user/devices/{id}/qr"), &tenant.api_key).await;
        assert_eq!(status, StatusCode::OK, "device QR: {body}");
        let (status, body) =
            self.admin_post("/api/admin/simulator/scan", &serde_json::json!({ "device": id })).await;
        assert_eq!(status, StatusCode::OK, "simulator scan: {body}");
        self.wait_for_device_status(tenant, id, "connected").await;
    }

    /// Polls `GET /api/user/devices/{id}` until its status is `status`; returns the device.
    pub async fn wait_for_device_status(&self, tenant: &TestTenant, id: i64, status: &str) -> Value {
        let path = format!("/api/user/devices/{id}");
        poll_until(WAIT, || async {
            let (code, body) = self.get(&path, &tenant.api_key).await;
            assert_eq!(code, StatusCode::OK, "get device: {body}");
            (body["status"] == status).then_some(body)
        })
        .await
    }

    /// A message from `from` arrives at device `device` (id) through the simulator. Returns
    /// the simulator's answer (`{"device", "id"}`, `id` being WhatsApp's message id).
    pub async fn inbound(&self, device: i64, from: &str, text: &str, push_name: Option<&str>) -> Value {
        let (status, body) = self
            .admin_post(
                "/api/admin/simulator/inbound",
                &serde_json::json!({
                    "device": device,
                    "from": from,
                    "text": text,
                    "push_name": push_name,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "simulator inbound: {body}");
        body
    }

    /// What the simulator saw the gateway send through device `device` (id), oldest first.
    pub async fn outbox(&self, device: i64) -> Vec<Value> {
        let (status, body) = self.admin_get(&format!("/api/admin/simulator/outbox?device={device}")).await;
        assert_eq!(status, StatusCode::OK, "simulator outbox: {body}");
        body["data"].as_array().expect("the outbox is a list").clone()
    }

    /// Polls `GET /api/user/chat-history/{id}` until the message has `status`; returns it.
    pub async fn wait_for_message_status(&self, tenant: &TestTenant, id: i64, status: &str) -> Value {
        let path = format!("/api/user/chat-history/{id}");
        poll_until(WAIT, || async {
            let (code, body) = self.get(&path, &tenant.api_key).await;
            assert_eq!(code, StatusCode::OK, "get message: {body}");
            (body["status"] == status).then_some(body)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Scale-out (issue 5): a second gateway process on the same database.
// ---------------------------------------------------------------------------------------

impl TestApp {
    /// A gateway (test defaults, then `configure`) whose simulated WhatsApp network has its own
    /// connection to the database, so the network outlives this process: for tests where
    /// gateways started with [`TestApp::spawn_second`] share it and this one stops.
    pub async fn spawn_with_lasting_network(configure: impl FnOnce(&mut Config)) -> TestApp {
        let (config, database) = test_config(configure).await;
        let db = wa_gateway::db::Db::connect(&wa_gateway::db::ConnectOptions {
            url: config.database.url.clone(),
            max_connections: 2,
            acquire_timeout: Duration::from_secs(60),
        })
        .await
        .expect("the simulated network reaches the database");
        let network = wa_gateway::devices::simulator::Simulator::new(db, Default::default());
        let options = AppOptions { simulator: Some(std::sync::Arc::new(network)), ..AppOptions::default() };
        launch(config, Some(database), options).await.0
    }

    /// A second gateway on the same database and configuration, with its own port and
    /// workers, on the same simulated WhatsApp network (as a second process would reach the
    /// same WhatsApp). The database stays owned by `self`: stop the second app first. Meant
    /// for PostgreSQL; a second process on one SQLite file refuses to start.
    pub async fn spawn_second(&self) -> TestApp {
        let options = AppOptions { simulator: self.state.simulator.clone(), ..AppOptions::default() };
        launch(self.config.clone(), None, options).await.0
    }
}

// ---------------------------------------------------------------------------------------
// The whatsapp-web driver (issue 4): gateways built with `AppOptions` (a fake WhatsApp
// network), kept across restarts.
// ---------------------------------------------------------------------------------------

/// Builds the options of each gateway process (called again on every restart, so every
/// process gets the same network).
pub type OptionsFn = std::sync::Arc<dyn Fn() -> AppOptions + Send + Sync>;

/// A [`TestApp`] built with [`wa_gateway::App::build_with`]: derefs to the app, and
/// [`TestAppWith::restart`] builds the next process with the same options.
pub struct TestAppWith {
    pub app: TestApp,
    options: OptionsFn,
    /// Every device update of this gateway process, subscribed before its workers started
    /// (nothing is missed; lossy only past 1024 unread updates).
    pub updates: tokio::sync::broadcast::Receiver<DeviceUpdate>,
}

impl std::ops::Deref for TestAppWith {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl std::ops::DerefMut for TestAppWith {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.app
    }
}

impl TestApp {
    /// Like [`TestApp::spawn_with`], with the gateway built by `App::build_with(config,
    /// options())`. The options are built again for every restart of the returned app.
    pub async fn spawn_with_options(
        configure: impl FnOnce(&mut Config),
        options: impl Fn() -> AppOptions + Send + Sync + 'static,
    ) -> TestAppWith {
        let (config, database) = test_config(configure).await;
        Self::start_with_options(config, database, std::sync::Arc::new(options)).await
    }

    async fn start_with_options(config: Config, database: TestDatabase, options: OptionsFn) -> TestAppWith {
        let (app, updates) = launch(config, Some(database), options()).await;
        TestAppWith { app, options, updates }
    }
}

impl TestAppWith {
    /// A second gateway process on the same database, configuration and options (the same
    /// fake WhatsApp network), with its own port. Stop it before `self`, which owns the
    /// database. Meant for PostgreSQL.
    pub async fn spawn_second(&self) -> TestAppWith {
        let (app, updates) = launch(self.app.config.clone(), None, (self.options)()).await;
        TestAppWith { app, options: self.options.clone(), updates }
    }

    /// Stops the gateway gracefully and starts a new process on the same database,
    /// configuration and options (the same fake network). New port: use the returned app.
    pub async fn restart(mut self) -> TestAppWith {
        self.app.stop().await;
        let database = self.app.database.take().expect("the database is still there");
        TestApp::start_with_options(self.app.config.clone(), database, self.options.clone()).await
    }
}
