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

/// Three processes started at the same moment on an empty PostgreSQL database (no tables, no
/// admin token configured, no webhook key): all start (the migrations run once, under their
/// lock), one admin token is shown, and every process accepts it and serves the same data.
/// Which process's token and webhook key win is decided by `setting_insert_once`, whose race
/// `tests/db_conformance.rs` covers; here the migrations' lock mostly orders the starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn three_processes_starting_at_once_on_an_empty_database_agree_on_one_state() {
    use sqlx::{Connection, Executor};

    let server = postgres::server_url().expect("GATEWAY_TEST_POSTGRES_URL is set");
    let name = format!("wag_test_race_{}_{:08x}", std::process::id(), rand::random::<u32>());
    let mut admin = sqlx::PgConnection::connect(&server).await.expect("the server");
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("an empty database");
    let mut url = reqwest::Url::parse(&server).expect("a URL");
    url.set_path(&format!("/{name}"));

    let names = ["race-a", "race-b", "race-c"];
    let started = futures::future::join_all(
        names.map(|n| cluster_harness::Gateway::launch(n, url.as_str(), None, None)),
    )
    .await;
    let gateways: Vec<_> = started.into_iter().map(|g| g.expect("every process starts")).collect();
    let tokens: Vec<&String> = gateways.iter().filter_map(|(_, token)| token.as_ref()).collect();
    assert_eq!(tokens.len(), 1, "one process made and showed the admin token: {tokens:?}");
    let token = tokens[0];

    let http = reqwest::Client::new();
    let first = gateways[0].0.base();
    let tenant: serde_json::Value = http
        .post(format!("{first}/api/admin/tenants"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": "Toko", "email": "toko@example.com", "package": "basic"}))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    let key = tenant["api_key"].as_str().unwrap_or_else(|| panic!("a tenant: {tenant}"));
    for (gateway, _) in &gateways {
        let listed = http
            .get(format!("{}/api/admin/tenants", gateway.base()))
            .bearer_auth(token)
            .send()
            .await
            .expect("an answer");
        assert_eq!(listed.status(), reqwest::StatusCode::OK, "{} takes the one admin token", gateway.base());
        let info = http
            .get(format!("{}/api/user/info", gateway.base()))
            .header("x-api-key", key)
            .send()
            .await
            .expect("an answer");
        assert_eq!(info.status(), reqwest::StatusCode::OK, "{} knows the tenant", gateway.base());
    }
    drop(gateways);
    let _ = admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
}
