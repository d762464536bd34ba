//! Message history: filters, paging, detail, tenant isolation and the CSV export.

/// A filter (query pairs) and the labels of the messages it must return.
type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>);

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp, TestTenant};

const SHOP: &str = "6281381830651";
const BRANCH: &str = "6281111111111";
const CUSTOMER: &str = "6281234567890";
const OTHER_CUSTOMER: &str = "6289876543210";

async fn history(app: &TestApp, tenant: &TestTenant, query: &[(&str, &str)]) -> Value {
    let (status, body) = history_answer(app, tenant, query).await;
    assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
    body
}

async fn history_answer(app: &TestApp, tenant: &TestTenant, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let request =
        app.request(Method::GET, "/api/user/chat-history").header("x-api-key", &tenant.api_key).query(query);
    app.send(request).await
}

/// The ids of a history page, in order.
fn ids(page: &Value) -> Vec<i64> {
    page["data"].as_array().expect("a data list").iter().map(|m| m["id"].as_i64().unwrap()).collect()
}

async fn send(app: &TestApp, tenant: &TestTenant, device: i64, to: &str, text: &str) -> i64 {
    let (status, body) = app
        .post("/api/send-message", &tenant.api_key, &json!({"device": device, "to": to, "text": text}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "sent", "{body}");
    body["id"].as_i64().unwrap()
}

/// The id of the newest message in the tenant's history.
async fn newest(app: &TestApp, tenant: &TestTenant) -> i64 {
    ids(&history(app, tenant, &[("limit", "1")]).await)[0]
}

async fn receive(app: &TestApp, tenant: &TestTenant, device: i64, from: &str, text: &str) -> i64 {
    app.inbound(device, from, text, Some("Pelanggan")).await;
    newest(app, tenant).await
}

/// A premium tenant with two connected devices and a small mixed history:
/// `(tenant, shop device, branch device, ids by label)`.
async fn seeded(app: &TestApp) -> (TestTenant, i64, i64, HashMap<&'static str, i64>) {
    let tenant = app.create_tenant("premium").await;
    let shop = app.pair_device(&tenant, SHOP).await;
    let branch = app.pair_device(&tenant, BRANCH).await;
    let mut m = HashMap::new();
    m.insert("shop_out_customer", send(app, &tenant, shop, CUSTOMER, "Diskon 50% hari ini").await);
    m.insert("shop_in_customer", receive(app, &tenant, shop, CUSTOMER, "diskon 50 persen? masih ada").await);
    m.insert("shop_out_other", send(app, &tenant, shop, OTHER_CUSTOMER, "order_id 7 dikirim").await);
    m.insert(
        "branch_in_other",
        receive(app, &tenant, branch, OTHER_CUSTOMER, "orderXid 8 belum sampai").await,
    );
    m.insert("branch_out_customer", send(app, &tenant, branch, CUSTOMER, "HELLO World").await);
    (tenant, shop, branch, m)
}

fn sorted_desc(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

#[tokio::test]
async fn history_filters_by_device_direction_chat_and_status() {
    let app = TestApp::spawn().await;
    let (tenant, shop, branch, m) = seeded(&app).await;

    let all = history(&app, &tenant, &[]).await;
    assert_eq!(all["total"], 5, "{all}");
    assert_eq!(ids(&all), sorted_desc(m.values().copied().collect()), "newest first");
    assert_eq!((all["limit"].as_i64(), all["offset"].as_i64()), (Some(50), Some(0)));

    let shop_id = shop.to_string();
    let branch_id = branch.to_string();
    let cases: Vec<Case> = vec![
        (vec![("device", shop_id.as_str())], vec!["shop_out_customer", "shop_in_customer", "shop_out_other"]),
        (vec![("device", SHOP)], vec!["shop_out_customer", "shop_in_customer", "shop_out_other"]),
        (vec![("device", "081111111111")], vec!["branch_in_other", "branch_out_customer"]),
        (vec![("device", branch_id.as_str()), ("direction", "in")], vec!["branch_in_other"]),
        (vec![("direction", "in")], vec!["shop_in_customer", "branch_in_other"]),
        (vec![("direction", "out")], vec!["shop_out_customer", "shop_out_other", "branch_out_customer"]),
        (vec![("chat", CUSTOMER)], vec!["shop_out_customer", "shop_in_customer", "branch_out_customer"]),
        (
            vec![("chat", "081234567890")],
            vec!["shop_out_customer", "shop_in_customer", "branch_out_customer"],
        ),
        (
            vec![("chat", "+62 812-3456-7890")],
            vec!["shop_out_customer", "shop_in_customer", "branch_out_customer"],
        ),
        (
            vec![("chat", "6281234567890@s.whatsapp.net")],
            vec!["shop_out_customer", "shop_in_customer", "branch_out_customer"],
        ),
        (vec![("chat", OTHER_CUSTOMER), ("direction", "out")], vec!["shop_out_other"]),
        (vec![("status", "received")], vec!["shop_in_customer", "branch_in_other"]),
        (vec![("status", "sent")], vec!["shop_out_customer", "shop_out_other", "branch_out_customer"]),
        (vec![("status", "read")], vec![]),
        (
            vec![("device", shop_id.as_str()), ("chat", CUSTOMER), ("direction", "out"), ("status", "sent")],
            vec!["shop_out_customer"],
        ),
        // Empty parameters are no filter.
        (vec![("device", ""), ("direction", ""), ("q", "")], m.keys().copied().collect()),
    ];
    for (query, expected) in cases {
        let page = history(&app, &tenant, &query).await;
        let want = sorted_desc(expected.iter().map(|k| m[k]).collect());
        assert_eq!(ids(&page), want, "{query:?}");
        assert_eq!(page["total"], want.len(), "{query:?}");
    }

    // A status filter follows receipts.
    let (status, _) = app
        .admin_post(
            "/api/admin/simulator/receipt",
            &json!({"message_id": m["shop_out_other"], "status": "read"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.wait_for_message_status(&tenant, m["shop_out_other"], "read").await;
    assert_eq!(ids(&history(&app, &tenant, &[("status", "read")]).await), [m["shop_out_other"]]);
}

#[tokio::test]
async fn text_search_ignores_case_and_takes_wildcards_literally() {
    let app = TestApp::spawn().await;
    let (tenant, _, _, m) = seeded(&app).await;

    let cases: [(&str, Vec<&str>); 8] = [
        ("diskon", vec!["shop_out_customer", "shop_in_customer"]),
        ("DISKON 50", vec!["shop_out_customer", "shop_in_customer"]),
        ("50%", vec!["shop_out_customer"]),
        ("%", vec!["shop_out_customer"]),
        ("order_id", vec!["shop_out_other"]),
        ("_", vec!["shop_out_other"]),
        ("hello world", vec!["branch_out_customer"]),
        ("tidak ada", vec![]),
    ];
    for (q, expected) in cases {
        let page = history(&app, &tenant, &[("q", q)]).await;
        let want = sorted_desc(expected.iter().map(|k| m[k]).collect());
        assert_eq!(ids(&page), want, "q={q:?}");
        assert_eq!(page["total"], want.len(), "q={q:?}");
    }
    let page = history(&app, &tenant, &[("q", "diskon"), ("direction", "in")]).await;
    assert_eq!(ids(&page), [m["shop_in_customer"]]);
}

#[tokio::test]
async fn history_filters_by_time_with_since_inclusive_and_until_exclusive() {
    let app = TestApp::spawn().await;
    let (tenant, _, _, m) = seeded(&app).await;
    let all = history(&app, &tenant, &[]).await;
    let everything = ids(&all);
    let created_at = |id: i64| -> String {
        all["data"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap()["created_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = m["shop_out_customer"];
    let at = created_at(first);

    let since = history(&app, &tenant, &[("since", &at)]).await;
    assert!(ids(&since).contains(&first), "since is inclusive: {since}");
    assert_eq!(since["total"], 5, "everything else is later: {since}");
    let until = history(&app, &tenant, &[("until", &at)]).await;
    assert!(!ids(&until).contains(&first), "until is exclusive: {until}");

    let last = m["branch_out_customer"];
    let last_at = created_at(last);
    let before_last = history(&app, &tenant, &[("until", &last_at)]).await;
    let later = history(&app, &tenant, &[("since", &last_at)]).await;
    let mut both = ids(&before_last);
    both.extend(ids(&later));
    assert_eq!(sorted_desc(both), everything, "since and until split the history without overlap");
    assert!(ids(&later).contains(&last));

    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    assert_eq!(history(&app, &tenant, &[("since", &tomorrow)]).await["total"], 0);
    assert_eq!(history(&app, &tenant, &[("since", &yesterday)]).await["total"], 5);
    assert_eq!(history(&app, &tenant, &[("until", &yesterday)]).await["total"], 0);
    assert_eq!(history(&app, &tenant, &[("since", &yesterday), ("until", &tomorrow)]).await["total"], 5);
    // An offset other than Z is honoured.
    let hour_ahead = (chrono::Utc::now() + chrono::Duration::hours(1))
        .with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap())
        .to_rfc3339();
    assert_eq!(history(&app, &tenant, &[("until", &hour_ahead)]).await["total"], 5);
    assert_eq!(history(&app, &tenant, &[("since", &hour_ahead)]).await["total"], 0);
}

#[tokio::test]
async fn history_pages_with_limit_and_offset_and_counts_the_total() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let mut sent = Vec::new();
    for i in 0..7 {
        sent.push(send(&app, &tenant, device, CUSTOMER, &format!("pesan {i}")).await);
    }
    let everything = sorted_desc(sent.clone());

    let mut seen = Vec::new();
    for offset in [0, 3, 6] {
        let page = history(&app, &tenant, &[("limit", "3"), ("offset", &offset.to_string())]).await;
        assert_eq!(page["total"], 7, "{page}");
        assert_eq!(page["total_exact"], true, "{page}");
        assert_eq!(page["limit"], 3);
        assert_eq!(page["offset"], offset);
        seen.extend(ids(&page));
    }
    assert_eq!(seen, everything, "the pages cover the history once, newest first");
    let beyond = history(&app, &tenant, &[("offset", "100")]).await;
    assert_eq!(beyond["total"], 7);
    assert!(ids(&beyond).is_empty());
    // Out-of-range paging is refused, naming the parameter.
    for (query, field) in [(("limit", "100000"), "limit"), (("offset", "-5"), "offset")] {
        let (status, body) = history_answer(&app, &tenant, &[query]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let filtered = history(&app, &tenant, &[("limit", "2"), ("q", "pesan 1")]).await;
    assert_eq!(filtered["total"], 1);
}

#[tokio::test]
async fn invalid_history_parameters_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    app.pair_device(&tenant, SHOP).await;

    for (query, field) in [
        (vec![("direction", "sideways")], "direction"),
        (vec![("direction", "IN ")], "direction"),
        (vec![("since", "yesterday")], "since"),
        (vec![("since", "2026-13-45")], "since"),
        (vec![("until", "12/01/2026")], "until"),
        (vec![("status", "lost")], "status"),
        (vec![("chat", "abc")], "chat"),
        (vec![("limit", "ten")], "limit"),
        (vec![("offset", "1.5")], "offset"),
    ] {
        let (status, body) = history_answer(&app, &tenant, &query).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["error"]["field"], field, "{query:?}: {body}");
        let response = app
            .request(Method::GET, "/api/user/chat-history/export.csv")
            .header("x-api-key", &tenant.api_key)
            .query(&query)
            .send()
            .await
            .unwrap();
        let (status, body) = crate::helpers::json_of(response).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let (status, body) = history_answer(&app, &tenant, &[("device", "6289999999999")]).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn another_tenants_messages_are_invisible() {
    let app = TestApp::spawn().await;
    let owner = app.create_tenant("basic").await;
    let other = app.create_tenant("basic").await;
    let device = app.pair_device(&owner, SHOP).await;
    let out = send(&app, &owner, device, CUSTOMER, "rahasia").await;
    let inbound = receive(&app, &owner, device, CUSTOMER, "rahasia juga").await;

    let theirs = history(&app, &other, &[]).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    assert_eq!(history(&app, &other, &[("q", "rahasia")]).await["total"], 0);
    assert_eq!(history(&app, &other, &[("chat", CUSTOMER)]).await["total"], 0);
    for id in [out, inbound] {
        for base in ["/api/user/chat-history", "/api/user/messages"] {
            let (status, body) = app.get(&format!("{base}/{id}"), &other.api_key).await;
            assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        }
        let (status, body) = app.get(&format!("/api/user/chat-history/{id}"), &owner.api_key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, same) = app.get(&format!("/api/user/messages/{id}"), &owner.api_key).await;
        assert_eq!(same, body, "one message, one view");
        assert_eq!(same["id"], id);
    }
    for path in [
        "/api/user/chat-history/999999",
        "/api/user/chat-history/abc",
        "/api/user/messages/999999",
        "/api/user/messages/abc",
    ] {
        let (status, body) = app.get(path, &owner.api_key).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let csv = export(&app, &other, &[]).await;
    assert_eq!(csv.len(), 1, "only the header: {csv:?}");
}

/// The export's records (header first), parsed with the `csv` crate.
async fn export(app: &TestApp, tenant: &TestTenant, query: &[(&str, &str)]) -> Vec<csv::StringRecord> {
    let response = app
        .request(Method::GET, "/api/user/chat-history/export.csv")
        .header("x-api-key", &tenant.api_key)
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.contains("attachment") && disposition.contains(".csv"), "{disposition}");
    let bytes = response.bytes().await.unwrap();
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[..])
        .records()
        .map(|r| r.expect("valid CSV"))
        .collect()
}

mod csv_export;
mod search;
