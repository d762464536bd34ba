//! The inbox in a real headless Chromium, at desktop size and at 375 px: open a chat (its
//! unread count clears), reply quoting a message, and see a new message arrive in the open
//! conversation, another chat's unread count appear in the list, and the reply's ticks follow
//! its receipts (delivered, read) without a reload. On a phone the list and the conversation
//! are two screens, with a link back to the list. Then the contacts list and a contact's page,
//! with its link back to the chat. Screenshots go to `target/screenshots/`.

use serde_json::{json, Value};

use crate::agent::{tenant, PASSWORD};
use crate::browser::{assert_fits, Browser, Driver};
use crate::helpers::{TestApp, TestTenant};

const BUDI: &str = "6281299990295";
const SARI: &str = "6281299990296";

async fn inbound(app: &TestApp, body: Value) {
    let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
    assert_eq!(status, reqwest::StatusCode::OK, "simulator inbound: {answer}");
}

/// Whether the element `css` is displayed (not hidden by the layout).
async fn shown(b: &Browser<'_>, css: &str) -> bool {
    let script = format!(
        "var e = document.querySelector({}); return !!e && e.getClientRects().length > 0;",
        json!(css)
    );
    b.js(&script).await == json!(true)
}

/// The unread count the list shows for `chat` (its `data-unread`).
fn unread_is(chat: &str, n: i64) -> String {
    format!(
        "var li = document.querySelector('#chat-list li[data-chat=\"{chat}\"]'); \
         return !!li && li.getAttribute('data-unread') === '{n}' && \
           (li.querySelector('.unread') ? li.querySelector('.unread').textContent === '{n}' : {n} === 0);"
    )
}

