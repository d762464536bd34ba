//! The two plugin worlds through the real server: a component built for 0.1.0 (`echo-v1`)
//! uploads and answers exactly as before; a 0.2.0 plugin (`probe`) sees the kind and the parts
//! of a location message and of a quoted message sent through the simulator, and its quoted
//! replies, location reply, reaction and read mark reach the simulator's outbox;
//! `keyword-router` answers with a location; an oversized location name is refused whole.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{runs, setup, upload, wait_outbox, CUSTOMER, DEVICE};
use crate::helpers::{poll_until, TestApp, TestTenant, WAIT};

/// A simulated inbound message (`body` without the device); its WhatsApp id.
async fn inbound(app: &TestApp, device: i64, body: Value) -> String {
    let mut body = body;
    body["device"] = json!(device);
    body["from"] = json!(CUSTOMER);
    let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
    assert_eq!(status, StatusCode::OK, "simulator inbound: {answer}");
    answer["id"].as_str().expect("a WhatsApp id").to_string()
}

/// The outbox items of `kind` that quote (or are about) the message `wa_id`.
fn items<'a>(outbox: &'a [Value], kind: &str, wa_id: &str) -> Vec<&'a Value> {
    outbox
        .iter()
        .filter(|item| item["type"] == kind)
        .filter(|item| match kind {
            "reaction" => item["reaction"]["message"] == wa_id,
            "read" => item["read"] == json!([wa_id]),
            _ => item["reply_to"] == wa_id,
        })
        .collect()
}

/// What `probe` reported seeing, from its quoted text reply to `wa_id`.
fn seen(outbox: &[Value], wa_id: &str) -> Value {
    let texts = items(outbox, "text", wa_id);
    assert_eq!(texts.len(), 1, "one quoted report for {wa_id}: {outbox:?}");
    serde_json::from_str(texts[0]["text"].as_str().unwrap()).expect("the report is JSON")
}

/// The newest stored inbound message of `kind`, once it passes `check`.
async fn stored(app: &TestApp, tenant: &TestTenant, kind: &str, check: impl Fn(&Value) -> bool) -> Value {
    poll_until(WAIT, || async {
        let (_, page) =
            app.get(&format!("/api/user/chat-history?direction=in&type={kind}"), &tenant.api_key).await;
        page["data"].as_array().and_then(|rows| rows.first().cloned()).filter(&check)
    })
    .await
}

