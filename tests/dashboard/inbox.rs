//! The inbox and the groups pages over plain HTTP: the chat list with direct and group chats
//! and their unread counts, opening a chat marks it read (as the API then shows), replies
//! typed in a conversation (text quoting a message, a location, a file) reach WhatsApp in
//! that chat, errors show in the visitor's language, another tenant's chats stay hidden,
//! and a device's groups with their members and invite link.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::agent::{tenant, Agent, Login, PASSWORD};
use crate::helpers::{poll_until, TestApp, TestTenant, WAIT};

const SHOP: &str = "6281100000195";
const BUDI: &str = "6281299990195";
const SARI: &str = "6281299990196";

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\
\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82";

fn api(t: &Login) -> TestTenant {
    TestTenant { id: t.id, api_key: t.api_key.clone(), email: t.email.clone() }
}

fn jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

/// A page's text with the escapes the templates put in attribute and text values undone.
fn unescape(body: &str) -> String {
    body.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The chat list's entry for `chat`, if the page lists it.
fn entry(body: &str, chat: &str) -> Option<String> {
    let list = &body[body.find("id=\"chat-list\"")?..];
    let list = &list[..list.find("</ul>").unwrap_or(list.len())];
    let start = list.find(&format!("<li data-chat=\"{chat}\""))?;
    let end = list[start..].find("</li>").map(|e| e + start).unwrap_or(list.len());
    Some(list[start..end].to_string())
}

/// The unread count the list shows for `chat` (0 without a badge).
fn unread(body: &str, chat: &str) -> i64 {
    let e = entry(body, chat).unwrap_or_else(|| panic!("{chat} is not listed: {body}"));
    let badge = e.find("class=\"unread\"").map(|i| &e[i..]);
    let shown = badge.and_then(|b| b.split('>').nth(1)).and_then(|n| n.split('<').next());
    let shown: i64 = shown.map(|n| n.trim().parse().unwrap()).unwrap_or(0);
    let attr = e.split("data-unread=\"").nth(1).and_then(|a| a.split('"').next()).unwrap();
    assert_eq!(attr.parse::<i64>().unwrap(), shown, "the badge and the attribute agree: {e}");
    shown
}

/// The conversation's part of the page.
fn conversation(body: &str) -> String {
    let start = body.find("id=\"conversation\"").unwrap_or_else(|| panic!("no conversation: {body}"));
    let end = body[start..].find("</ol>").unwrap() + start;
    unescape(&body[start..end])
}

/// The URL of a conversation.
fn chat_url(device: i64, chat: &str) -> String {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("device", &device.to_string())
        .append_pair("chat", chat)
        .finish();
    format!("/chats?{q}")
}

async fn logged_in<'a>(app: &'a TestApp, t: &Login, accept_language: &'static str) -> Agent<'a> {
    let mut agent = Agent::new(app);
    agent.accept_language = accept_language;
    assert_eq!(agent.login(&t.email, PASSWORD).await.status, StatusCode::SEE_OTHER);
    agent
}

/// A simulated inbound message; returns its WhatsApp id.
async fn inbound(app: &TestApp, body: Value) -> String {
    let (status, answer) = app.admin_post("/api/admin/simulator/inbound", &body).await;
    assert_eq!(status, StatusCode::OK, "simulator inbound: {answer}");
    answer["id"].as_str().expect("a WhatsApp id").to_string()
}

/// A group made by `SARI` with the shop's device and Budi in it; returns its id.
async fn group(app: &TestApp, subject: &str) -> String {
    let (status, created) = app
        .admin_post(
            "/api/admin/simulator/groups",
            &json!({"creator": SARI, "subject": subject, "members": [SHOP, BUDI]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created["group"].as_str().unwrap().to_string()
}

/// The API's chat list as (chat, unread) pairs.
async fn api_chats(app: &TestApp, t: &Login) -> Vec<(String, i64)> {
    let (status, list) = app.get("/api/user/chats", &t.api_key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["chat"].as_str().unwrap().to_string(), c["unread"].as_i64().unwrap()))
        .collect()
}

/// The gateway's id of the stored message with WhatsApp id `wa_id`.
async fn id_of(app: &TestApp, t: &Login, wa_id: &str) -> i64 {
    poll_until(WAIT, || async {
        let (_, page) = app.get("/api/user/chat-history?limit=100", &t.api_key).await;
        page["data"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["wa_id"] == wa_id))
            .and_then(|r| r["id"].as_i64())
    })
    .await
}

#[tokio::test]
async fn the_inbox_lists_direct_and_group_chats_with_unread_counts_and_opening_one_reads_it() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), SHOP).await;
    let arisan = group(&app, "Arisan RT").await;
    inbound(&app, json!({"device": device, "from": BUDI, "text": "halo", "push_name": "Budi"})).await;
    inbound(&app, json!({"device": device, "from": BUDI, "text": "ada stok?", "push_name": "Budi"})).await;
    inbound(&app, json!({"device": device, "from": SARI, "group": arisan, "text": "rapat jam 7"})).await;

    let mut agent = logged_in(&app, &t, "en").await;
    let page = agent.get("/chats").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let budi = jid(BUDI);
    assert_eq!(unread(&page.body, &budi), 2);
    assert_eq!(unread(&page.body, &arisan), 1);
    let direct = unescape(&entry(&page.body, &budi).unwrap());
    assert!(direct.contains("Budi") && direct.contains("ada stok?"), "name and last message: {direct}");
    let grouped = unescape(&entry(&page.body, &arisan).unwrap());
    assert!(grouped.contains("Arisan RT") && grouped.contains("rapat jam 7"), "{grouped}");
    assert!(grouped.contains(&format!("{SARI}: ")), "who wrote last in the group: {grouped}");
    assert!(page.body.contains("id=\"pick-chat\""), "no conversation is open yet");
    assert!(page.body.contains("href=\"/chats\""), "the menu links the inbox");

    // Searching narrows the list.
    let found = agent.get("/chats?q=arisan").await;
    assert!(entry(&found.body, &arisan).is_some() && entry(&found.body, &budi).is_none(), "{}", found.body);

    // Opening Budi's chat shows it oldest first and marks it read.
    let open = agent.get(&chat_url(device, &budi)).await;
    assert_eq!(open.status, StatusCode::OK, "{}", open.body);
    let budi_page = open.body.clone();
    let talk = conversation(&open.body);
    let (first, second) = (talk.find("halo").expect("the first message"), talk.find("ada stok?").unwrap());
    assert!(first < second, "oldest first: {talk}");
    assert_eq!(unread(&open.body, &budi), 0, "opening the chat clears its count");
    assert_eq!(unread(&open.body, &arisan), 1, "the other chat keeps its count");
    assert_eq!(api_chats(&app, &t).await, [(arisan.clone(), 1), (budi.clone(), 0)], "the API agrees");
    let receipts: Vec<Value> = app.outbox(device).await.into_iter().filter(|m| m["type"] == "read").collect();
    assert_eq!(receipts.len(), 1, "Budi sees blue ticks: {receipts:?}");
    assert_eq!(receipts[0]["to"], budi.as_str());

    // The group's conversation names who wrote and links the members.
    let open = agent.get(&chat_url(device, &arisan)).await;
    assert_eq!(open.status, StatusCode::OK, "{}", open.body);
    let talk = conversation(&open.body);
    assert!(talk.contains(&format!("<small class=\"sender\">{SARI}</small>")), "{talk}");
    assert!(unescape(&open.body).contains(&format!("href=\"/groups/{device}/{arisan}\"")), "{}", open.body);
    assert_eq!(api_chats(&app, &t).await, [(arisan.clone(), 0), (budi.clone(), 0)]);

    // The fragments the page swaps in live: the list, and the conversation's newer messages.
    inbound(&app, json!({"device": device, "from": BUDI, "text": "jadi pesan 3", "push_name": "Budi"})).await;
    let list = agent.get("/chats?fragment=list").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.body.contains("<html"), "only the list: {}", list.body);
    assert_eq!(unread(&list.body, &budi), 1, "the list fragment does not mark anything read");
    let newest = newest_shown(&budi_page);
    let fresh = agent.get(&format!("{}&fragment=messages&after={newest}", chat_url(device, &budi))).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert!(fresh.body.contains("jadi pesan 3") && !fresh.body.contains("ada stok?"), "{}", fresh.body);
    assert!(!fresh.body.contains("<html"), "only the new bubbles: {}", fresh.body);
    assert_eq!(api_chats(&app, &t).await[0], (budi.clone(), 0), "seen in the open conversation");
}

