//! The harness of the session-store conformance suite: fresh databases, the oracle/store
//! pair, and a canonical form of answers so the two stores' answers compare.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use sqlx::Connection;
use wa_gateway::db::tenants::NewTenant;
use wa_gateway::db::{ConnectOptions, Db, Dialect};
use wa_gateway::devices::whatsapp_web::store::SqlxStore;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::StoreError;
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry, TcTokenEntry,
};
use whatsapp_rust::wacore::store::{Device, InMemoryBackend};

/// A migrated database and what keeps it alive.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    pub name: &'static str,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<crate::postgres::PgTestDatabase>,
}

fn options(url: &str) -> ConnectOptions {
    ConnectOptions { url: url.to_string(), max_connections: 5, acquire_timeout: Duration::from_secs(10) }
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("gateway.db").display());
        let db = Db::connect(&options(&url)).await.expect("SQLite connects");
        db.migrate().await.expect("SQLite migrations apply");
        TestDb { db, url, name: "sqlite", _sqlite: Some(dir), _postgres: None }
    }

    pub async fn postgres() -> Option<TestDb> {
        let server = crate::postgres::server_url()?;
        let database = crate::postgres::PgTestDatabase::create(&server).await;
        let url = database.url().to_string();
        let db = Db::connect(&options(&url)).await.expect("PostgreSQL connects");
        db.migrate().await.expect("PostgreSQL migrations apply");
        Some(TestDb { db, url, name: "postgres", _sqlite: None, _postgres: Some(database) })
    }

    /// A tenant with `n` devices; answers the tenant id and the device ids.
    pub async fn devices(&self, n: usize) -> (i64, Vec<i64>) {
        let new =
            NewTenant { name: "Toko", email: "toko@example.com", package: "premium", password_hash: None };
        let tenant = self.db.create_tenant(&new, "wag_test", "hash").await.unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            match self.db.create_device(tenant.id, &format!("6281200000{i:02}"), "phone", None).await.unwrap()
            {
                Some(row) => ids.push(row.id),
                None => unreachable!("no limit given"),
            }
        }
        (tenant.id, ids)
    }

    /// Rows of `device_id` in every `wa_*` table, counted by SQL written here rather than by
    /// the code under test (so a table the store forgets shows up).
    pub async fn raw_rows(&self, device_id: i64) -> HashMap<String, i64> {
        const COUNT: &str = "SELECT COUNT(*) FROM {table} WHERE device_id = $1";
        let mut out = HashMap::new();
        match self.db.dialect() {
            Dialect::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'wa!_%' ESCAPE '!'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                for table in tables {
                    let n: i64 = sqlx::query_scalar(&COUNT.replace("{table}", &table))
                        .bind(device_id)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                    out.insert(table, n);
                }
            }
            Dialect::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_name LIKE 'wa!_%' ESCAPE '!'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                for table in tables {
                    let n: i64 = sqlx::query_scalar(&COUNT.replace("{table}", &table))
                        .bind(device_id)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                    out.insert(table, n);
                }
            }
        }
        assert_eq!(out.len(), 19, "every session table is counted: {out:?}");
        out
    }
}

// ----- comparing answers -----

/// A canonical JSON form of an answer, so answers of the two stores compare regardless of
/// map order and of which answers are lists without a defined order.
pub trait Canon {
    fn canon(&self) -> Value;
}

impl Canon for () {
    fn canon(&self) -> Value {
        Value::Null
    }
}

macro_rules! canon_as_json {
    ($($t:ty),*) => {$(
        impl Canon for $t {
            fn canon(&self) -> Value {
                json!(self)
            }
        }
    )*};
}
canon_as_json!(
    bool,
    u32,
    i32,
    i64,
    usize,
    String,
    AppStateSyncKey,
    HashState,
    LidPnMappingEntry,
    DeviceListRecord,
    TcTokenEntry,
    Device
);

impl Canon for Vec<u8> {
    fn canon(&self) -> Value {
        json!(hex::encode(self))
    }
}

impl Canon for Bytes {
    fn canon(&self) -> Value {
        json!(hex::encode(self))
    }
}

