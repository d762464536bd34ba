//! A tiny cookie-keeping HTTP client that fills in dashboard forms like a browser would.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{unique, TestApp};

/// The password every dashboard test tenant gets.
pub const PASSWORD: &str = "rahasia-sekali-123";

/// A tenant with a dashboard password.
pub struct Login {
    pub id: i64,
    pub email: String,
    pub api_key: String,
}

/// Creates a tenant with [`PASSWORD`] through the admin API.
pub async fn tenant(app: &TestApp, package: &str) -> Login {
    let email = format!("dash{}-{}@example.com", unique(), std::process::id());
    let (status, body) = app
        .admin_post(
            "/api/admin/tenants",
            &json!({ "name": "Toko Dashboard", "email": email, "package": package, "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Login { id: body["id"].as_i64().unwrap(), email, api_key: body["api_key"].as_str().unwrap().to_string() }
}

/// An answer: status, headers, body text.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The `Location` of a redirect.
    pub fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let start =
            self.body.find("name=\"csrf\" value=\"").expect("the page has a form with a csrf field") + 19;
        self.body[start..].split('"').next().unwrap().to_string()
    }
}

/// A browser without JavaScript: keeps cookies, does not follow redirects.
pub struct Agent<'a> {
    pub app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
    pub accept_language: &'static str,
    /// An `X-Forwarded-For` to send, as a reverse proxy in front of the gateway would.
    pub forwarded_for: Option<&'static str>,
}

impl<'a> Agent<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Agent { app, cookies: BTreeMap::new(), accept_language: "en", forwarded_for: None }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn finish(&mut self, mut request: reqwest::RequestBuilder) -> Page {
        if let Some(ip) = self.forwarded_for {
            request = request.header("x-forwarded-for", ip);
        }
        let response = request
            .header(COOKIE, self.cookie_header())
            .header("accept-language", self.accept_language)
            .send()
            .await
            .expect("the request reaches the gateway");
        for c in response.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        Page { status, headers, body: response.text().await.unwrap() }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.app.client.get(self.app.url(path));
        self.finish(request).await
    }

    /// POSTs a form as it is (no token added).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields {
                s.append_pair(k, v);
            }
            s.finish()
        };
        let request = self
            .app
            .client
            .post(self.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.finish(request).await
    }

    /// Opens `form_page`, takes its CSRF token, and POSTs `fields` with it to `path`.
    pub async fn submit(&mut self, form_page: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(form_page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    /// Opens `form_page`, takes its CSRF token, and POSTs `fields` and one file
    /// (`field`, file name, content type, bytes) to `path` as `multipart/form-data`.
    pub async fn upload(
        &mut self,
        form_page: &str,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str, &str, &[u8]),
    ) -> Page {
        let csrf = self.get(form_page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_multipart(path, &all, file).await
    }

    /// POSTs `fields` and one file as `multipart/form-data`, as they are (no token added).
    pub async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str, &str, &[u8]),
    ) -> Page {
        let boundary = "dashboard-test-boundary-51c9";
        let mut body = Vec::new();
        for (name, value) in fields {
            let part =
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
            body.extend_from_slice(part.as_bytes());
        }
        let (field, filename, content_type, bytes) = file;
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        );
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = self
            .app
            .client
            .post(self.app.url(path))
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body);
        self.finish(request).await
    }

    /// Logs in; returns the answer to the login POST.
    pub async fn login(&mut self, email: &str, password: &str) -> Page {
        self.submit("/login", "/login", &[("email", email), ("password", password)]).await
    }
}
