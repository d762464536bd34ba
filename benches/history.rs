//! The history benchmark: the first page of `GET /api/user/chat-history` (storage layer,
//! `Db::list_messages`, the call the handler makes) over a million messages; and the first page
//! of `GET /api/user/chats` over the conversations they make (`Db::list_chats` and the latest
//! messages, the calls the service makes).
//!
//! `cargo bench --bench history` fills a fresh SQLite file through the library (migrations, a
//! tenant, two devices), bulk-inserts the messages, then times each filter case and prints
//! p50/p99/max in milliseconds with the machine and the fill time. With
//! `GATEWAY_TEST_POSTGRES_URL` set it runs the same on a fresh PostgreSQL database too.
//!
//! The chats table is built from the filled history by the migration's own backfill statement
//! (its time is printed too).
//!
//! Knobs (environment): `HISTORY_BENCH_ROWS` (default 1,000,000), `HISTORY_BENCH_ITERATIONS`
//! (default 200), `HISTORY_BENCH_KEEP=1` keeps the SQLite file and prints its path (for
//! `EXPLAIN QUERY PLAN` by hand).
//!
//! The goals: history p99 <= 10 ms per case on SQLite; the chat list p99 under 20 ms over
//! 10,000 chats on both databases.

use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, QueryBuilder, SqlitePool};
use wa_gateway::db::chats::ChatFilter;
use wa_gateway::db::tenants::NewTenant;
use wa_gateway::db::{ConnectOptions, Db, MessageFilter};

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

const DAY_MS: i64 = 86_400_000;
const CHATS: usize = 10_000;
/// Rows per transaction of the fill.
const TX_ROWS: usize = 50_000;
/// Rows per INSERT statement (15 parameters each; SQLite allows 32,766 per statement).
const STMT_ROWS: usize = 1_000;
/// The word that appears in about 1% of the texts.
const RARE_WORD: &str = "invoice";
const WORDS: &[&str] = &[
    "halo", "kak", "pesanan", "sudah", "dikirim", "belum", "sampai", "terima", "kasih", "harga", "berapa",
    "stok", "masih", "ada", "ukuran", "warna", "merah", "biru", "hitam", "putih", "promo", "diskon",
    "ongkir", "gratis", "alamat", "resi", "transfer", "bayar", "lunas", "tunggu", "besok", "hari", "ini",
    "minggu", "depan", "toko", "buka", "jam", "berapa", "ready", "order", "please", "thanks", "ok", "siap",
    "mohon", "maaf", "cek", "dulu", "nanti", "kabari", "paket", "kurir", "jne", "sicepat", "cod", "bisa",
    "tidak", "mau", "ambil", "sendiri", "sore", "pagi", "malam", "selamat", "datang", "katalog", "foto",
];

struct Row {
    device_id: i64,
    device_phone: &'static str,
    inbound: bool,
    chat: String,
    peer: String,
    text: String,
    status: &'static str,
    wa_id: String,
    push_name: Option<String>,
    is_group: bool,
    created_at: i64,
}

