//! A fresh PostgreSQL database per test, on the server named by `GATEWAY_TEST_POSTGRES_URL`.
//!
//! Shared by the test binaries through `#[path]`; it is not a test binary itself.
//!
//! Running the migrations takes longer than creating a database, so each test database is a
//! copy of a migrated template, `wag_tmpl_<hash of the migrations>`. The first test that finds
//! no template for its migrations builds one; later tests and runs reuse it. Test
//! databases themselves are named `wag_test_<unix time>_<random>` and dropped after the test.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection};
use wa_gateway::db::{ConnectOptions, Db};

/// The environment variable that turns on the PostgreSQL runs.
pub const ENV: &str = "GATEWAY_TEST_POSTGRES_URL";

/// The server URL given in the environment, if any.
pub fn server_url() -> Option<String> {
    std::env::var(ENV).ok().filter(|s| !s.trim().is_empty())
}

/// A database created for one test, with the migrations applied. Dropping it drops the
/// database (best effort).
pub struct PgTestDatabase {
    server_url: String,
    name: String,
    url: String,
}

/// The URL of database `name` on the server at `server_url`.
fn database_url(server_url: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(server_url).unwrap_or_else(|e| panic!("{ENV} is not a URL: {e}"));
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn random_name(prefix: &str) -> String {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("{prefix}_{stamp}_{:08x}", rand::thread_rng().gen::<u32>())
}

/// Runs `work` on a thread of its own with its own runtime, so it can be called from sync code
/// and from inside a test's runtime alike.
fn on_own_runtime<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(work)
    })
    .join()
    .expect("the database thread did not panic")
}

async fn execute(server_url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(server_url).await?;
    let result = conn.execute(sql).await.map(|_| ());
    let _ = conn.close().await;
    result
}

/// The template's name: a hash of the migrations this test binary was built with (the same
/// files the gateway embeds), so a change to any migration makes a new template.
fn template_name() -> String {
    let migrator = sqlx::migrate!("migrations/postgres");
    let mut hash = Sha256::new();
    for m in migrator.iter() {
        hash.update(m.version.to_be_bytes());
        hash.update(&*m.checksum);
    }
    format!("wag_tmpl_{}", hex::encode(&hash.finalize()[..8]))
}

/// Finds or builds the migrated template for this binary's migrations; returns its name.
async fn prepare_template(server_url: String) -> Result<String, String> {
    let template = template_name();
    let exists = database_exists(&server_url, &template)
        .await
        .map_err(|e| format!("cannot reach {ENV}={server_url}: {e}"))?;
    if exists {
        return Ok(template);
    }
    let building = random_name("wag_tmpl_building");
    execute(&server_url, &format!("CREATE DATABASE {building}"))
        .await
        .map_err(|e| format!("cannot create database {building}: {e}"))?;
    let options = ConnectOptions {
        url: database_url(&server_url, &building),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(30),
    };
    let migrated = async {
        let db = Db::connect(&options).await.map_err(|e| e.to_string())?;
        let result = db.migrate().await.map_err(|e| format!("migrations failed: {e}"));
        db.close().await;
        result
    }
    .await;
    if let Err(e) = migrated {
        let _ = execute(&server_url, &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)")).await;
        return Err(e);
    }
    // Publishing by rename is atomic: when another process published the same template first,
    // the rename fails and that one is used. The rename also fails while the server still
    // counts our closed connection; that lasts a moment.
    let mut last_error = String::new();
    for _ in 0..50 {
        match execute(&server_url, &format!("ALTER DATABASE {building} RENAME TO {template}")).await {
            Ok(()) => return Ok(template),
            Err(e) => last_error = e.to_string(),
        }
        if database_exists(&server_url, &template).await.unwrap_or(false) {
            let _ = execute(&server_url, &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)")).await;
            return Ok(template);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = execute(&server_url, &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)")).await;
    Err(format!("cannot publish template {template}: {last_error}"))
}

async fn database_exists(server_url: &str, name: &str) -> Result<bool, sqlx::Error> {
    let mut conn = PgConnection::connect(server_url).await?;
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(found.is_some())
}

/// The template for this process, built once.
fn template(server_url: &str) -> &'static str {
    static TEMPLATE: OnceLock<Result<String, String>> = OnceLock::new();
    let server = server_url.to_string();
    match TEMPLATE.get_or_init(|| on_own_runtime(prepare_template(server))) {
        Ok(name) => name,
        Err(e) => panic!("cannot prepare the PostgreSQL template database: {e}"),
    }
}

impl PgTestDatabase {
    /// Creates `wag_test_<time>_<random>` on the server at `server_url`, migrated.
    pub async fn create(server_url: &str) -> PgTestDatabase {
        let server = server_url.to_string();
        let template = template(&server);
        let name = random_name("wag_test");
        let mut last_error = None;
        // Cloning fails while another session is connected to the template (a process
        // that is publishing it); that lasts a moment.
        for _ in 0..50 {
            match execute(&server, &format!("CREATE DATABASE {name} TEMPLATE {template}")).await {
                Ok(()) => {
                    last_error = None;
                    break;
                }
                Err(e) => {
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if let Some(e) = last_error {
            panic!("cannot create database {name} from {template}: {e}");
        }
        PgTestDatabase { url: database_url(&server, &name), server_url: server, name }
    }

    /// The URL of the new database, for `database.url`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgTestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on async work: use a thread
        // with its own runtime. FORCE ends connections the test left open.
        let server_url = self.server_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if on_own_runtime(async move { execute(&server_url, &sql).await }).is_err() {
            eprintln!("note: test database {} was not dropped; remove it by hand", self.name);
        }
    }
}