/// The highest message id a conversation page shows.
fn newest_shown(body: &str) -> i64 {
    conversation(body)
        .split("data-id=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next().and_then(|n| n.parse().ok()))
        .max()
        .expect("the conversation shows messages")
}

#[tokio::test]
async fn replies_typed_in_a_conversation_reach_whatsapp_in_that_chat_quoting_the_chosen_message() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), SHOP).await;
    let arisan = group(&app, "Arisan RT").await;
    let asked =
        inbound(&app, json!({"device": device, "from": BUDI, "text": "ada stok?", "push_name": "Budi"}))
            .await;
    inbound(&app, json!({"device": device, "from": SARI, "group": arisan, "text": "rapat jam 7"})).await;
    let asked_id = id_of(&app, &t, &asked).await;
    let budi = jid(BUDI);
    let d = device.to_string();
    let mut agent = logged_in(&app, &t, "en").await;

    // Each message offers a reply; choosing one shows it above the box.
    let page = agent.get(&chat_url(device, &budi)).await;
    let reply_link = format!("reply_to={asked_id}#reply-box");
    assert!(unescape(&page.body).contains(&reply_link), "{}", page.body);
    let quoting = format!("{}&reply_to={asked_id}", chat_url(device, &budi));
    let page = agent.get(&quoting).await;
    let shown = unescape(&page.body);
    let replying = &shown[shown.find("id=\"replying-to\"").expect("the quoted message is shown")..];
    assert!(replying[..replying.find("</div>").unwrap()].contains("ada stok?"), "{replying}");
    assert!(shown.contains(&format!("name=\"reply_to\" value=\"{asked_id}\"")), "the form carries it");

    let fields = [("device", d.as_str()), ("chat", budi.as_str()), ("text", "Masih ada, kak")];
    let reply_to = asked_id.to_string();
    let mut quoted = fields.to_vec();
    quoted.push(("reply_to", reply_to.as_str()));
    let sent = agent.submit(&quoting, "/chats/reply", &quoted).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let back = sent.location().to_string();
    assert!(back.starts_with(&format!("{}#m-", chat_url(device, &budi))), "back in the conversation: {back}");
    let out = app.outbox(device).await;
    let reply = out.iter().find(|m| m["text"] == "Masih ada, kak").unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(reply["to"], budi.as_str());
    assert_eq!(reply["reply_to"], asked.as_str(), "it quotes Budi's question");
    let page = agent.get(&back).await;
    let talk = conversation(&page.body);
    assert!(
        talk.contains("Masih ada, kak") && talk.contains("<blockquote class=\"quote\">ada stok?"),
        "{talk}"
    );
    assert!(talk.contains("class=\"ticks\""), "an outbound message has its ticks: {talk}");

    // Into the group, without a quote; a location; a picture.
    let group_page = chat_url(device, &arisan);
    let fields = [("device", d.as_str()), ("chat", arisan.as_str()), ("text", "Saya hadir")];
    assert_eq!(agent.submit(&group_page, "/chats/reply", &fields).await.status, StatusCode::SEE_OTHER);
    let fields =
        [("device", d.as_str()), ("chat", arisan.as_str()), ("latitude", "-6,2"), ("longitude", "106.8")];
    let sent = agent.submit(&group_page, "/chats/reply/location", &fields).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let fields = [("device", d.as_str()), ("chat", arisan.as_str()), ("caption", "Denah")];
    let sent = agent
        .upload(&group_page, "/chats/reply/media", &fields, ("file", "denah.png", "image/png", PNG))
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let out = app.outbox(device).await;
    let to_group: Vec<&Value> =
        out.iter().filter(|m| m["to"] == arisan.as_str() && m["type"] != "read").collect();
    assert_eq!(to_group.len(), 3, "{out:?}");
    assert_eq!(to_group[0]["text"], "Saya hadir");
    assert!(to_group[0].get("reply_to").is_none(), "{:?}", to_group[0]);
    assert_eq!(to_group[1]["location"]["latitude"], -6.2);
    assert_eq!(to_group[2]["media"]["kind"], "image");
    let page = agent.get(&group_page).await;
    let talk = conversation(&page.body);
    assert!(
        talk.contains("<img class=\"thumb\"") && talk.contains("/media\""),
        "the picture's preview: {talk}"
    );

    // A refused reply shows the error in the visitor's language next to its box, with what
    // was typed, and sends nothing.
    let before = app.outbox(device).await.len();
    let mut id = logged_in(&app, &t, "id-ID").await;
    let fields =
        [("device", d.as_str()), ("chat", budi.as_str()), ("latitude", "91"), ("longitude", "106.8")];
    let refused = id.submit(&chat_url(device, &budi), "/chats/reply/location", &fields).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    let error = refused.body.find("id=\"form-error\"").expect("the error is shown");
    assert!(error > refused.body.find("id=\"reply-location\"").unwrap(), "with the location box");
    assert!(refused.body.contains("Periksa isian"), "in Indonesian: {}", refused.body);
    assert!(refused.body.contains("value=\"91\""), "what was typed stays");
    assert!(refused.body.contains("id=\"conversation\""), "still in the conversation");
    let fields = [("device", d.as_str()), ("chat", budi.as_str()), ("text", "x"), ("reply_to", "999999")];
    let refused = id.submit(&chat_url(device, &budi), "/chats/reply", &fields).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert!(unescape(&refused.body).contains("reply_to: no message with this id"), "{}", refused.body);
    assert_eq!(app.outbox(device).await.len(), before, "nothing was sent");
}

