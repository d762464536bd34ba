//! Three real gateway processes on one PostgreSQL database and one shared simulated network,
//! disrupted with SIGKILL, SIGSTOP, a restart and SIGTERM while they carry traffic: nothing
//! lost, nothing doubled, never two connections for a device, every device back online. The
//! harness is in `support/cluster_harness.rs`; `cargo bench --bench cluster` runs the long
//! plan and prints its numbers.

#[path = "support/cluster_harness.rs"]
mod cluster_harness;
#[path = "support/postgres.rs"]
mod postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn three_processes_lose_and_double_nothing_through_kill_freeze_restart_and_stop() {
    let server = postgres::server_url().expect("GATEWAY_TEST_POSTGRES_URL is set");
    let database = postgres::PgTestDatabase::create(&server).await;
    let report = cluster_harness::run(database.url(), cluster_harness::Plan::short())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    println!("{report}");
    // The run carried traffic through every disruption it reports.
    assert_eq!(report.takeovers.len(), 3, "{report}");
    assert!(report.sends_accepted > 100 && report.inbound_acked > 50, "{report}");
}
