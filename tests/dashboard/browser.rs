//! The dashboard in a real headless Chromium, driven through chromedriver's W3C WebDriver
//! protocol with plain HTTP: log in, add a device, watch the QR, scan it through the simulator,
//! see `connected` without a reload, send a message, find it in history, make an auto-reply and
//! see the inbound message and its reply arrive on the history page live; a wrong password, a
//! tampered CSRF token (refused, nothing sent), the CSV export fetched by the page, a plugin
//! uploaded through the file input, and logout (protected pages go back to login). At desktop
//! size and at 375 px, with a screenshot of each page in `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::agent::{tenant, PASSWORD};
use crate::helpers::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port; killed on drop.
pub(crate) struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub(crate) async fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: the browser tests need Debian's chromium and chromium-driver \
                 (apt-get update && apt-get install -y chromium chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() };
        for _ in 0..100 {
            if let Ok(r) = driver.http.get(format!("{}/status", driver.base)).send().await {
                if r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true) {
                    return driver;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready");
    }

    pub(crate) async fn session(&self, profile: &std::path::Path) -> Browser<'_> {
        self.session_with(profile, &[]).await
    }

    /// A session whose Chromium gets `extra` arguments too.
    pub(crate) async fn session_with(&self, profile: &std::path::Path, extra: &[&str]) -> Browser<'_> {
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
        }}});
        let answer: Value = self
            .http
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        Browser { driver: self, url: format!("{}/session/{id}", self.base) }
    }
}

/// One WebDriver session.
pub(crate) struct Browser<'a> {
    driver: &'a Driver,
    url: String,
}