#[tokio::test]
async fn another_tenants_chats_and_groups_stay_out_of_the_inbox() {
    let app = TestApp::spawn().await;
    let owner = tenant(&app, "basic").await;
    let other = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&owner), SHOP).await;
    let arisan = group(&app, "Arisan RT").await;
    inbound(&app, json!({"device": device, "from": BUDI, "text": "rahasia", "push_name": "Budi"})).await;
    let budi = jid(BUDI);

    let mut intruder = logged_in(&app, &other, "en").await;
    let page = intruder.get("/chats").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(entry(&page.body, &budi).is_none() && !page.body.contains("rahasia"), "{}", page.body);
    assert!(page.body.contains("id=\"no-chats\""), "{}", page.body);
    for path in [
        chat_url(device, &budi),
        format!("/chats?device={device}"),
        format!("/groups?device={device}"),
        format!("/groups/{device}/{arisan}"),
    ] {
        let refused = intruder.get(&path).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{path}: {}", refused.body);
        assert!(!refused.body.contains("rahasia") && !refused.body.contains("Arisan"), "{path}");
    }
    let d = device.to_string();
    let fields = [("device", d.as_str()), ("chat", budi.as_str()), ("text", "bukan urusanmu")];
    let refused = intruder.submit("/chats", "/chats/reply", &fields).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert!(app.outbox(device).await.iter().all(|m| m["text"] != "bukan urusanmu"));
    // The owner's count is untouched.
    assert_eq!(api_chats(&app, &owner).await, [(budi, 1)]);
}

