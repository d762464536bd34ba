//! A migrated database for tests that talk to the storage layer directly: SQLite in a
//! temporary folder, or a fresh PostgreSQL database when `GATEWAY_TEST_POSTGRES_URL` is set.
//! The including test declares `mod pg_support` (`support/postgres.rs`) next to this module.

use std::time::Duration;

use wa_gateway::db::{ConnectOptions, Db};

use super::pg_support;

/// A migrated database and whatever keeps it alive.
pub struct Backend {
    pub db: Db,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<pg_support::PgTestDatabase>,
}

fn options(url: String) -> ConnectOptions {
    ConnectOptions { url, max_connections: 5, acquire_timeout: Duration::from_secs(10) }
}

impl Backend {
    pub async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        // A folder that does not exist yet: connecting creates it.
        let url = format!("sqlite:{}/nested/db.sqlite", dir.path().display());
        let db = Db::connect(&options(url)).await.expect("SQLite connects");
        db.migrate().await.expect("SQLite migrations apply");
        Backend { db, _sqlite: Some(dir), _postgres: None }
    }

    /// `None` when no PostgreSQL server is configured.
    pub async fn postgres() -> Option<Backend> {
        let server = pg_support::server_url()?;
        let database = pg_support::PgTestDatabase::create(&server).await;
        let db = Db::connect(&options(database.url().to_string())).await.expect("PostgreSQL connects");
        db.migrate().await.expect("PostgreSQL migrations apply");
        Some(Backend { db, _sqlite: None, _postgres: Some(database) })
    }

    /// Closes the pools (not every including test needs to).
    #[allow(dead_code)]
    pub async fn finish(self) {
        self.db.close().await;
    }
}
