//! Text search of the history: any substring in any case, search syntax taken literally, tenant
//! isolation, edits and deletions, large result sets.

use super::*;

/// On SQLite, FTS5's own check that the trigram index holds exactly the texts of `messages`
/// (it fails when a trigger missed an insert, edit or delete). PostgreSQL maintains its index.
async fn assert_search_index_matches_messages(app: &TestApp) {
    if app.config.database.url.starts_with("sqlite:") {
        app.execute_sql("INSERT INTO messages_search (messages_search, rank) VALUES ('integrity-check', 1)")
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
    app.execute_sql(&format!("UPDATE messages SET text = 'Diskon berakhir kemarin' WHERE id = {edited}"))
        .await;
    assert_eq!(search("50%").await, Vec::<i64>::new(), "the old text is gone");
    assert_eq!(search("hari ini").await, Vec::<i64>::new());
    assert_eq!(search("AKHIR kem").await, [edited], "the new text is found");
    assert_eq!(search("diskon").await, sorted_desc(vec![edited, m["shop_in_customer"]]));
    app.execute_sql(&format!("UPDATE messages SET text = NULL WHERE id = {}", m["shop_in_customer"])).await;
    assert_eq!(search("diskon").await, [edited]);
    assert_eq!(search("masih ada").await, Vec::<i64>::new());
    app.execute_sql(&format!("DELETE FROM messages WHERE id = {}", m["shop_out_other"])).await;
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
    app.execute_sql(&format!("DELETE FROM users WHERE id = {}", tenant.id)).await;
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
    app.execute_sql(&format!(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) \
             INSERT INTO messages (user_id, device_id, direction, chat, sender, recipient, text, status, \
             source, created_at, updated_at, processed_at) \
             SELECT {}, {device}, 'out', '{CUSTOMER}@s.whatsapp.net', '{SHOP}', '{CUSTOMER}', \
             'Laporan harian nomor ' || i, 'sent', 'api', {base} + (i * 7919 % {n}) * 1000, \
             {base}, {base} FROM k",
        tenant.id
    ))
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