impl Canon for [u8; 32] {
    fn canon(&self) -> Value {
        json!(hex::encode(self))
    }
}

impl<T: Canon> Canon for Option<T> {
    fn canon(&self) -> Value {
        self.as_ref().map_or(Value::Null, |v| json!({ "some": v.canon() }))
    }
}

impl<A: Canon, B: Canon> Canon for (A, B) {
    fn canon(&self) -> Value {
        json!([self.0.canon(), self.1.canon()])
    }
}

/// A list whose order is part of the answer.
impl Canon for Vec<(u32, Bytes)> {
    fn canon(&self) -> Value {
        Value::Array(self.iter().map(Canon::canon).collect())
    }
}

fn unordered<T: Canon>(items: &[T]) -> Value {
    let mut values: Vec<Value> = items.iter().map(Canon::canon).collect();
    values.sort_by_key(|v| v.to_string());
    Value::Array(values)
}

impl Canon for Vec<(u32, Vec<u8>)> {
    fn canon(&self) -> Value {
        unordered(self)
    }
}

impl Canon for Vec<(String, bool)> {
    fn canon(&self) -> Value {
        unordered(self)
    }
}

impl Canon for Vec<String> {
    fn canon(&self) -> Value {
        unordered(self)
    }
}

impl Canon for Vec<LidPnMappingEntry> {
    fn canon(&self) -> Value {
        unordered(self)
    }
}

impl Canon for HashMap<[u8; 32], Vec<u8>> {
    fn canon(&self) -> Value {
        let pairs: Vec<([u8; 32], Vec<u8>)> = self.iter().map(|(k, v)| (*k, v.clone())).collect();
        unordered(&pairs)
    }
}

impl<T: Canon> Canon for Result<T, StoreError> {
    fn canon(&self) -> Value {
        match self {
            Ok(v) => json!({ "ok": v.canon() }),
            Err(e) => json!({ "err": e.to_string() }),
        }
    }
}

/// The oracle and the store under test for one gateway device.
pub struct Pair {
    pub oracle: InMemoryBackend,
    pub store: SqlxStore,
    pub backend: &'static str,
}

impl Pair {
    pub fn new(db: &TestDb, device_id: i64) -> Pair {
        Pair {
            oracle: InMemoryBackend::new(),
            store: SqlxStore::new(db.db.clone(), device_id),
            backend: db.name,
        }
    }
}

/// Calls the same method on the oracle and on the store, asserts equal answers and yields
/// the store's (successful) answer.
macro_rules! same {
    ($pair:expr, $method:ident($($arg:expr),* $(,)?)) => {{
        let pair: &$crate::harness::Pair = &$pair;
        let want = pair.oracle.$method($($arg),*).await;
        let got = pair.store.$method($($arg),*).await;
        assert_eq!(
            $crate::harness::Canon::canon(&got),
            $crate::harness::Canon::canon(&want),
            "{}: {} differs from the in-memory store",
            pair.backend,
            stringify!($method($($arg),*)),
        );
        got.expect("both stores succeed")
    }};
}

pub fn arc(s: &str) -> Arc<str> {
    Arc::from(s)
}

pub fn mac(index: u8, value: u8) -> AppStateMutationMAC {
    AppStateMutationMAC { index_mac: vec![index; 32], value_mac: vec![value; 32] }
}

pub fn lid(lid: &str, phone: &str, at: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: at,
        updated_at: at + 1,
        learning_source: "usync".into(),
    }
}

pub fn device_list(user: &str, devices: &[u32], timestamp: i64) -> DeviceListRecord {
    DeviceListRecord {
        user: user.into(),
        devices: devices.iter().map(|d| DeviceInfo::new(*d, Some(d + 10)).with_hosting(*d == 99)).collect(),
        timestamp,
        phash: Some(format!("2:{timestamp}")),
        raw_id: devices.first().copied(),
    }
}

pub fn secret(
    chat: &str,
    sender: &str,
    id: &str,
    fill: u8,
    expires_at: i64,
    message_ts: i64,
) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: arc(chat),
        sender: arc(sender),
        msg_id: arc(id),
        secret: [fill; 32],
        expires_at,
        message_ts,
    }
}