/// What the fill made, for choosing filter values.
struct Fixture {
    tenant: i64,
    devices: [i64; 2],
    phones: [&'static str; 2],
    sample_chat: String,
    now: i64,
}

/// The messages, deterministic: ids in time order over the last 90 days.
fn generate(rng: &mut StdRng, i: usize, n: usize, fx: &Fixture) -> Row {
    let start = fx.now - 90 * DAY_MS;
    let created_at = start + (i as i64) * (90 * DAY_MS) / (n as i64).max(1);
    let d = rng.gen_range(0..2);
    let inbound = rng.gen_bool(0.5);
    let chat_n = rng.gen_range(0..CHATS);
    let is_group = chat_n % 20 == 0;
    let phone = format!("62812{chat_n:08}");
    let chat = if is_group { format!("120363{chat_n:012}@g.us") } else { format!("{phone}@s.whatsapp.net") };
    let words = rng.gen_range(3..=9);
    let mut text = String::new();
    for w in 0..words {
        if w > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    if rng.gen_bool(0.01) {
        text.push_str(" Invoice #");
        text.push_str(&rng.gen_range(1000..9999).to_string());
    }
    let status = if inbound {
        "received"
    } else {
        match rng.gen_range(0..100) {
            0 => "failed",
            1..=9 => "sent",
            10..=29 => "delivered",
            _ => "read",
        }
    };
    Row {
        device_id: fx.devices[d],
        device_phone: fx.phones[d],
        inbound,
        chat,
        peer: phone,
        text,
        status,
        wa_id: format!("3EB0{i:016X}"),
        push_name: inbound.then(|| format!("Pelanggan {chat_n}")),
        is_group,
        created_at,
    }
}

/// Multi-row INSERTs, `TX_ROWS` per transaction, on either backend.
macro_rules! fill {
    ($pool:expr, $db:ty, $fx:expr, $n:expr) => {{
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut i = 0;
        while i < $n {
            let mut tx = $pool.begin().await?;
            let tx_end = (i + TX_ROWS).min($n);
            while i < tx_end {
                let end = (i + STMT_ROWS).min(tx_end);
                let rows: Vec<Row> = (i..end).map(|k| generate(&mut rng, k, $n, $fx)).collect();
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO messages (user_id, device_id, direction, chat, sender, recipient, text, type, \
                     status, wa_id, push_name, is_group, source, created_at, updated_at, processed_at) ",
                );
                q.push_values(rows, |mut b, r| {
                    let (direction, sender, recipient, source) = if r.inbound {
                        ("in", r.peer.clone(), r.device_phone.to_string(), "whatsapp")
                    } else {
                        ("out", r.device_phone.to_string(), r.peer.clone(), "api")
                    };
                    b.push_bind($fx.tenant)
                        .push_bind(r.device_id)
                        .push_bind(direction)
                        .push_bind(r.chat)
                        .push_bind(sender)
                        .push_bind(recipient)
                        .push_bind(r.text)
                        .push_bind("text")
                        .push_bind(r.status)
                        .push_bind(r.wa_id)
                        .push_bind(r.push_name)
                        .push_bind(r.is_group)
                        .push_bind(source)
                        .push_bind(r.created_at)
                        .push_bind(r.created_at)
                        .push_bind(r.created_at);
                });
                q.build().execute(&mut *tx).await?;
                i = end;
            }
            tx.commit().await?;
        }
    }};
}

async fn fill_sqlite(url: &str, fx: &Fixture, n: usize) -> anyhow::Result<()> {
    let options = SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30));
    let pool: SqlitePool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    fill!(&pool, sqlx::Sqlite, fx, n);
    pool.close().await;
    Ok(())
}