async fn inbox(app: &TestApp, driver: &Driver, size: &str, width: u32, height: u32, shop: &str) {
    let t = tenant(app, "basic").await;
    let key = TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() };
    let device = app.pair_device(&key, shop).await;
    for text in ["halo", "ada stok?"] {
        inbound(
            app,
            json!({"device": device, "from": BUDI, "text": format!("{text} {size}"), "push_name": "Budi"}),
        )
        .await;
    }
    let budi = format!("{BUDI}@s.whatsapp.net");
    let sari = format!("{SARI}@s.whatsapp.net");

    let profile = tempfile::tempdir().unwrap();
    let b = driver.session(profile.path()).await;
    b.post("/window/rect", json!({ "width": width, "height": height })).await;
    let phone = width < 500;
    if phone {
        b.post(
            "/goog/cdp/execute",
            json!({ "cmd": "Emulation.setDeviceMetricsOverride",
                    "params": { "width": width, "height": height, "deviceScaleFactor": 1, "mobile": true } }),
        )
        .await;
    }
    let shot = |page: &str| format!("{size}-inbox-{page}");
    b.go(&app.url("/login")).await;
    b.fill("#email", &t.email).await;
    b.fill("#password", PASSWORD).await;
    b.click("#login").await;
    b.wait_for("the home page", "return location.pathname === '/';").await;

    // The list, with Budi's two unread messages.
    b.click("a[href='/chats']").await;
    b.wait_for(
        "the inbox",
        "return location.pathname === '/chats' && !!document.getElementById('chat-list');",
    )
    .await;
    b.wait_for("Budi's unread count", &unread_is(&budi, 2)).await;
    assert!(shown(&b, "#chat-list").await, "{size}: the list shows");
    assert_eq!(shown(&b, "#pick-chat").await, !phone, "{size}: the empty conversation only beside the list");
    b.screenshot(&shot("list")).await;
    assert_fits(&b, size).await;

    // Opening the chat reads it.
    b.click(&format!("#chat-list li[data-chat=\"{budi}\"] a")).await;
    b.wait_for("the conversation", "return !!document.getElementById('conversation');").await;
    b.wait_for("the count to clear", &unread_is(&budi, 0)).await;
    let talk = b.js("return document.getElementById('conversation').innerText;").await;
    assert!(talk.as_str().unwrap().contains(&format!("ada stok? {size}")), "{talk}");
    assert_eq!(shown(&b, "#chat-list").await, !phone, "{size}: on a phone only the conversation shows");
    assert_eq!(shown(&b, "#back-to-list").await, phone, "{size}: the way back on a phone");
    let (_, chats) = app.get("/api/user/chats", &t.api_key).await;
    assert_eq!(chats["data"][0]["unread"], 0, "{chats}");
    b.screenshot(&shot("chat")).await;
    assert_fits(&b, size).await;

    // Reply to Budi's question.
    b.click("#conversation li[data-direction='in']:last-child .reply-link").await;
    b.wait_for("the quoted message", "return !!document.getElementById('replying-to');").await;
    b.fill("#reply-text", &format!("Masih ada {size}")).await;
    b.screenshot(&shot("replying")).await;
    b.click("#reply-send").await;
    b.wait_for(
        "the reply in the conversation",
        &format!(
            "return location.hash.indexOf('#m-') === 0 && !document.getElementById('replying-to') && \
             document.getElementById('conversation').innerText.includes('Masih ada {size}');"
        ),
    )
    .await;
    let out = app.outbox(device).await;
    let reply =
        out.iter().find(|m| m["text"] == format!("Masih ada {size}")).unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(reply["to"], budi.as_str());
    assert!(reply["reply_to"].is_string(), "it quotes: {reply}");
    assert_fits(&b, size).await;

    // New messages arrive without a reload: in the open conversation, and in another chat.
    b.js("window.__sameDocument = true; return true;").await;
    inbound(
        app,
        json!({"device": device, "from": BUDI, "text": format!("pesan baru {size}"), "push_name": "Budi"}),
    )
    .await;
    b.wait_for(
        "the new message in the conversation",
        &format!(
            "var li = document.querySelector('#conversation li:last-child'); \
             return !!li && li.innerText.includes('pesan baru {size}');"
        ),
    )
    .await;
    b.wait_for("the open chat to stay read", &unread_is(&budi, 0)).await;
    inbound(
        app,
        json!({"device": device, "from": SARI, "text": format!("dari Sari {size}"), "push_name": "Sari"}),
    )
    .await;
    b.wait_for("Sari's chat in the list with its count", &unread_is(&sari, 1)).await;
    assert_eq!(b.js("return window.__sameDocument === true;").await, json!(true), "the page did not reload");
    b.screenshot(&shot("live")).await;
    assert_fits(&b, size).await;

    // The reply's ticks follow what Budi's phone reports, without a reload.
    let (_, sent) = app.get("/api/user/chat-history?direction=out&limit=1", &t.api_key).await;
    assert_eq!(sent["data"][0]["text"], format!("Masih ada {size}"), "{sent}");
    let reply = sent["data"][0]["id"].as_i64().unwrap();
    let ticks = |status: &str, shown: &str| {
        format!(
            "var t = document.querySelector('#conversation li[data-id=\"{reply}\"] .ticks'); \
             return !!t && t.getAttribute('data-status') === '{status}' && t.textContent === '{shown}' && \
               t.getAttribute('title') !== '' && t.getAttribute('title') === t.getAttribute('aria-label');"
        )
    };
    b.wait_for("the reply's single tick", &ticks("sent", "\u{2713}")).await;
    for status in ["delivered", "read"] {
        let (code, answer) = app
            .admin_post("/api/admin/simulator/receipt", &json!({"message_id": reply, "status": status}))
            .await;
        assert_eq!(code, reqwest::StatusCode::OK, "{answer}");
        b.wait_for(&format!("the reply {status}"), &ticks(status, "\u{2713}\u{2713}")).await;
    }
    let colour = format!(
        "return getComputedStyle(document.querySelector('#conversation li[data-id=\"{reply}\"] .ticks')).color;"
    );
    assert_eq!(b.js(&colour).await, json!("rgb(26, 115, 232)"), "{size}: read ticks are blue");
    assert_eq!(b.js("return window.__sameDocument === true;").await, json!(true), "the page did not reload");
    b.screenshot(&shot("ticks")).await;

    if phone {
        b.click("#back-to-list").await;
        b.wait_for("the list again", "return !document.getElementById('conversation');").await;
        assert!(shown(&b, "#chat-list").await);
        let list = b.page_text().await;
        assert!(list.contains(&format!("dari Sari {size}")), "{list}");
        b.screenshot(&shot("back")).await;
        assert_fits(&b, size).await;
    }

    // The contacts: the list, Budi's page, and from there back to the chat.
    b.click("a[href='/contacts']").await;
    b.wait_for(
        "the contacts",
        "return location.pathname === '/contacts' && !!document.getElementById('contacts');",
    )
    .await;
    b.wait_for(
        "Budi's entry",
        &format!("return !!document.querySelector('#contacts li[data-jid=\"{budi}\"]');"),
    )
    .await;
    b.screenshot(&shot("contacts")).await;
    assert_fits(&b, size).await;
    b.click(&format!("#contacts li[data-jid=\"{budi}\"] a")).await;
    b.wait_for("Budi's page", "return !!document.getElementById('contact-name');").await;
    let page = b.page_text().await;
    assert!(page.contains("Budi") && page.contains(&format!("+{BUDI}")), "{page}");
    b.screenshot(&shot("contact")).await;
    assert_fits(&b, size).await;
    b.click("#contact-chat").await;
    b.wait_for(
        "the chat",
        &format!("return !!document.getElementById('conversation') && location.search.includes('{BUDI}');"),
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn the_inbox_reads_replies_and_updates_live_in_chromium() {
    let app = TestApp::spawn().await;
    let driver = Driver::start().await;
    inbox(&app, &driver, "desktop", 1280, 900, "6281100000295").await;
    inbox(&app, &driver, "mobile", 375, 812, "6281100000296").await;
}