#[tokio::test]
async fn the_groups_page_lists_a_devices_groups_with_members_and_the_invite_link_for_admins() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), SHOP).await;
    let arisan = group(&app, "Arisan RT").await;
    let mut agent = logged_in(&app, &t, "en").await;

    let page = agent.get("/groups").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = unescape(&page.body);
    let row = &body[body.find(&format!("<tr data-jid=\"{arisan}\">")).expect("the group is listed")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("Arisan RT") && row.contains("<td class=\"size\">3</td>"), "{row}");
    assert!(row.contains("data-admin=\"no\""), "{row}");
    assert!(row.contains(&format!("href=\"/groups/{device}/{arisan}\"")), "{row}");
    let chosen = unescape(&agent.get(&format!("/groups?device={device}")).await.body);
    assert!(chosen.contains(&format!("<tr data-jid=\"{arisan}\">")), "{chosen}");

    let page = agent.get(&format!("/groups/{device}/{arisan}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = unescape(&page.body);
    for (member, role) in [(SARI, "superadmin"), (SHOP, "member"), (BUDI, "member")] {
        assert!(
            body.contains(&format!("<li data-role=\"{role}\"><span class=\"member\">+{member}</span>")),
            "{member} as {role}: {body}"
        );
    }
    assert!(body.contains("id=\"invite-admin-only\"") && !body.contains("id=\"invite-link\""), "{body}");

    // Once the device is an admin, the page shows the invite link.
    let (status, changed) = app
        .admin_post(
            "/api/admin/simulator/groups/participants",
            &json!({"group": arisan, "by": SARI, "action": "promote", "participants": [SHOP]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let body = unescape(&agent.get(&format!("/groups/{device}/{arisan}")).await.body);
    assert!(body.contains("id=\"invite-link\"") && body.contains("https://chat.whatsapp.com/"), "{body}");
    assert!(
        body.contains(&format!("<li data-role=\"admin\"><span class=\"member\">+{SHOP}</span>")),
        "{body}"
    );
    let list = unescape(&agent.get("/groups").await.body);
    assert!(list.contains("data-admin=\"yes\""), "{list}");
}

#[tokio::test]
async fn a_lid_sender_shows_as_its_lid_until_the_number_is_known_and_then_with_both() {
    const LID: &str = "555444333222195@lid";
    const MEMBER_LID: &str = "555444333222196@lid";
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), SHOP).await;
    let wa_id =
        inbound(&app, json!({"device": device, "from_lid": LID, "text": "siapa ini?", "push_name": "Tamu"}))
            .await;
    let id = id_of(&app, &t, &wa_id).await;
    let small = |lid: &str| format!("<small class=\"muted lid\" title=\"LID\">{lid}</small>");
    let mut agent = logged_in(&app, &t, "en").await;

    // Known only by the LID: the LID stands where the number would.
    let list = agent.get("/chats").await;
    assert!(unescape(&entry(&list.body, LID).expect("the LID's chat")).contains("Tamu"), "{}", list.body);
    let open = unescape(&agent.get(&chat_url(device, LID)).await.body);
    assert!(open.contains(&format!("id=\"conversation-lid\">{LID}</small>")), "{open}");
    let message = unescape(&agent.get(&format!("/history/{id}")).await.body);
    assert!(message.contains(&format!("<dd id=\"message-from\">{LID}</dd>")), "{message}");
    let history = unescape(&agent.get("/history").await.body);
    assert!(history.contains(&format!("<td class=\"chat\">{LID}</td>")), "{history}");

    // The number arrives: it is shown, with the LID small beside it.
    let (status, body) = app
        .admin_post("/api/admin/simulator/lid-mapping", &json!({"device": device, "lid": LID, "phone": BUDI}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message = unescape(&agent.get(&format!("/history/{id}")).await.body);
    assert!(message.contains(&format!("<dd id=\"message-from\">{BUDI} {}</dd>", small(LID))), "{message}");
    let history = unescape(&agent.get("/history").await.body);
    assert!(history.contains(&format!("<td class=\"chat\">{} {}</td>", jid(BUDI), small(LID))), "{history}");
    let talk = conversation(&agent.get(&chat_url(device, &jid(BUDI))).await.body);
    assert!(talk.contains(&small(LID)) && talk.contains("siapa ini?"), "{talk}");

    // A group member addressed by LID: the member's number as the sender, the LID beside it.
    let arisan = group(&app, "Arisan RT").await;
    inbound(
        &app,
        json!({"device": device, "from": SARI, "from_lid": MEMBER_LID, "group": arisan, "text": "di grup"}),
    )
    .await;
    let talk = conversation(&agent.get(&chat_url(device, &arisan)).await.body);
    assert!(
        talk.contains(&format!("<small class=\"sender\">{SARI}</small> {}", small(MEMBER_LID))),
        "{talk}"
    );
}

#[tokio::test]
async fn the_inbox_hides_archived_chats_and_shows_the_archived_pinned_muted_and_unread_ones_when_asked() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "basic").await;
    let device = app.pair_device(&api(&t), SHOP).await;
    let arisan = group(&app, "Arisan RT").await;
    inbound(&app, json!({"device": device, "from": BUDI, "text": "halo", "push_name": "Budi"})).await;
    inbound(&app, json!({"device": device, "from": SARI, "group": arisan, "text": "rapat jam 7"})).await;
    inbound(&app, json!({"device": device, "from": SARI, "text": "pagi", "push_name": "Sari"})).await;
    let (budi, sari) = (jid(BUDI), jid(SARI));
    let phone_sets = |body: Value| {
        let app = &app;
        async move {
            let (status, answer) = app.admin_post("/api/admin/simulator/chat-state", &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    phone_sets(json!({"device": device, "chat": BUDI, "archived": true})).await;
    phone_sets(json!({"device": device, "chat": sari, "pinned": true})).await;
    phone_sets(json!({"device": device, "chat": arisan, "muted": true})).await;

    let mut agent = logged_in(&app, &t, "en").await;
    let listed = |body: &str| -> Vec<bool> {
        [&budi, &sari, &arisan].iter().map(|c| entry(body, c).is_some()).collect()
    };
    let main = agent.get("/chats").await;
    assert_eq!(listed(&main.body), [false, true, true], "the phone's main list: {}", main.body);
    let sari_row = entry(&main.body, &sari).unwrap();
    assert!(
        sari_row.contains("data-state=\"pinned\"") && !sari_row.contains("data-state=\"muted\""),
        "{sari_row}"
    );
    assert!(entry(&main.body, &arisan).unwrap().contains("data-state=\"muted\""));
    for (show, wanted) in [
        ("archived", [true, false, false]),
        ("pinned", [false, true, false]),
        ("muted", [false, false, true]),
        ("unread", [false, true, true]),
    ] {
        let page = agent.get(&format!("/chats?show={show}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(listed(&page.body), wanted, "show={show}: {}", page.body);
        assert!(
            page.body.contains(&format!("<option value=\"{show}\" selected>")),
            "the choice stays: {show}"
        );
        // The live list refresh and the chat links keep the choice.
        assert!(page.body.contains(&format!("show={show}")), "{show}");
    }
    let archived = agent.get("/chats?show=archived").await;
    assert!(entry(&archived.body, &budi).unwrap().contains("data-state=\"archived\""));
}
