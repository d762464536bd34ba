//! Media through the `whatsapp-web` driver: the client uploads to the fake's media host
//! (through the driver's HTTP-client seam) and the contact opens the file its message refers
//! to; a contact's image reaches the history with its details, and its bytes are downloaded,
//! kept and served.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::json;
use whatsapp_rust::wacore::download::MediaType;

use super::fake_wa::{ContactMessage, Content, FakeEvent, FakeWhatsApp, MediaRef};
use super::inbound::wait_history;
use super::{paired_device, report, spawn, STEP};
use crate::webhooks::receiver::PNG;

const CONTACT: &str = "6281299990501";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn media_of(content: &Content) -> &MediaRef {
    match content {
        Content::Media(m) => m,
        other => panic!("not a media message: {other:?}"),
    }
}

/// An image and a document sent through the API: each is uploaded encrypted (the host checks
/// the token against the body), the contact decrypts a media message with the caption, type
/// and file name asked for, and opens the upload (hashes and MAC checked) to the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_media_is_uploaded_encrypted_and_the_contact_opens_the_original() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830691";
    let device = paired_device(&app, &tenant, &fake, phone).await;

    let t = Instant::now();
    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": device, "to": CONTACT, "base64": b64(PNG), "filename": "menu.png", "caption": "Menu baru" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(matches!(body["status"].as_str(), Some("sent" | "delivered")), "{body}");
    let got = fake.wait_messages_of(CONTACT, 1, STEP).await.expect("the image message");
    report("send-media image → uploaded, decrypted, opened", t);
    let image = media_of(&got[0].content);
    assert_eq!(
        (image.kind, image.caption.as_deref(), image.mimetype.as_deref()),
        ("image", Some("Menu baru"), Some("image/png"))
    );
    assert_eq!(fake.open_media(image).expect("the upload opens"), PNG);
    assert_eq!(got[0].id, body["wa_id"].as_str().unwrap());

    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    let (status, body) = app
        .post(
            "/api/send-media",
            &tenant.api_key,
            &json!({ "device": device, "to": CONTACT, "base64": b64(pdf), "filename": "invoice-42.pdf",
                     "caption": "Tagihan Anda" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = fake.wait_messages_of(CONTACT, 2, STEP).await.expect("the document message");
    let document = media_of(&got[1].content);
    assert_eq!(
        (
            document.kind,
            document.file_name.as_deref(),
            document.mimetype.as_deref(),
            document.caption.as_deref()
        ),
        ("document", Some("invoice-42.pdf"), Some("application/pdf"), Some("Tagihan Anda"))
    );
    assert_eq!(fake.open_media(document).expect("the upload opens"), pdf);
    let uploads: Vec<String> = fake
        .journal()
        .into_iter()
        .filter_map(|(_, e)| match e {
            FakeEvent::MediaUploaded { path, .. } => {
                Some(path.split('/').take(3).collect::<Vec<_>>().join("/"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(uploads, ["/mms/image", "/mms/document"]);
}

/// A contact sends an image (encrypted and stored on the media host by its phone): the
/// history has it as an image with its type, size and caption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_image_is_stored_with_its_media_details() {
    let fake = FakeWhatsApp::new();
    let app = spawn(&fake).await;
    let tenant = app.create_tenant("premium").await;
    let phone = "6281381830692";
    let device = paired_device(&app, &tenant, &fake, phone).await;

    let uploaded = fake.upload_media(PNG, MediaType::Image).unwrap();
    let message = uploaded.image_message("image/png", Some("foto produk"));
    let sent = fake.contact_sends(phone, CONTACT, ContactMessage::of(message)).await.unwrap();
    fake.wait_client_answered(phone, &sent.id, STEP).await.expect("stored");
    let rows = wait_history(&app, &tenant, &format!("direction=in&device={device}"), 1).await;
    let row = &rows[0];
    assert_eq!((row["type"].as_str(), row["text"].as_str()), (Some("image"), Some("foto produk")), "{row}");
    assert_eq!(row["media"]["mime"], "image/png", "{row}");
    assert_eq!(row["media"]["size"], PNG.len(), "{row}");
    assert_eq!(row["wa_id"], sent.id.as_str());

    // The gateway downloads it from the media host (decrypting and checking it as the
    // library does) and serves the original bytes.
    let id = row["id"].as_i64().unwrap();
    let t = Instant::now();
    let kept = crate::helpers::poll_until(STEP, || async {
        let (_, m) = app.get(&format!("/api/user/messages/{id}"), &tenant.api_key).await;
        (m["media"]["state"] != "pending").then_some(m)
    })
    .await;
    assert_eq!(kept["media"]["state"], "stored", "{kept}");
    let response = reqwest::Client::new()
        .get(app.url(&format!("/api/user/messages/{id}/media")))
        .header("x-api-key", &tenant.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG, "byte for byte");
    report("contact's image → downloaded, kept, served", t);
}