impl Browser<'_> {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.driver.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            request = request.json(&b);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"]["error"].is_string() {
            panic!("webdriver {path}: {answer}");
        }
        answer["value"].clone()
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    pub(crate) async fn go(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub(crate) async fn find(&self, css: &str) -> String {
        let v = self.post("/element", json!({ "using": "css selector", "value": css })).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("{css}: {v}")).to_string()
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/clear"), json!({})).await;
        self.post(&format!("/element/{el}/value"), json!({ "text": text })).await;
    }

    pub(crate) async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/click"), json!({})).await;
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] })).await
    }

    /// Runs `script` asynchronously; it finishes by calling `arguments[0]` with its result.
    async fn js_async(&self, script: &str) -> Value {
        self.post("/execute/async", json!({ "script": script, "args": [] })).await
    }

    /// The HTTP status of the page now shown.
    async fn status(&self) -> Value {
        self.js("return performance.getEntriesByType('navigation')[0].responseStatus;").await
    }

    /// Polls `script` (which returns a boolean) until true.
    pub(crate) async fn wait_for(&self, what: &str, script: &str) {
        for _ in 0..150 {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    }

    pub(crate) async fn page_text(&self) -> String {
        self.js("return document.body.innerText;").await.as_str().unwrap_or("").to_string()
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub(crate) async fn close(self) {
        let _ = self.driver.http.delete(&self.url).send().await;
    }
}

pub(crate) async fn assert_fits(b: &Browser<'_>, size: &str) {
    let fits = b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1;").await;
    let path = b.js("return location.pathname;").await;
    assert_eq!(fits, json!(true), "{size} {path}: the page fits the screen width");
}

/// The whole first-use flow in one browser at one screen size.
async fn first_use(app: &TestApp, driver: &Driver, size: &str, width: u32, height: u32, phone: &str) {
    let t = tenant(app, "basic").await;
    let profile = tempfile::tempdir().unwrap();
    let b = driver.session(profile.path()).await;
    b.post("/window/rect", json!({ "width": width, "height": height })).await;
    if width < 500 {
        // Desktop windows have a minimum width; emulate the phone's viewport instead.
        b.post(
            "/goog/cdp/execute",
            json!({ "cmd": "Emulation.setDeviceMetricsOverride",
                    "params": { "width": width, "height": height, "deviceScaleFactor": 1, "mobile": true } }),
        )
        .await;
    }
    let shot = |page: &str| format!("{size}-{page}");

    b.go(&app.url("/login")).await;
    if width < 500 {
        assert_eq!(b.js("return window.innerWidth;").await, json!(width), "the phone-sized viewport");
    }
    b.screenshot(&shot("login")).await;
    // A wrong password: the login page again, with the error.
    b.fill("#email", &t.email).await;
    b.fill("#password", "salah-sekali-999").await;
    b.click("#login").await;
    b.wait_for("the login error", "return !!document.getElementById('form-error');").await;
    assert_eq!(b.js("return location.pathname;").await, json!("/login"), "still on the login page");
    b.screenshot(&shot("login-error")).await;
    assert_fits(&b, size).await;
    b.fill("#email", &t.email).await;
    b.fill("#password", PASSWORD).await;
    b.click("#login").await;
    b.wait_for(
        "the home page",
        "return location.pathname === '/' && !!document.getElementById('sent-today');",
    )
    .await;
    b.screenshot(&shot("home")).await;

    b.go(&app.url("/devices")).await;
    b.fill("#phone", phone).await;
    b.fill("#name", "Kasir").await;
    b.click("#add-device").await;
    b.wait_for("the device page", "return /^\\/devices\\/\\d+$/.test(location.pathname);").await;
    let device: i64 =
        b.js("return location.pathname.split('/')[2];").await.as_str().unwrap().parse().unwrap();
    b.wait_for(
        "the QR code",
        "var q = document.getElementById('qr'); return !!q && q.complete && q.naturalWidth > 0 && !q.hidden;",
    )
    .await;
    b.screenshot(&shot("device-qr")).await;
    b.js("window.__sameDocument = true; return true;").await;
    let (status, body) = app.admin_post("/api/admin/simulator/scan", &json!({ "device": device })).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    b.wait_for(
        "the status to turn connected",
        "return document.getElementById('device-status').dataset.status === 'connected';",
    )
    .await;
    assert_eq!(b.js("return window.__sameDocument === true;").await, json!(true), "the page did not reload");
    assert_eq!(b.js("return document.getElementById('pairing').hidden;").await, json!(true));
    b.screenshot(&shot("device-connected")).await;

    b.go(&app.url("/send")).await;
    b.fill("#to", "081299998888").await;
    b.fill("#text", &format!("Halo dari Chromium {size}")).await;
    b.screenshot(&shot("send")).await;
    b.click("#send").await;
    b.wait_for("the sent notice", "return !!document.getElementById('sent');").await;
    b.screenshot(&shot("sent")).await;

    // A form whose CSRF token was tampered with is refused and sends nothing.
    b.go(&app.url("/send")).await;
    b.fill("#to", "081299998888").await;
    b.fill("#text", &format!("Palsu dari Chromium {size}")).await;
    b.js("document.querySelector('form[action=\"/send\"] input[name=csrf]').value = 'palsu'; return true;")
        .await;
    b.click("#send").await;
    b.wait_for(
        "the refusal page",
        "return document.readyState === 'complete' && !document.getElementById('send');",
    )
    .await;
    assert_eq!(b.status().await, json!(403), "the forged form is refused");
    let refused = b.page_text().await;
    assert!(refused.contains("Refused") || refused.contains("Ditolak"), "{refused}");
    b.screenshot(&shot("csrf-refused")).await;
    assert_fits(&b, size).await;

    b.go(&app.url("/history")).await;
    assert!(b.page_text().await.contains(&format!("Halo dari Chromium {size}")));
    b.screenshot(&shot("history")).await;
    // The CSV export, fetched by the page with its session cookie.
    let csv = b
        .js_async(
            "var done = arguments[arguments.length - 1]; \
             fetch(document.getElementById('export').href, { credentials: 'same-origin' }) \
               .then(r => r.text().then(t => done({ status: r.status, type: r.headers.get('content-type'), text: t }))) \
               .catch(e => done({ status: 0, text: String(e) }));",
        )
        .await;
    assert_eq!(csv["status"], json!(200), "{csv}");
    assert!(csv["type"].as_str().unwrap_or("").contains("csv"), "{csv}");
    assert!(csv["text"].as_str().unwrap().contains(&format!("Halo dari Chromium {size}")), "{csv}");
    assert!(!csv["text"].as_str().unwrap().contains("Palsu dari Chromium"), "{csv}");
    b.click("#history tbody a").await;
    b.wait_for(
        "the message details in a dialog",
        "var d = document.getElementById('detail'); \
         return !!d && d.open && !!d.querySelector('#message-text');",
    )
    .await;
    assert_eq!(
        b.js("return location.pathname;").await,
        json!("/history"),
        "the list stays behind the dialog"
    );
    let detail = b.js("return document.getElementById('detail').innerText;").await;
    assert!(detail.as_str().unwrap().contains(&format!("Halo dari Chromium {size}")), "{detail}");
    b.screenshot(&shot("message")).await;
    b.click("#detail-close").await;
    b.wait_for("the dialog to close", "return !document.getElementById('detail').open;").await;
    assert_fits(&b, size).await;

    // An auto-reply made on the page answers an inbound message; both appear in history live.
    b.go(&app.url("/auto-reply")).await;
    b.fill("#keyword", "promo").await;
    b.fill("#reply", &format!("Promo {size}: diskon 10%")).await;
    b.screenshot(&shot("auto-reply-form")).await;
    b.click("#save-rule").await;
    b.wait_for(
        "the new rule",
        "return location.pathname === '/auto-reply' && !!document.getElementById('rules');",
    )
    .await;
    b.screenshot(&shot("auto-reply")).await;
    assert_fits(&b, size).await;
    b.go(&app.url("/history")).await;
    b.js("window.__sameDocument = true; return true;").await;
    app.inbound(device, "6281288880001", &format!("ada promo {size}?"), Some("Sari")).await;
    b.wait_for(
        "the inbound message and the reply to appear live",
        &format!(
            "var t = document.getElementById('history').innerText; \
             return t.includes('ada promo {size}?') && t.includes('Promo {size}: diskon 10%');"
        ),
    )
    .await;
    // A location arrives live with its kind label, as the page shows the rows it renders.
    let location = json!({
        "device": device, "from": "6281288880001",
        "location": {"latitude": -6.2, "longitude": 106.8, "name": format!("Gudang {size}")},
    });
    let (status, body) = app.admin_post("/api/admin/simulator/inbound", &location).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    b.wait_for(
        "the location to appear live with its kind",
        &format!(
            "var k = document.querySelector('#history tbody .kind[data-kind=location]'); \
             return !!k && k.parentNode.textContent === k.textContent + ' Gudang {size}';"
        ),
    )
    .await;
    assert_eq!(b.js("return window.__sameDocument === true;").await, json!(true), "the page did not reload");
    b.screenshot(&shot("history-live")).await;
    let outbox = app.outbox(device).await;
    assert!(
        !outbox.iter().any(|m| m["text"].as_str().unwrap_or("").contains("Palsu dari Chromium")),
        "the refused form sent nothing: {outbox:?}"
    );

    for page in ["scheduled", "webhooks", "plugins", "api-keys", "activity", "password"] {
        b.go(&app.url(&format!("/{page}"))).await;
        b.wait_for(page, "return document.readyState === 'complete';").await;
        b.screenshot(&shot(page)).await;
        assert_fits(&b, size).await;
    }

    // A plugin uploaded through the page's file input, and its page.
    b.go(&app.url("/plugins")).await;
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plugins/echo.wasm");
    assert!(wasm.exists(), "{}: run plugins/build.sh first", wasm.display());
    let file = b.find("#plugin-file").await;
    b.post(&format!("/element/{file}/value"), json!({ "text": wasm.display().to_string() })).await;
    b.fill("#plugin-name", &format!("Echo {size}")).await;
    b.click("#upload-plugin").await;
    b.wait_for("the plugin page", "return /^\\/plugins\\/\\d+$/.test(location.pathname);").await;
    assert!(b.page_text().await.contains(&format!("Echo {size}")));
    b.screenshot(&shot("plugin")).await;
    assert_fits(&b, size).await;

    b.click("#logout").await;
    b.wait_for("the login page", "return location.pathname === '/login';").await;
    // The session is gone: a protected page sends the browser to the login page.
    b.go(&app.url("/history")).await;
    b.wait_for(
        "the redirect to login",
        "return location.pathname === '/login' && !!document.getElementById('login');",
    )
    .await;

    b.go(&app.url("/admin/login")).await;
    b.fill("#token", &app.admin_token).await;
    b.click("#admin-login").await;
    b.wait_for(
        "the operator page",
        "return location.pathname === '/admin' && !!document.getElementById('tenants');",
    )
    .await;
    b.screenshot(&shot("admin")).await;
    assert_fits(&b, size).await;
    b.close().await;
}

#[tokio::test]
async fn a_new_user_pairs_a_device_and_sends_a_message_in_chromium() {
    let app = TestApp::spawn().await;
    let driver = Driver::start().await;
    first_use(&app, &driver, "desktop", 1280, 900, "081277770001").await;
    first_use(&app, &driver, "mobile", 375, 812, "081277770002").await;
}

/// The API reference with no network beyond the gateway: every other address goes to a proxy
/// on a closed port (Chromium never proxies 127.0.0.1), so a file from a CDN would fail to load.
#[tokio::test]
async fn the_api_reference_renders_offline_in_chromium() {
    let app = TestApp::spawn().await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let b = driver.session_with(profile.path(), &["--proxy-server=http://127.0.0.1:9"]).await;
    b.post("/window/rect", json!({ "width": 1280, "height": 900 })).await;
    b.go(&app.url("/docs/")).await;
    // Operations are folded under their tags until one is opened.
    b.wait_for("the tags listed", "return document.querySelectorAll('.opblock-tag').length >= 10;").await;
    b.click("#operations-tag-messages").await;
    b.wait_for("the operations of a tag", "return document.querySelectorAll('.opblock').length > 0;").await;
    let text = b.page_text().await;
    assert!(text.contains("/api/send-message"), "{text}");
    let foreign = b
        .js("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin));")
        .await;
    assert_eq!(foreign, json!([]), "everything came from the gateway");
    b.screenshot("docs").await;
    b.close().await;
}
