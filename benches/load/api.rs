//! Setting the gateway up through its HTTP API, as a tenant and an operator would: a tenant,
//! devices paired through the simulator's admin API, keyword rules, the echo plugin, a webhook
//! endpoint; and reading what the simulator saw the gateway send (the outbox).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::procs::ADMIN_TOKEN;

/// One tenant's view of a gateway, plus the operator's token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    pub key: String,
}

/// One entry of the simulator's outbox: what the gateway sent through a device.
#[derive(Debug, Deserialize)]
pub struct Sent {
    pub text: Option<String>,
    /// When the simulated network took it, RFC 3339.
    pub at: String,
    /// Its place in the device's outbox (the cursor for the next read).
    pub seq: u64,
}

impl Api {
    /// Creates an `enterprise` tenant (no limits) on the gateway at `base`.
    pub async fn tenant(base: &str) -> Result<Api> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let mut api = Api { http, base: base.to_string(), key: String::new() };
        let tenant = api
            .admin(
                Method::POST,
                "/api/admin/tenants",
                Some(json!({"name": "Load", "email": "load@example.com", "package": "enterprise"})),
            )
            .await?;
        api.key = tenant["api_key"].as_str().context("the tenant has an api_key")?.to_string();
        Ok(api)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        admin: bool,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request =
            if admin { request.bearer_auth(ADMIN_TOKEN) } else { request.header("x-api-key", &self.key) };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// A tenant call that must succeed; returns the JSON answer.
    pub async fn user(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, answer) = self.call(method.clone(), path, body, false).await?;
        ensure!(status.is_success(), "{method} {path} answered {status}: {answer}");
        Ok(answer)
    }

    /// An operator call that must succeed; returns the JSON answer.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, answer) = self.call(method.clone(), path, body, true).await?;
        ensure!(status.is_success(), "{method} {path} answered {status}: {answer}");
        Ok(answer)
    }

    /// Creates a device for `phone` and starts its pairing (the QR code); returns its id.
    pub async fn add_device(&self, phone: &str) -> Result<i64> {
        let body = json!({"phone": phone, "name": format!("Load {phone}")});
        let device = self.user(Method::POST, "/api/user/devices", Some(body)).await?;
        let id = device["id"].as_i64().context("the device has an id")?;
        self.user(Method::GET, &format!("/api/user/devices/{id}/qr"), None).await?;
        Ok(id)
    }

    /// The simulated phone scans the device's QR code (again while no code is shown yet).
    pub async fn scan(&self, id: i64) -> Result<()> {
        for _ in 0..200 {
            let (status, answer) = self
                .call(Method::POST, "/api/admin/simulator/scan", Some(json!({"device": id})), true)
                .await?;
            if status.is_success() {
                return Ok(());
            }
            ensure!(status == StatusCode::CONFLICT, "scanning device {id} answered {status}: {answer}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("device {id} never showed a QR code to scan")
    }

    /// Pairs a new device for `phone` and waits until it is connected; returns its id.
    pub async fn pair_device(&self, phone: &str) -> Result<i64> {
        let id = self.add_device(phone).await?;
        self.scan(id).await?;
        self.wait_connected(&[id]).await?;
        Ok(id)
    }

    /// Waits until every device in `ids` reports `connected`.
    pub async fn wait_connected(&self, ids: &[i64]) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        for id in ids {
            loop {
                let device = self.user(Method::GET, &format!("/api/user/devices/{id}"), None).await?;
                if device["status"] == "connected" {
                    break;
                }
                ensure!(tokio::time::Instant::now() < deadline, "device {id} did not connect: {device}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// How many of the tenant's devices are connected (all pages of the list).
    pub async fn connected_devices(&self) -> Result<usize> {
        let mut connected = 0;
        let mut offset = 0;
        loop {
            let page =
                self.user(Method::GET, &format!("/api/user/devices?limit=500&offset={offset}"), None).await?;
            let data = page["data"].as_array().context("a device list")?;
            connected += data.iter().filter(|d| d["status"] == "connected").count();
            offset += data.len();
            if data.is_empty() || offset as i64 >= page["total"].as_i64().unwrap_or(0) {
                return Ok(connected);
            }
        }
    }

    /// What the simulator saw the gateway send through device `id`, oldest first (the
    /// simulator keeps the last 10,000 per device).
    pub async fn outbox(&self, id: i64, after: u64) -> Result<Vec<Sent>> {
        #[derive(Deserialize)]
        struct Outbox {
            data: Vec<Sent>,
        }
        let response = self
            .http
            .get(format!("{}/api/admin/simulator/outbox?device={id}&after={after}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?;
        ensure!(response.status().is_success(), "the outbox of device {id} answered {}", response.status());
        Ok(response.json::<Outbox>().await?.data)
    }

    /// Outbound messages of the tenant still waiting for their device. (The list counts at
    /// most `max(1000, offset + limit)` matches: the largest offset makes it count to 100,000.)
    pub async fn queued(&self) -> Result<i64> {
        let path = "/api/user/chat-history?status=queued&limit=1&offset=99999";
        let page = self.user(Method::GET, path, None).await?;
        page["total"].as_i64().context("a total")
    }

    /// Waits until no outbound message is queued (at most `limit`); returns how long it took.
    pub async fn wait_drained(&self, limit: Duration) -> Result<Option<Duration>> {
        let started = tokio::time::Instant::now();
        while self.queued().await? > 0 {
            if started.elapsed() > limit {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Some(started.elapsed()))
    }

    /// Uploads the echo plugin built by `plugins/build.sh` (enabled, for every device).
    pub async fn upload_echo_plugin(&self) -> Result<()> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/plugins/echo.wasm");
        let wasm = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("{path} is missing ({e}): build the plugins first with `plugins/build.sh echo`")
        })?;
        let response = self
            .http
            .post(format!("{}/api/user/plugins?name=echo", self.base))
            .header("x-api-key", &self.key)
            .header("content-type", "application/wasm")
            .body(wasm)
            .send()
            .await?;
        let status = response.status();
        ensure!(
            status.is_success(),
            "uploading the echo plugin answered {status}: {}",
            response.text().await?
        );
        Ok(())
    }
}

/// The echo plugin, checked before a gateway starts so a missing build fails at once.
pub fn check_echo_plugin() -> Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/plugins/echo.wasm");
    ensure!(
        std::path::Path::new(path).is_file(),
        "{path} is missing: build the plugins first with `plugins/build.sh echo` (or `plugins/build.sh`)"
    );
    Ok(())
}