async fn fill_postgres(url: &str, fx: &Fixture, n: usize) -> anyhow::Result<()> {
    let pool = PgPool::connect(url).await?;
    fill!(&pool, sqlx::Postgres, fx, n);
    // Autovacuum would vacuum and analyze a table this size soon after (and then its visibility
    // map lets counts read the index only); do it now so the runs measure that steady state.
    sqlx::query("VACUUM ANALYZE messages").execute(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Migrations, a tenant and two devices, through the library.
async fn prepare(url: &str) -> anyhow::Result<(Db, Fixture)> {
    let db = Db::connect(&ConnectOptions {
        url: url.to_string(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
    })
    .await?;
    db.migrate().await?;
    let tenant = db
        .create_tenant(
            &NewTenant {
                name: "Bench",
                email: "bench@example.com",
                package: "enterprise",
                password_hash: None,
            },
            "wag_bench",
            "not-a-real-key-hash",
        )
        .await?;
    let phones = ["6281381830651", "6281111111111"];
    let mut devices = [0; 2];
    for (slot, phone) in devices.iter_mut().zip(phones) {
        match db.create_device(tenant.id, phone, phone, None).await? {
            Some(row) => *slot = row.id,
            None => anyhow::bail!("no device limit was given"),
        }
    }
    let fx = Fixture {
        tenant: tenant.id,
        devices,
        phones,
        sample_chat: format!("62812{:08}@s.whatsapp.net", 1234),
        now: chrono::Utc::now().timestamp_millis(),
    };
    Ok((db, fx))
}

fn cases(fx: &Fixture) -> Vec<(&'static str, MessageFilter)> {
    let week_ago = fx.now - 7 * DAY_MS;
    let f = MessageFilter::default;
    vec![
        ("no filter", f()),
        ("device", MessageFilter { device_id: Some(fx.devices[0]), ..f() }),
        ("direction=in", MessageFilter { direction: Some("in".into()), ..f() }),
        ("chat", MessageFilter { chat: Some(fx.sample_chat.clone()), ..f() }),
        ("status=failed", MessageFilter { status: Some("failed".into()), ..f() }),
        ("status=delivered", MessageFilter { status: Some("delivered".into()), ..f() }),
        ("since 7 days", MessageFilter { since: Some(week_ago), ..f() }),
        ("until 80 days ago", MessageFilter { until: Some(fx.now - 80 * DAY_MS), ..f() }),
        ("q (1% of rows)", MessageFilter { q: Some(RARE_WORD.into()), ..f() }),
        (
            "device+direction",
            MessageFilter { device_id: Some(fx.devices[1]), direction: Some("out".into()), ..f() },
        ),
        (
            "chat+direction",
            MessageFilter { chat: Some(fx.sample_chat.clone()), direction: Some("in".into()), ..f() },
        ),
        (
            "device+status",
            MessageFilter { device_id: Some(fx.devices[0]), status: Some("failed".into()), ..f() },
        ),
        ("chat+since", MessageFilter { chat: Some(fx.sample_chat.clone()), since: Some(week_ago), ..f() }),
        (
            "device+status+since",
            MessageFilter {
                device_id: Some(fx.devices[0]),
                status: Some("read".into()),
                since: Some(week_ago),
                ..f()
            },
        ),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

/// One case's timings: p50, p99 and max in ms.
struct Timing {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Timing {
    fn of(mut times: Vec<Duration>) -> Timing {
        times.sort();
        Timing { p50: percentile(&times, 0.5), p99: percentile(&times, 0.99), max: percentile(&times, 1.0) }
    }
}

struct CaseResult {
    name: &'static str,
    total: i64,
    /// `list_messages(limit 50, offset 0)`: the page and its `total`, as the API answers.
    listed: Timing,
    /// `list_messages_batch(limit 50)`: the same page without counting.
    page_only: Timing,
}

async fn measure(db: &Db, fx: &Fixture, iterations: usize) -> anyhow::Result<Vec<CaseResult>> {
    let mut results = Vec::new();
    for (name, filter) in cases(fx) {
        // One warm-up call (page cache, statement cache), then the timed ones.
        // The exact number of matches: past the end, the count is never cut short.
        let total = db.list_messages(fx.tenant, &filter, 1, i64::from(i32::MAX)).await?.total;
        db.list_messages(fx.tenant, &filter, 50, 0).await?;
        let mut listed = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            let page = db.list_messages(fx.tenant, &filter, 50, 0).await?;
            listed.push(started.elapsed());
            std::hint::black_box(page);
        }
        db.list_messages_batch(fx.tenant, &filter, 50).await?;
        let mut page_only = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            let rows = db.list_messages_batch(fx.tenant, &filter, 50).await?;
            page_only.push(started.elapsed());
            std::hint::black_box(rows);
        }
        results.push(CaseResult {
            name,
            total,
            listed: Timing::of(listed),
            page_only: Timing::of(page_only),
        });
    }
    Ok(results)
}

/// The statement that fills `chats` from the history (the migration's own).
fn chat_backfill(postgres: bool) -> &'static str {
    let migration = if postgres {
        include_str!("../migrations/postgres/0013_chats.sql")
    } else {
        include_str!("../migrations/sqlite/0013_chats.sql")
    };
    let start = migration.find("INSERT INTO chats").expect("the migration fills chats");
    &migration[start..]
}

/// The chat list's first page (limit 50) per case: p50, p99, max.
async fn measure_chats(
    db: &Db,
    fx: &Fixture,
    iterations: usize,
) -> anyhow::Result<Vec<(&'static str, i64, Timing)>> {
    let f = ChatFilter::default;
    let cases = [
        ("all chats", f()),
        ("one device", ChatFilter { device_id: Some(fx.devices[0]), ..f() }),
        ("q (name)", ChatFilter { q: Some("pelanggan 1234".into()), ..f() }),
        ("unread only", ChatFilter { unread: true, ..f() }),
    ];
    let mut results = Vec::new();
    for (name, filter) in cases {
        let (_, total) = db.list_chats(fx.tenant, &filter, 50, 0).await?;
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            let (rows, total) = db.list_chats(fx.tenant, &filter, 50, 0).await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.last_message_id).collect();
            let last = db.messages_by_ids(fx.tenant, &ids).await?;
            times.push(started.elapsed());
            std::hint::black_box((rows, total, last));
        }
        results.push((name, total, Timing::of(times)));
    }
    Ok(results)
}

/// Builds the chats from the history and times the chat list.
async fn chats(
    db: &Db,
    url: &str,
    fx: &Fixture,
    iterations: usize,
    backend: &str,
    postgres: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    if postgres {
        let pool = PgPool::connect(url).await?;
        sqlx::raw_sql(chat_backfill(true)).execute(&pool).await?;
        sqlx::query("VACUUM ANALYZE chats").execute(&pool).await?;
        pool.close().await;
    } else {
        let pool = SqlitePool::connect(url).await?;
        sqlx::raw_sql(chat_backfill(false)).execute(&pool).await?;
        pool.close().await;
    }
    println!("\n{backend}: chats built from the history in {:.1} s", started.elapsed().as_secs_f64());
    let results = measure_chats(db, fx, iterations).await?;
    println!("{backend}: chat list, first page (limit 50) with total and latest messages, ms");
    println!("| case | chats | p50 | p99 | max |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, total, t) in results {
        println!("| {name} | {total} | {:.2} | {:.2} | {:.2} |", t.p50, t.p99, t.max);
    }
    Ok(())
}

fn print_results(backend: &str, results: &[CaseResult]) {
    println!(
        "\n{backend}: first page (limit 50), ms; `with total` is the API's call, `page only` skips the count"
    );
    println!("| case | matching rows | with total p50 | p99 | max | page only p50 | p99 | max |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in results {
        let (l, p) = (&r.listed, &r.page_only);
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.name, r.total, l.p50, l.p99, l.max, p.p50, p.p99, p.max
        );
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

async fn run() -> anyhow::Result<()> {
    let rows = env_usize("HISTORY_BENCH_ROWS", 1_000_000);
    let iterations = env_usize("HISTORY_BENCH_ITERATIONS", 200).max(1);
    println!("history benchmark: {rows} messages, {iterations} runs per case");
    println!("machine: {}", common::machine());

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("history.db");
    let url = format!("sqlite:{}", path.display());
    let (db, fx) = prepare(&url).await?;
    let started = Instant::now();
    fill_sqlite(&url, &fx, rows).await?;
    let fill = started.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "SQLite fill: {:.1} s ({:.0} rows/s), file {} MB",
        fill.as_secs_f64(),
        rows as f64 / fill.as_secs_f64(),
        size >> 20
    );
    let results = measure(&db, &fx, iterations).await?;
    print_results("SQLite", &results);
    chats(&db, &url, &fx, iterations, "SQLite", false).await?;
    db.close().await;
    if std::env::var_os("HISTORY_BENCH_KEEP").is_some() {
        let kept = dir.keep();
        println!("kept the SQLite database at {}", kept.join("history.db").display());
    }

    if let Some(server) = postgres::server_url() {
        let pg = postgres::PgTestDatabase::create(&server).await;
        let (db, fx) = prepare(pg.url()).await?;
        let started = Instant::now();
        fill_postgres(pg.url(), &fx, rows).await?;
        let fill = started.elapsed();
        println!(
            "\nPostgreSQL fill: {:.1} s ({:.0} rows/s)",
            fill.as_secs_f64(),
            rows as f64 / fill.as_secs_f64()
        );
        let results = measure(&db, &fx, iterations).await?;
        print_results("PostgreSQL", &results);
        chats(&db, pg.url(), &fx, iterations, "PostgreSQL", true).await?;
        db.close().await;
    } else {
        println!("\n(set {} to run on PostgreSQL as well)", postgres::ENV);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}
