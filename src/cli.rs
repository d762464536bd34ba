//! The command line: `serve`, `migrate`, `tenant create|list`, `check-config`, `backup`,
//! `restore`, `plugin check`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{open_db, services, App};
use crate::config::Config;
use crate::tenants::CreateTenant;

#[derive(Debug, Parser)]
#[command(name = "wa-gateway", version, about = "Self-hosted, multi-tenant WhatsApp gateway")]
pub struct Cli {
    /// Configuration file (default: ./gateway.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Check the configuration and print it (secrets redacted).
    CheckConfig,
    /// Write a consistent copy of the SQLite database to FILE, also while the gateway runs
    /// (PostgreSQL: use pg_dump).
    Backup {
        /// Where to write the copy; must not exist yet.
        file: PathBuf,
    },
    /// Replace the SQLite database with a copy made by `backup` (the gateway must be stopped;
    /// the replaced database is kept beside it). PostgreSQL: use pg_restore.
    Restore {
        /// The copy to restore.
        file: PathBuf,
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Work with a running gateway's devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Work with WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check that a component is a plugin the gateway can run (the `auto-reply` world and
    /// the `[plugins]` limits) and print what it imports and exports. Exits non-zero when it
    /// is not.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Show a device's pairing QR code in the terminal, following its rotation until the
    /// device is connected.
    Qr {
        /// Device id or phone number.
        device: String,
        /// The gateway's URL.
        #[arg(long, default_value = "http://127.0.0.1:3000", env = "WA_GATEWAY_URL")]
        url: String,
        /// The tenant's API key.
        #[arg(long, env = "WA_GATEWAY_API_KEY")]
        api_key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints one JSON line with its id and first API key.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        package: Option<String>,
        /// Dashboard password (at least 8 characters).
        #[arg(long, env = "WA_GATEWAY_TENANT_PASSWORD")]
        password: Option<String>,
    },
    /// List tenants as JSON lines.
    List,
}

/// Runs a parsed command line. The caller prints errors and sets the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The terminal QR is an API client: it needs no configuration file.
    let config = || -> anyhow::Result<Config> {
        let config = Config::load(cli.config.as_deref())?;
        crate::telemetry::init(&config.log);
        Ok(config)
    };
    match cli.command {
        Command::Device(DeviceCommand::Qr { device, url, api_key }) => {
            terminal_qr(&url, &api_key, &device).await
        }
        Command::Serve => serve(config()?).await,
        Command::Migrate => {
            open_db(&config()?).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::CheckConfig => {
            let mut shown = config()?;
            if !shown.admin.token.is_empty() {
                shown.admin.token = "<redacted>".into();
            }
            if !shown.webhooks.secret_key.is_empty() {
                shown.webhooks.secret_key = "<redacted>".into();
            }
            if !shown.metrics.token.is_empty() {
                shown.metrics.token = "<redacted>".into();
            }
            if !shown.media.s3.secret_access_key.is_empty() {
                shown.media.s3.secret_access_key = "<redacted>".into();
            }
            shown.database.url = crate::app::redact(&shown.database.url);
            println!("{}", toml::to_string(&shown).context("cannot render the configuration")?);
            Ok(())
        }
        Command::Backup { file } => {
            let summary = crate::backup::backup(&config()?.database.url, &file).await?;
            println!("backup written: {summary}");
            println!("media kept in a folder ([media] path) is not in it: copy that folder too");
            Ok(())
        }
        Command::Restore { file } => {
            let restored = crate::backup::restore(&config()?.database.url, &file).await?;
            println!("restored: {}", restored.summary);
            if let Some(previous) = restored.previous {
                println!("the database it replaced is kept at {}", previous.display());
            }
            Ok(())
        }
        Command::Tenant(cmd) => tenant(config()?, cmd).await,
        Command::Plugin(PluginCommand::Check { file }) => plugin_check(&config()?, &file),
    }
}

/// Prints what the component at `file` imports and exports; an error when it is not a plugin
/// the gateway can run.
fn plugin_check(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let runtime = crate::plugins::runtime::Runtime::new(&config.plugins)?;
    let found = crate::plugins::check::inspect(&runtime, &wasm);
    if let Some(listing) = &found.listing {
        print!("{listing}");
    }
    match found.verdict {
        Ok(()) => {
            let world =
                found.world.map_or_else(|| crate::plugins::runtime::WORLD.to_string(), |w| w.to_string());
            println!("\nfits the {world} world: yes");
            Ok(())
        }
        Err(invalid) => {
            if found.listing.is_some() {
                println!(
                    "\nfits the {} or the {} world: no",
                    crate::plugins::runtime::WORLD,
                    crate::plugins::runtime::TRANSFORM_WORLD
                );
            }
            anyhow::bail!("{} is not a plugin the gateway can run: {invalid}", file.display())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    if let Some(token) = &app.generated_admin_token {
        println!("Generated admin token (shown once, store it now): {token}");
    }
    println!("wa-gateway listening on http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
    app.run().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn tenant(config: Config, cmd: TenantCommand) -> anyhow::Result<()> {
    let db = open_db(&config).await?;
    let (_, tenants) = services(&config, &db);
    match cmd {
        TenantCommand::Create { name, email, package, password } => {
            let (row, key) = tenants.create(CreateTenant { name, email, package, password }).await?;
            tenants
                .record(crate::db::activity::NewActivity {
                    user_id: Some(row.id),
                    actor: "admin".into(),
                    action: "tenant.create".into(),
                    target: Some(format!("tenant:{}", row.id)),
                    detail: Some("cli".into()),
                    ip: None,
                })
                .await;
            println!(
                "{}",
                serde_json::json!({ "id": row.id, "name": row.name, "email": row.email, "package": row.package, "api_key": key })
            );
        }
        TenantCommand::List => {
            let mut offset = 0;
            loop {
                let (rows, _) = db.list_tenants(500, offset).await?;
                if rows.is_empty() {
                    break;
                }
                offset += rows.len() as i64;
                for r in rows {
                    println!(
                        "{}",
                        serde_json::json!({ "id": r.id, "name": r.name, "email": r.email, "package": r.package, "status": r.status })
                    );
                }
            }
        }
    }
    db.close().await;
    Ok(())
}

/// Prints the device's QR code as terminal blocks whenever it rotates, until it is connected.
async fn terminal_qr(url: &str, api_key: &str, device: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let base = url.trim_end_matches('/');
    let mut shown = String::new();
    loop {
        let response = client
            .get(format!("{base}/api/user/devices/{device}/qr"))
            .header("x-api-key", api_key)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {base}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT {
            println!("The device is connected.");
            return Ok(());
        }
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("unexpected answer");
            anyhow::bail!("the gateway answered {status}: {message}");
        }
        let code = body["qr"].as_str().unwrap_or_default().to_string();
        if code != shown {
            let art = crate::devices::qr::terminal(&code)?;
            println!(
                "{art}\nScan with WhatsApp: Settings, Linked devices, Link a device. Expires {}.\n",
                body["expires_at"].as_str().unwrap_or("soon")
            );
            shown = code;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}
