//! The compiled `wa-gateway` binary as an operator meets it: configuration errors that name
//! the key, tenant commands, and the first start of `serve`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wa-gateway");

/// The binary, run in `dir`, with no `GATEWAY_*` variable of the test's own environment.
fn gateway(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("GATEWAY_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `check-config --config <file with contents>` and returns the output.
fn check_config(contents: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, contents).unwrap();
    run(gateway(dir.path()).arg("check-config").arg("--config").arg(&file))
}

#[test]
fn an_unknown_key_in_the_file_stops_start_up_naming_the_key() {
    let out = check_config("[server]\nbindd = \"127.0.0.1:3000\"\n");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("unknown key `server.bindd`"), "{err}");
}

#[test]
fn a_bad_value_stops_start_up_naming_the_key() {
    let out = check_config("[whatsapp]\ndriver = \"telegram\"\n");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("whatsapp.driver"), "{err}");

    let out = check_config("[server]\nbind = \"not an address\"\n");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("server.bind"));
}

#[test]
fn a_file_that_is_not_toml_stops_start_up() {
    let out = check_config("[server\nbind = 1\n");
    assert!(!out.status.success());
    assert!(!text(&out.stderr).is_empty());
}

#[test]
fn an_unreadable_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere").join("gateway.toml");
    let out = run(gateway(dir.path()).arg("check-config").arg("--config").arg(&missing));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "the reason once: {err}");
}

#[test]
fn an_unknown_key_in_the_environment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gateway(dir.path()).arg("check-config").env("GATEWAY_SERVER__BINDD", "x"));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("unknown key `server.bindd`"), "{err}");
}

#[test]
fn a_good_file_and_the_environment_are_merged_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.toml");
    let contents = "[server]\nbind = \"127.0.0.1:4000\"\n\n[admin]\ntoken = \"very-secret\"\n\n\
                    [metrics]\ntoken = \"scrape-secret\"\n\n[media.s3]\nsecret_access_key = \"s3-secret\"\n";
    std::fs::write(&file, contents).unwrap();
    let out = run(gateway(dir.path())
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .env("GATEWAY_WHATSAPP__DRIVER", "simulator"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("bind = \"127.0.0.1:4000\""), "{shown}");
    assert!(shown.contains("driver = \"simulator\""), "{shown}");
    assert!(shown.contains("[packages.basic]"), "{shown}");
    for secret in ["very-secret", "scrape-secret", "s3-secret"] {
        assert!(!shown.contains(secret), "{secret} is not printed: {shown}");
    }
}

#[test]
fn tenant_create_prints_one_json_line_with_the_id_and_key_and_tenant_list_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}/g.db", dir.path().display());
    let out = run(gateway(dir.path())
        .env("GATEWAY_DATABASE__URL", &url)
        .args(["tenant", "create", "--name", "Toko Budi"])
        .args(["--email", "budi@example.com", "--package", "basic"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stdout}");
    let created: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
    let id = created["id"].as_i64().expect("an id");
    assert!(created["api_key"].as_str().is_some_and(|k| k.starts_with("wag_")));
    assert!(dir.path().join("g.db").exists());

    let out = run(gateway(dir.path()).env("GATEWAY_DATABASE__URL", &url).args(["tenant", "list"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["email"], "budi@example.com");
    assert_eq!(listed[0]["package"], "basic");

    // The same email again is refused.
    let out = run(gateway(dir.path())
        .env("GATEWAY_DATABASE__URL", &url)
        .args(["tenant", "create", "--name", "Budi 2"])
        .args(["--email", "budi@example.com"]));
    assert!(!out.status.success());
}

/// A `serve` child process whose stdout lines arrive on a channel; killed when dropped.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(dir: &Path, db_url: &str) -> Server {
        let mut child = gateway(dir)
            .arg("serve")
            .env("GATEWAY_SERVER__BIND", "127.0.0.1:0")
            .env("GATEWAY_DATABASE__URL", db_url)
            .env("GATEWAY_WHATSAPP__DRIVER", "simulator")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, lines }
    }

    /// Reads stdout lines until the listening line; returns the lines and the address.
    fn wait_listening(&self) -> (Vec<String>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no listening line within 60 s; saw {seen:?}"));
            if let Some(addr) = line.strip_prefix("wa-gateway listening on http://") {
                let addr = addr.trim().to_string();
                seen.push(line);
                return (seen, addr);
            }
            seen.push(line);
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin_status(addr: &str, token: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(format!("http://{addr}/api/admin/tenants"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("the server answers")
            .status()
            .as_u16()
    })
}

#[test]
fn serve_prints_a_generated_admin_token_on_first_start_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}/data/g.db", dir.path().display());

    let mut first = Server::start(dir.path(), &url);
    let (lines, addr) = first.wait_listening();
    let token_line = lines
        .iter()
        .find(|l| l.contains("admin token"))
        .unwrap_or_else(|| panic!("a generated admin token is printed: {lines:?}"));
    let token = token_line.rsplit(' ').next().expect("the token ends the line").to_string();
    assert!(token.len() >= 32, "{token_line}");
    assert_eq!(admin_status(&addr, &token), 200);
    assert_eq!(admin_status(&addr, "wrong"), 401);
    let status = first.terminate();
    assert!(status.success(), "SIGTERM stops serve cleanly: {status}");

    let second = Server::start(dir.path(), &url);
    let (lines, addr) = second.wait_listening();
    assert!(!lines.iter().any(|l| l.contains("admin token")), "the token is shown once: {lines:?}");
    assert!(!lines.iter().any(|l| l.contains(&token)));
    // The stored hash still accepts the first token.
    assert_eq!(admin_status(&addr, &token), 200);
}
