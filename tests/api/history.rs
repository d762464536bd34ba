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
    // Out-of-range paging is clamped, not refused.
    let clamped = history(&app, &tenant, &[("limit", "100000"), ("offset", "-5")]).await;
    assert_eq!(ids(&clamped).len(), 7);
    assert_eq!(clamped["offset"], 0);
    assert!(clamped["limit"].as_i64().unwrap() <= 500);
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
        let (status, body) = app.get(&format!("/api/user/chat-history/{id}"), &other.api_key).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, body) = app.get(&format!("/api/user/chat-history/{id}"), &owner.api_key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for path in ["/api/user/chat-history/999999", "/api/user/chat-history/abc"] {
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

const HEADER: [&str; 14] = [
    "id",
    "created_at",
    "device",
    "direction",
    "chat",
    "from",
    "to",
    "push_name",
    "type",
    "text",
    "status",
    "error",
    "source",
    "wa_id",
];

#[tokio::test]
async fn the_csv_export_quotes_commas_quotes_and_newlines_correctly() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    let texts = [
        "plain",
        "Harga: 10,000, 20,000",
        "Dia bilang \"oke\" lalu pergi",
        "baris satu\nbaris dua\r\nbaris tiga",
        "\"quoted\", \"and\"\ncomma",
        " leading and trailing spaces ",
        "emoji 🎉 dan aksara ꦲꦏ꧀ꦱꦫ",
    ];
    let mut expected = HashMap::new();
    for text in texts {
        expected.insert(send(&app, &tenant, device, CUSTOMER, text).await, text.to_string());
    }
    let tricky_name = "Budi, \"Toko\"\nSejahtera";
    let (status, body) = app
        .admin_post(
            "/api/admin/simulator/inbound",
            &json!({"device": device, "from": OTHER_CUSTOMER, "text": "masuk, \"ya\"", "push_name": tricky_name}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let inbound = newest(&app, &tenant).await;
    expected.insert(inbound, "masuk, \"ya\"".to_string());

    let records = export(&app, &tenant, &[]).await;
    assert_eq!(records[0].iter().collect::<Vec<_>>(), HEADER);
    let rows = &records[1..];
    assert_eq!(rows.len(), expected.len(), "one row per message");
    let col = |name: &str| HEADER.iter().position(|h| *h == name).unwrap();
    let row_ids: Vec<i64> = rows.iter().map(|r| r[col("id")].parse().unwrap()).collect();
    assert_eq!(row_ids, sorted_desc(expected.keys().copied().collect()), "newest first");
    let list = history(&app, &tenant, &[]).await;
    for row in rows {
        assert_eq!(row.len(), HEADER.len());
        let id: i64 = row[col("id")].parse().unwrap();
        assert_eq!(row[col("text")], expected[&id], "row {id}");
        let api = list["data"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap();
        for field in
            ["created_at", "device", "direction", "chat", "from", "to", "type", "status", "source", "wa_id"]
        {
            assert_eq!(json!(row[col(field)]), api[field], "row {id}, {field}");
        }
    }
    let inbound_row = rows.iter().find(|r| r[col("id")] == inbound.to_string()).unwrap();
    assert_eq!(&inbound_row[col("push_name")], tricky_name);
    assert_eq!(&inbound_row[col("direction")], "in");
}

#[tokio::test]
async fn the_csv_export_honours_the_filters() {
    let app = TestApp::spawn().await;
    let (tenant, shop, _, m) = seeded(&app).await;
    let shop_id = shop.to_string();

    let cases: Vec<Case> = vec![
        (vec![("direction", "in")], vec!["shop_in_customer", "branch_in_other"]),
        (vec![("device", shop_id.as_str())], vec!["shop_out_customer", "shop_in_customer", "shop_out_other"]),
        (
            vec![("chat", "081234567890"), ("direction", "out")],
            vec!["shop_out_customer", "branch_out_customer"],
        ),
        (vec![("q", "50%")], vec!["shop_out_customer"]),
        (vec![("status", "received"), ("device", shop_id.as_str())], vec!["shop_in_customer"]),
        (vec![("since", "2000-01-01"), ("until", "2000-01-02")], vec![]),
    ];
    for (query, expected) in cases {
        let records = export(&app, &tenant, &query).await;
        assert_eq!(records[0].iter().collect::<Vec<_>>(), HEADER, "{query:?}");
        let got: Vec<i64> = records[1..].iter().map(|r| r[0].parse().unwrap()).collect();
        assert_eq!(got, sorted_desc(expected.iter().map(|k| m[k]).collect()), "{query:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_export_is_complete_across_its_batches() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    // More rows than one export batch (500) holds, twice over.
    let n = 1_100;
    let injected: Vec<Value> = futures::stream::iter(0..n)
        .map(|i| {
            let app = &app;
            async move { app.inbound(device, CUSTOMER, &format!("pesan, nomor \"{i}\""), None).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(injected.len(), n);

    let records = export(&app, &tenant, &[]).await;
    assert_eq!(records.len(), n + 1, "a header and every message");
    let exported: Vec<i64> = records[1..].iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(exported.iter().collect::<HashSet<_>>().len(), n, "no row twice");
    let order: Vec<(String, i64)> =
        records[1..].iter().map(|r| (r[1].to_string(), r[0].parse().unwrap())).collect();
    assert!(order.windows(2).all(|w| w[0] > w[1]), "newest first (time, then id)");
    let texts: HashSet<String> = records[1..].iter().map(|r| r[9].to_string()).collect();
    assert!((0..n).all(|i| texts.contains(&format!("pesan, nomor \"{i}\""))));

    // The history counts up to 1,000 matches (or the requested page's end) and says when it
    // stopped there.
    let page = history(&app, &tenant, &[]).await;
    assert_eq!(
        (page["total"].as_i64(), &page["total_exact"]),
        (Some(1_000), &json!(false)),
        "{}",
        page["total"]
    );
    let deep = history(&app, &tenant, &[("offset", "1000"), ("limit", "50")]).await;
    assert_eq!(
        (deep["total"].as_i64(), &deep["total_exact"]),
        (Some(1_050), &json!(false)),
        "{}",
        deep["total"]
    );
    assert_eq!(ids(&deep).len(), 50);
    let last = history(&app, &tenant, &[("offset", "1090"), ("limit", "50")]).await;
    assert_eq!(
        (last["total"].as_i64(), &last["total_exact"]),
        (Some(n as i64), &json!(true)),
        "{}",
        last["total"]
    );
    assert_eq!(ids(&last).len(), 10);
    let narrow = history(&app, &tenant, &[("q", "nomor \"7")]).await;
    assert_eq!(
        (narrow["total"].as_i64(), &narrow["total_exact"]),
        (Some(111), &json!(true)),
        "{}",
        narrow["total"]
    );
}

/// Runs `sql` on the gateway's database directly: message edits and deletes, a tenant's
/// removal and bulk history, which the API does not offer.
async fn execute_sql(app: &TestApp, sql: &str) {
    let url = &app.config.database.url;
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("the SQLite file opens");
        sqlx::query(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL answers");
        sqlx::query(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
    }
}

/// On SQLite, FTS5's own check that the trigram index holds exactly the texts of `messages`
/// (it fails when a trigger missed an insert, edit or delete). PostgreSQL maintains its index.
async fn assert_search_index_matches_messages(app: &TestApp) {
    if app.config.database.url.starts_with("sqlite:") {
        execute_sql(app, "INSERT INTO messages_search (messages_search, rank) VALUES ('integrity-check', 1)")
            .await;
    }
}

/// The page's messages by label (`labels` maps ids back), newest first.
fn labels_of(page: &Value, labels: &HashMap<&'static str, i64>) -> Vec<&'static str> {
    let by_id: HashMap<i64, &'static str> = labels.iter().map(|(k, v)| (*v, *k)).collect();
    ids(page).iter().map(|id| by_id.get(id).copied().unwrap_or("(unknown)")).collect()
}

#[tokio::test]
async fn text_search_finds_any_substring_in_any_case_and_takes_search_syntax_literally() {
    let app = TestApp::spawn().await;
    let (tenant, shop, _, mut m) = seeded(&app).await;
    m.insert("quoted", send(&app, &tenant, shop, CUSTOMER, "Kode \"PROMO*2024\" berlaku").await);
    m.insert(
        "syntax",
        send(&app, &tenant, shop, OTHER_CUSTOMER, "Pilih A OR B: NEAR(toko) -buka ^ok C:\\toko").await,
    );
    m.insert("unicode", receive(&app, &tenant, shop, CUSTOMER, "emoji 🎉 dan aksara ꦲꦏ꧀ꦱꦫ").await);

    // Queries of three characters or more go through the trigram index; shorter ones scan.
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // Inside a word, in any case.
        ("derx", vec!["branch_in_other"]),
        ("rXi", vec!["branch_in_other"]),
        ("ISKO", vec!["shop_out_customer", "shop_in_customer"]),
        ("lo w", vec!["branch_out_customer"]),
        ("Xi", vec!["branch_in_other"]),
        ("or", vec!["shop_out_other", "branch_in_other", "branch_out_customer", "syntax"]),
        // LIKE wildcards and the escape character are text.
        ("50%", vec!["shop_out_customer"]),
        ("0%", vec!["shop_out_customer"]),
        ("%%%", vec![]),
        ("_id", vec!["shop_out_other"]),
        ("r_i", vec!["shop_out_other"]),
        ("___", vec![]),
        (":\\t", vec!["syntax"]),
        ("\\", vec!["syntax"]),
        // FTS5 query syntax is text too.
        ("\"", vec!["quoted"]),
        ("\"\"", vec![]),
        ("\"promo*", vec!["quoted"]),
        ("*20", vec!["quoted"]),
        ("4\" b", vec!["quoted"]),
        ("\"PROMO*2024\"", vec!["quoted"]),
        ("promo*2025", vec![]),
        ("OR B", vec!["syntax"]),
        ("a or", vec!["syntax"]),
        ("NEAR(", vec!["syntax"]),
        ("NEAR(toko)", vec!["syntax"]),
        ("-buka ^", vec!["syntax"]),
        ("ok C:", vec!["syntax"]),
        ("diskon OR hello", vec![]),
        ("text:", vec![]),
        ("(", vec!["syntax"]),
        // Characters beyond ASCII, as written.
        ("🎉 d", vec!["unicode"]),
        ("ꦏ꧀ꦱ", vec!["unicode"]),
        ("ꦱꦫ", vec!["unicode"]),
    ];
    for (q, expected) in cases {
        let page = history(&app, &tenant, &[("q", q)]).await;
        let want = sorted_desc(expected.iter().map(|k| m[k]).collect());
        assert_eq!(ids(&page), want, "q={q:?}: {:?}", labels_of(&page, &m));
        assert_eq!(page["total"], want.len(), "q={q:?}");
    }
    // Combined with the other filters.
    let shop_id = shop.to_string();
    for (query, expected) in [
        (vec![("q", "ord"), ("direction", "in")], vec!["branch_in_other"]),
        (vec![("q", "ord"), ("device", shop_id.as_str())], vec!["shop_out_other"]),
        (vec![("q", "or"), ("chat", OTHER_CUSTOMER)], vec!["shop_out_other", "branch_in_other", "syntax"]),
        (vec![("q", "ISKON"), ("status", "received")], vec!["shop_in_customer"]),
        (vec![("q", "iskon"), ("until", "2000-01-01")], vec![]),
    ] {
        let page = history(&app, &tenant, &query).await;
        let want = sorted_desc(expected.iter().map(|k| m[k]).collect());
        assert_eq!(ids(&page), want, "{query:?}: {:?}", labels_of(&page, &m));
    }
    let records = export(&app, &tenant, &[("q", "\"promo*")]).await;
    assert_eq!(records.len(), 2, "a header and the quoted message: {records:?}");
}

#[tokio::test]
async fn text_search_never_returns_another_tenants_messages() {
    let app = TestApp::spawn().await;
    let owner = app.create_tenant("basic").await;
    let other = app.create_tenant("basic").await;
    let owner_device = app.pair_device(&owner, SHOP).await;
    let other_device = app.pair_device(&other, BRANCH).await;
    // The same words in both tenants: the trigram index holds everyone's messages.
    let mine = send(&app, &owner, owner_device, CUSTOMER, "Rahasia dagang: resep 7").await;
    let theirs = send(&app, &other, other_device, CUSTOMER, "Rahasia dagang: resep 7").await;
    let their_inbound = receive(&app, &other, other_device, CUSTOMER, "resep rahasia juga").await;

    for (q, their_matches) in [
        ("rahasia", vec![theirs, their_inbound]),
        ("DAGANG: R", vec![theirs]),
        ("ep 7", vec![theirs]),
        ("resep", vec![theirs, their_inbound]),
        ("ra", vec![theirs, their_inbound]),
        ("7", vec![theirs]),
    ] {
        let page = history(&app, &owner, &[("q", q)]).await;
        assert_eq!((ids(&page), &page["total"]), (vec![mine], &json!(1)), "owner, q={q:?}");
        let page = history(&app, &other, &[("q", q)]).await;
        let want = sorted_desc(their_matches);
        assert_eq!((ids(&page), &page["total"]), (want.clone(), &json!(want.len())), "other, q={q:?}");
    }
    let records = export(&app, &owner, &[("q", "rahasia")]).await;
    let exported: Vec<i64> = records[1..].iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(exported, [mine]);
}

#[tokio::test]
async fn text_search_follows_edited_and_deleted_messages_and_removed_devices_and_tenants() {
    let app = TestApp::spawn().await;
    let (tenant, _, branch, m) = seeded(&app).await;
    let search = |q: &'static str| {
        let (app, tenant) = (&app, &tenant);
        async move { ids(&history(app, tenant, &[("q", q)]).await) }
    };

    // The API never edits a text; the storage must still keep the index right if one changes.
    let edited = m["shop_out_customer"];
    execute_sql(&app, &format!("UPDATE messages SET text = 'Diskon berakhir kemarin' WHERE id = {edited}"))
        .await;
    assert_eq!(search("50%").await, Vec::<i64>::new(), "the old text is gone");
    assert_eq!(search("hari ini").await, Vec::<i64>::new());
    assert_eq!(search("AKHIR kem").await, [edited], "the new text is found");
    assert_eq!(search("diskon").await, sorted_desc(vec![edited, m["shop_in_customer"]]));
    execute_sql(&app, &format!("UPDATE messages SET text = NULL WHERE id = {}", m["shop_in_customer"])).await;
    assert_eq!(search("diskon").await, [edited]);
    assert_eq!(search("masih ada").await, Vec::<i64>::new());
    execute_sql(&app, &format!("DELETE FROM messages WHERE id = {}", m["shop_out_other"])).await;
    assert_eq!(search("order_id").await, Vec::<i64>::new());
    assert_eq!(search("ord").await, [m["branch_in_other"]]);
    assert_search_index_matches_messages(&app).await;

    // Removing a device removes its messages (a cascade) from the search.
    let (status, body) = app.delete(&format!("/api/user/devices/{branch}"), &tenant.api_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(search("ord").await, Vec::<i64>::new());
    assert_eq!(search("hello world").await, Vec::<i64>::new());
    assert_eq!(search("iskon").await, [edited]);
    assert_search_index_matches_messages(&app).await;

    // So does removing a tenant, with its devices and messages; other tenants search on.
    let other = app.create_tenant("basic").await;
    let other_device = app.pair_device(&other, OTHER_CUSTOMER).await;
    let theirs = send(&app, &other, other_device, CUSTOMER, "Diskon untuk semua").await;
    execute_sql(&app, &format!("DELETE FROM users WHERE id = {}", tenant.id)).await;
    assert_search_index_matches_messages(&app).await;
    let page = history(&app, &other, &[("q", "diskon")]).await;
    assert_eq!((ids(&page), &page["total"]), (vec![theirs], &json!(1)));
}

#[tokio::test]
async fn a_text_search_matching_thousands_of_messages_counts_pages_and_orders_them_by_time() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("basic").await;
    let other = app.create_tenant("basic").await;
    let device = app.pair_device(&tenant, SHOP).await;
    app.pair_device(&other, BRANCH).await;
    // More matches than SQLite's cut-over from the trigram index to walking the history
    // (2,000), stored with times out of id order, as messages stored concurrently can be:
    // message `i` was created `(i * 7919) % n` seconds after `base`.
    let n: i64 = 2_100;
    let base = (chrono::Utc::now().timestamp() - 86_400) * 1_000;
    let at = |i: i64| base + (i * 7_919 % n) * 1_000;
    execute_sql(
        &app,
        &format!(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) \
             INSERT INTO messages (user_id, device_id, direction, chat, sender, recipient, text, status, \
             source, created_at, updated_at, processed_at) \
             SELECT {}, {device}, 'out', '{CUSTOMER}@s.whatsapp.net', '{SHOP}', '{CUSTOMER}', \
             'Laporan harian nomor ' || i, 'sent', 'api', {base} + (i * 7919 % {n}) * 1000, \
             {base}, {base} FROM k",
            tenant.id
        ),
    )
    .await;
    assert_search_index_matches_messages(&app).await;
    // The message numbers, newest first.
    let mut newest_first: Vec<i64> = (1..=n).collect();
    newest_first.sort_by_key(|i| std::cmp::Reverse(at(*i)));
    let numbers = |page: &Value| -> Vec<i64> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                m["text"].as_str().unwrap().strip_prefix("Laporan harian nomor ").unwrap().parse().unwrap()
            })
            .collect()
    };
    let since = chrono::DateTime::from_timestamp_millis(at(newest_first[99])).unwrap().to_rfc3339();

    let (all, last_100, none) = (&newest_first[..], &newest_first[..100], &[][..]);
    // (query, the matching messages, offset, limit, total, exact)
    for (query, matching, offset, limit, total, exact) in [
        (vec![("q", "laporan")], all, 0, 50, 1_000, false),
        (vec![("q", "LAPORAN HARIAN"), ("offset", "2050"), ("limit", "100")], all, 2_050, 100, n, true),
        (vec![("q", "aporan"), ("chat", CUSTOMER)], all, 0, 50, 1_000, false),
        (vec![("q", "laporan"), ("since", since.as_str())], last_100, 0, 50, 100, true),
        (vec![("q", "la")], all, 0, 50, 1_000, false),
        (vec![("q", "laporan"), ("direction", "in")], none, 0, 50, 0, true),
    ] {
        let page = history(&app, &tenant, &query).await;
        let want = &matching[offset.min(matching.len())..(offset + limit).min(matching.len())];
        assert_eq!(numbers(&page), want, "{query:?}");
        let counted = (page["total"].as_i64(), &page["total_exact"]);
        assert_eq!(counted, (Some(total), &json!(exact)), "{query:?}");
    }
    // Few matches: the trigram index finds them, and they come in the same order.
    let sevens: Vec<i64> = newest_first.iter().copied().filter(|i| i.to_string().starts_with('7')).collect();
    assert_eq!(sevens.len(), 111);
    let page = history(&app, &tenant, &[("q", "nomor 7"), ("limit", "500")]).await;
    assert_eq!(numbers(&page), sevens);
    assert_eq!((page["total"].as_i64(), &page["total_exact"]), (Some(111), &json!(true)));
    // The export walks every match in order, in batches.
    for (q, want) in [("nomor 7", &sevens), ("laporan", &newest_first)] {
        let records = export(&app, &tenant, &[("q", q)]).await;
        let exported: Vec<i64> = records[1..]
            .iter()
            .map(|r| r[9].strip_prefix("Laporan harian nomor ").unwrap().parse().unwrap())
            .collect();
        assert_eq!(&exported, want, "q={q:?}");
    }
    // Another tenant finds none of them, however many the index holds.
    for q in ["laporan", "nomor 7", "la"] {
        let page = history(&app, &other, &[("q", q)]).await;
        assert_eq!((ids(&page).len(), &page["total"], &page["total_exact"]), (0, &json!(0), &json!(true)));
    }
}
