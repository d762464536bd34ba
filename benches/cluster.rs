//! Three gateway processes on one PostgreSQL database, disrupted over several rounds (kill -9,
//! SIGSTOP/SIGCONT, restart, graceful stop) under steady traffic; prints how long devices were
//! offline after each disruption and what the processes counted.
//!
//! `GATEWAY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench cluster`

#[path = "../tests/support/cluster_harness.rs"]
mod cluster_harness;
#[path = "../tests/support/postgres.rs"]
mod postgres;

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = postgres::server_url().context("set GATEWAY_TEST_POSTGRES_URL to a PostgreSQL server")?;
    let database = postgres::PgTestDatabase::create(&server).await;
    let report = cluster_harness::run(database.url(), cluster_harness::Plan::long()).await?;
    println!("{report}");
    Ok(())
}
