//! `/docs/`: the API reference, served from the binary, pointing only at the gateway itself.

use reqwest::{Method, StatusCode};

use crate::helpers::TestApp;

async fn text(app: &TestApp, path: &str) -> (StatusCode, String, String) {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url(path))
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status();
    let kind =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

#[tokio::test]
async fn the_api_reference_is_served_from_the_binary_and_reads_the_gateways_document() {
    let app = TestApp::spawn().await;
    let (status, _, _) = text(&app, "/docs").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    let (status, kind, page) = text(&app, "/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(page.contains("swagger-ui"), "{page}");
    let (status, _, init) = text(&app, "/docs/swagger-initializer.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(init.contains("\"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "no online validator: {init}");
    // The page and its start-up script name no other host: no CDN, no validator.
    for (name, body) in [("index.html", &page), ("swagger-initializer.js", &init)] {
        assert!(!body.contains("http://") && !body.contains("https://"), "{name} names another host: {body}");
    }
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"] {
        let (status, kind, body) = text(&app, &format!("/docs/{asset}")).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(kind.contains("css") || kind.contains("javascript"), "{asset}: {kind}");
        assert!(body.len() > 10_000, "{asset} is the real file");
    }
    let (status, body) = app.send(app.request(Method::GET, "/docs/no-such-file.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
