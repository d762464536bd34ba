//! The operator pages behind the admin login, over plain HTTP.

use reqwest::StatusCode;

use crate::agent::{tenant, Agent, Page, PASSWORD};
use crate::helpers::{unique, TestApp, TestTenant};

#[tokio::test]
async fn the_operator_logs_in_with_the_admin_token_and_manages_tenants() {
    let app = TestApp::spawn().await;
    let mut op = Agent::new(&app);
    let away = op.get("/admin").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.location(), "/admin/login");

    let t = tenant(&app, "basic").await;
    let mut tenant_agent = Agent::new(&app);
    tenant_agent.login(&t.email, PASSWORD).await;
    assert_eq!(tenant_agent.get("/admin").await.location(), "/admin/login", "a tenant login is no operator");

    let wrong = op.submit("/admin/login", "/admin/login", &[("token", "wagadm_wrong")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(wrong.body.contains("id=\"form-error\""), "{}", wrong.body);
    let inside = op.submit("/admin/login", "/admin/login", &[("token", &app.admin_token)]).await;
    assert_eq!(inside.status, StatusCode::SEE_OTHER, "{}", inside.body);
    assert_eq!(inside.location(), "/admin");
    let page = op.get("/admin").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&t.email), "{}", page.body);
    assert!(page.body.contains("Messages per month: 0/"), "usage is shown: {}", page.body);

    let email = format!("operator{}-{}@example.com", unique(), std::process::id());
    let fields =
        [("name", "Toko Baru"), ("email", email.as_str()), ("package", "basic"), ("password", PASSWORD)];
    let made = op.submit("/admin", "/admin", &fields).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let marker = "id=\"tenant-api-key\" class=\"code secret\">";
    let start = made.body.find(marker).expect("the key is shown once") + marker.len();
    let key = made.body[start..].split('<').next().unwrap().to_string();
    let (status, limits) = app.get("/api/user/limits", &key).await;
    assert_eq!(status, StatusCode::OK, "the shown key works: {limits}");
    assert!(!op.get("/admin").await.body.contains(&key), "the key is shown once");
    let duplicate = op.submit("/admin", "/admin", &fields).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT, "{}", duplicate.body);
    assert!(duplicate.body.contains("id=\"form-error\""), "{}", duplicate.body);

    let id = t.id;
    let moved = op.submit("/admin", &format!("/admin/tenants/{id}/package"), &[("package", "premium")]).await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.body);
    let (_, row) = app.admin_get(&format!("/api/admin/tenants/{id}")).await;
    assert_eq!(row["package"], "premium", "{row}");
    let off = op.submit("/admin", &format!("/admin/tenants/{id}/suspend"), &[]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.body);
    let (_, row) = app.admin_get(&format!("/api/admin/tenants/{id}")).await;
    assert_eq!(row["status"], "suspended", "{row}");
    assert_eq!(tenant_agent.get("/").await.location(), "/login", "a suspended tenant is logged out");
    let on = op.submit("/admin", &format!("/admin/tenants/{id}/activate"), &[]).await;
    assert_eq!(on.status, StatusCode::SEE_OTHER, "{}", on.body);
    let (_, row) = app.admin_get(&format!("/api/admin/tenants/{id}")).await;
    assert_eq!(row["status"], "active", "{row}");
    let (_, activity) = app.get("/api/user/activity-logs", &t.api_key).await;
    let entry = activity["data"].as_array().unwrap().iter().find(|a| a["actor"] == "admin").cloned();
    let entry = entry.unwrap_or_else(|| panic!("the suspension is logged: {activity}"));
    assert_eq!(entry["ip"], "127.0.0.1", "with the operator's address: {entry}");
    assert_eq!(op.submit("/admin", "/admin/tenants/999999/suspend", &[]).await.status, StatusCode::NOT_FOUND);

    let page = format!("/admin/tenants/{id}");
    assert!(op.get(&page).await.body.contains("id=\"limit-messages_per_month\""));
    let limits = [("devices", "3"), ("messages_per_month", "unlimited"), ("plugins", "")];
    let saved = op.submit(&page, &format!("/admin/tenants/{id}/limits"), &limits).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, row) = app.admin_get(&format!("/api/admin/tenants/{id}")).await;
    assert_eq!(row["limits"]["devices"], 3, "{row}");
    assert!(row["limits"]["messages_per_month"].is_null(), "{row}");
    assert!(row["limits"].get("plugins").is_none(), "empty keeps the package's value: {row}");
    let (_, limits) = app.get("/api/user/limits", &t.api_key).await;
    assert_eq!(limits["limits"]["devices"], 3, "{limits}");
    assert!(op.get(&page).await.body.contains("value=\"unlimited\""));
    let bad = op.submit(&page, &format!("/admin/tenants/{id}/limits"), &[("devices", "lots")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body.contains("id=\"form-error\""), "{}", bad.body);
    assert_eq!(op.get("/admin/tenants/999999").await.status, StatusCode::NOT_FOUND);

    let forged = op.post(&format!("/admin/tenants/{id}/suspend"), &[("csrf", &"0".repeat(64))]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let as_tenant = tenant_agent.submit("/", &format!("/admin/tenants/{id}/suspend"), &[]).await;
    assert_eq!(as_tenant.location(), "/admin/login", "a tenant cannot act as the operator");

    let out = op.submit("/admin", "/admin/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(op.get("/admin").await.location(), "/admin/login");
}

#[tokio::test]
async fn the_tenant_list_pages_through_many_tenants() {
    let app = TestApp::spawn().await;
    let first = tenant(&app, "basic").await;
    for _ in 0..50 {
        app.create_tenant("basic").await;
    }
    let mut op = Agent::new(&app);
    op.submit("/admin/login", "/admin/login", &[("token", &app.admin_token)]).await;
    let page = op.get("/admin").await;
    assert!(page.body.contains("id=\"next-tenants\""), "{}", page.body);
    assert!(!page.body.contains(&first.email), "newest first, 50 a page");
    let second = op.get("/admin?offset=50").await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.body.contains(&first.email), "{}", second.body);
    assert!(!second.body.contains("id=\"next-tenants\"") && second.body.contains("rel=\"prev\""));
}

/// The table row of `page` whose `id` attribute is `id`.
fn row<'p>(page: &'p Page, id: &str) -> &'p str {
    let start =
        page.body.find(&format!("<tr id=\"{id}\"")).unwrap_or_else(|| panic!("row {id}: {}", page.body));
    let rest = &page.body[start..];
    &rest[..rest.find("</tr>").expect("the row ends")]
}