#[tokio::test]
async fn a_0_1_0_component_uploads_and_answers_exactly_as_before() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let old = upload(&app, &tenant, "echo-v1", &[]).await;
    assert_eq!(old["enabled"], true, "{old}");

    app.inbound(device, CUSTOMER, "halo versi lama", Some("Budi")).await;
    let outbox = wait_outbox(&app, device, 1).await;
    assert_eq!(outbox[0]["type"], "text");
    assert_eq!(outbox[0]["text"], "echo: halo versi lama");
    assert_eq!(outbox[0]["to"], format!("{CUSTOMER}@s.whatsapp.net"));
    assert!(outbox[0].get("reply_to").is_none(), "0.1.0 replies do not quote: {}", outbox[0]);
    let rows = runs(&app, &tenant, old["id"].as_i64().unwrap(), 1).await;
    assert_eq!(rows[0]["outcome"], "success", "{}", rows[0]);

    let (status, body) = app
        .post(&format!("/api/user/plugins/{}/test", old["id"]), &tenant.api_key, &json!({"text": "tes"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "success");
    assert_eq!(
        body["decision"],
        json!({"actions": [{"type": "reply_text", "text": "echo: tes"}], "stop": false})
    );
}

#[tokio::test]
async fn a_0_2_0_plugin_sees_a_location_and_a_quote_and_its_actions_reach_the_outbox() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let config = json!({
        "location": {"latitude": -6.2, "longitude": 106.8, "name": "Kantor Pusat"},
        "react": "👍",
        "mark_read": true,
        "quote": true,
    });
    upload(&app, &tenant, "probe", &[("config", &config.to_string())]).await;

    // A location: the plugin sees its kind and point; its four actions reach the outbox.
    let first = inbound(
        &app,
        device,
        json!({"location": {"latitude": -6.9175, "longitude": 107.6191, "name": "Toko Sinar"}}),
    )
    .await;
    let outbox = wait_outbox(&app, device, 4).await;
    let report = seen(&outbox, &first);
    assert_eq!(report["kind"], "location", "{report}");
    assert_eq!(report["location"]["latitude"], -6.9175);
    assert_eq!(report["location"]["longitude"], 107.6191);
    assert_eq!(report["location"]["name"], "Toko Sinar");
    assert_eq!(report["reply_to"], Value::Null);
    let location = items(&outbox, "location", &first);
    assert_eq!(location.len(), 1, "a quoted location reply: {outbox:?}");
    assert_eq!(location[0]["location"]["name"], "Kantor Pusat");
    assert_eq!(location[0]["location"]["latitude"], -6.2);
    assert_eq!(location[0]["to"], format!("{CUSTOMER}@s.whatsapp.net"));
    let reaction = items(&outbox, "reaction", &first);
    assert_eq!(reaction.len(), 1, "{outbox:?}");
    assert_eq!(reaction[0]["reaction"], json!({"message": first, "emoji": "👍"}));
    assert_eq!(items(&outbox, "read", &first).len(), 1, "{outbox:?}");
    // Both are recorded on the message.
    let located =
        stored(&app, &tenant, "location", |m| m["reactions"][0]["emoji"] == "👍" && m["read_at"].is_string())
            .await;

    // A text quoting the location: the plugin sees what it quotes and who is mentioned.
    let second = inbound(
        &app,
        device,
        json!({"text": format!("yang ini ya @{DEVICE}"), "reply_to": first, "mentions": [DEVICE]}),
    )
    .await;
    let outbox = wait_outbox(&app, device, 8).await;
    let report = seen(&outbox, &second);
    assert_eq!(report["kind"], "text", "{report}");
    assert_eq!(report["text"], format!("yang ini ya @{DEVICE}"));
    assert_eq!(report["reply_to"]["wa_id"], first.as_str(), "{report}");
    assert_eq!(report["reply_to"]["id"], located["id"], "the quoted message is stored here: {report}");
    assert_eq!(report["mentions"], json!([DEVICE]));
    assert_eq!(items(&outbox, "location", &second).len(), 1, "{outbox:?}");
    assert_eq!(items(&outbox, "read", &second).len(), 1, "{outbox:?}");
}

#[tokio::test]
async fn keyword_router_answers_with_a_location() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let config = json!({"routes": [{"keyword": "alamat",
        "location": {"latitude": -6.9175, "longitude": 107.6191, "name": "Toko Sinar", "address": "Jl. Merdeka 1"}}]});
    upload(&app, &tenant, "keyword-router", &[("config", &config.to_string())]).await;
    app.inbound(device, CUSTOMER, "Alamatnya di mana?", None).await;
    let outbox = wait_outbox(&app, device, 1).await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["type"], "location", "{outbox:?}");
    assert_eq!(
        outbox[0]["location"],
        json!({"latitude": -6.9175, "longitude": 107.6191, "name": "Toko Sinar", "address": "Jl. Merdeka 1"})
    );
    let (_, history) = app.get("/api/user/chat-history?direction=out&type=location", &tenant.api_key).await;
    assert_eq!(history["data"][0]["source"], "plugin", "{history}");
}

#[tokio::test]
async fn an_oversized_location_name_is_refused_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    let (tenant, device) = setup(&app).await;
    let limit = app.config.plugins.max_reply_bytes;
    let name = "n".repeat(limit + 1);
    let config = json!({"location": {"latitude": 0, "longitude": 0, "name": name}, "react": "👍"});
    let probe = upload(&app, &tenant, "probe", &[("config", &config.to_string())]).await;
    let id = probe["id"].as_i64().unwrap();
    app.inbound(device, CUSTOMER, "kirim lokasi", None).await;
    let rows = runs(&app, &tenant, id, 1).await;
    assert_eq!(rows[0]["outcome"], "output_too_large", "{}", rows[0]);
    let error = rows[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("the location name is {} bytes, the limit is {limit}", limit + 1)),
        "{error}"
    );
    // The dry run says the same.
    let (_, body) = app.post(&format!("/api/user/plugins/{id}/test"), &tenant.api_key, &json!({})).await;
    assert_eq!(body["outcome"], "output_too_large", "{body}");
    assert!(app.outbox(device).await.is_empty(), "neither the report nor the reaction went out");
}
