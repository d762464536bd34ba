//! Dashboard logins that hold for every gateway process of one database: operator logins and
//! the failed-login throttle live in the database, not in one process's memory.

use reqwest::StatusCode;

use crate::agent::{tenant, Agent, PASSWORD};
use crate::helpers::TestApp;

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn an_operator_logged_in_through_one_process_is_logged_in_on_the_other() {
    let a = TestApp::spawn().await;
    let b = a.spawn_second().await;
    let mut op = Agent::new(&a);
    let inside = op.submit("/admin/login", "/admin/login", &[("token", &a.admin_token)]).await;
    assert_eq!(inside.location(), "/admin", "{}", inside.body);
    let login = op.cookies.get("wag_admin").cloned().expect("the login sets its cookie");

    op.app = &b;
    let page = op.get("/admin").await;
    assert_eq!(page.status, StatusCode::OK, "the login holds on the other process: {}", page.location());
    let out = op.submit("/admin", "/admin/logout", &[]).await;
    assert_eq!(out.location(), "/admin/login");

    // Ended through the other process, with the old cookie: logged out on the first.
    let mut again = Agent::new(&a);
    again.cookies = op.cookies.clone();
    again.cookies.insert("wag_admin".into(), login);
    assert_eq!(again.get("/admin").await.location(), "/admin/login");
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
async fn failed_logins_through_two_processes_are_counted_together() {
    let a = TestApp::spawn().await;
    let b = a.spawn_second().await;
    let t = tenant(&a, "basic").await;
    let mut guesser = Agent::new(&a);
    for i in 0..4 {
        assert_eq!(
            guesser.login(&t.email, "wrong-password").await.status,
            StatusCode::UNAUTHORIZED,
            "try {i}"
        );
    }
    guesser.app = &b;
    assert_eq!(guesser.login(&t.email, "wrong-password").await.status, StatusCode::UNAUTHORIZED, "try 5");
    let refused = guesser.login(&t.email, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "the fifth failure was the last try");
    guesser.app = &a;
    let refused = guesser.login(&t.email, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "on the first process too");
    assert!(!guesser.cookies.contains_key("wag_session"));
}

#[tokio::test]
async fn an_operator_login_outlives_a_restart_but_not_a_changed_admin_token() {
    let app = TestApp::spawn().await;
    let cookies = {
        let mut op = Agent::new(&app);
        let inside = op.submit("/admin/login", "/admin/login", &[("token", &app.admin_token)]).await;
        assert_eq!(inside.location(), "/admin", "{}", inside.body);
        op.cookies
    };
    let app = app.restart().await;
    let mut op = Agent::new(&app);
    op.cookies = cookies.clone();
    assert_eq!(op.get("/admin").await.status, StatusCode::OK, "the login is kept in the database");

    let app = app.restart_with(|c| c.admin.token = "another-admin-token-7d3e".into()).await;
    let mut op = Agent::new(&app);
    op.cookies = cookies;
    assert_eq!(op.get("/admin").await.location(), "/admin/login", "opened with the old admin token");
}