#[tokio::test]
async fn the_operator_sees_this_process_and_who_holds_which_device() {
    let app = TestApp::spawn_with(|c| c.cluster.node_name = "gw-<satu> & dua".into()).await;
    let t = tenant(&app, "premium").await;
    let owner = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&owner, &format!("62813{:08}", unique() % 100_000_000)).await;
    let node = app.state.device_manager.node().id().to_string();
    let (holder, epoch) = app.state.db.cluster_holder(device).await.unwrap().expect("the device is held");
    assert_eq!(holder, node);

    // Nobody but the operator: no session, and a tenant's session, go to the operator login.
    let mut nobody = Agent::new(&app);
    let away = nobody.get("/admin/cluster").await;
    assert_eq!((away.status, away.location()), (StatusCode::SEE_OTHER, "/admin/login"));
    let mut tenant_agent = Agent::new(&app);
    tenant_agent.login(&t.email, PASSWORD).await;
    let away = tenant_agent.get("/admin/cluster").await;
    assert_eq!((away.status, away.location()), (StatusCode::SEE_OTHER, "/admin/login"), "{}", away.body);
    assert!(!away.body.contains(&node));

    let mut op = Agent::new(&app);
    op.submit("/admin/login", "/admin/login", &[("token", &app.admin_token)]).await;
    let home = op.get("/admin").await;
    assert!(home.body.contains("href=\"/admin/cluster\""), "linked from the operator's home: {}", home.body);
    let page = op.get("/admin/cluster").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("<satu>"), "the name is escaped: {}", page.body);
    let me = row(&page, &format!("node-{node}"));
    assert!(me.contains("gw-&lt;satu&gt; &amp; dua"), "{me}");
    assert!(me.contains("id=\"this-process\">this process<"), "{me}");
    assert!(me.contains(&format!("<td>{}</td>", env!("CARGO_PKG_VERSION"))), "{me}");
    assert!(me.ends_with("<td>1</td>"), "it holds the one device: {me}");
    let lease = row(&page, &format!("lease-{device}"));
    assert!(lease.contains("gw-&lt;satu&gt; &amp; dua") && lease.contains(&node), "the holder: {lease}");
    assert!(lease.contains(&format!("class=\"epoch\">{epoch}<")), "epoch {epoch}: {lease}");
    assert!(lease.contains("data-status=\"connected\">yes<"), "the holder is live: {lease}");
    let taken = page.body.split("id=\"counter-leases_taken\">").nth(1).expect("the counters are shown");
    let taken: u64 = taken.split('<').next().unwrap().parse().expect("a number");
    assert!(taken >= 1, "this process took the device's lease");

    // The leases page like the other lists; past the end there are none, and a way back.
    let past = op.get("/admin/cluster?offset=50").await;
    assert_eq!(past.status, StatusCode::OK, "{}", past.body);
    assert!(!past.body.contains(&format!("id=\"lease-{device}\"")) && past.body.contains("rel=\"prev\""));
    assert!(past.body.contains("No leases on this page."), "{}", past.body);
}
