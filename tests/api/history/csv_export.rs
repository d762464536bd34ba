//! The CSV export of the history: quoting, filters, completeness across batches.

use super::*;

/// The export's header row.
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
