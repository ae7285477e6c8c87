//! `avioctl diag|backup|restore|send`: the operator's commands for an installation
//! (SPEC 10, 11). The work is in `avio::ops`; this file parses, prints and picks exit
//! codes.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};

use avio::client::{AdminClient, ClientError};
use avio::ops::Layout;
use avio::ops::backup::{self, BackupError, Snapshot};
use avio::ops::diag::{self, DiagInput, Level};

use super::{Failure, Settings, print, s};

#[derive(Subcommand)]
pub enum OpsCmd {
    /// Check the installation: health, secrets, outbox, tokens, sessions, guardrails,
    /// recent errors, disk space. Exits 1 when something is wrong.
    Diag {
        /// Show the details behind every check.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Write a consistent snapshot of the databases and tenant files to FILE (tar.zst).
    Backup {
        /// The archive to write, e.g. avio-$(date +%F).tar.zst.
        file: PathBuf,
    },
    /// Restore an archive made by `avioctl backup` (the daemon must be stopped).
    Restore { file: PathBuf },
    /// Send a test message through the outbox (POST /send); waits for the result.
    Send {
        #[arg(long)]
        tenant: i64,
        /// telegram, whatsapp or avito.
        #[arg(long)]
        channel: String,
        /// Telegram: id, username or "me"; WhatsApp: +E164 or JID; Avito: chat id.
        #[arg(long)]
        to: String,
        #[arg(long)]
        text: Option<String>,
        /// A file to attach, by URL (repeat for several).
        #[arg(long = "attach", value_name = "URL")]
        attach: Vec<String>,
        /// The provider message id to reply to (Telegram).
        #[arg(long)]
        reply_to: Option<String>,
        /// Print the job id and return at once instead of waiting for the result.
        #[arg(long)]
        no_wait: bool,
    },
}

fn layout(settings: &Settings) -> Layout {
    Layout::from_lookup(|key| settings.get(key).map(str::to_string))
}

fn backup_failure(e: BackupError) -> Failure {
    match e {
        BackupError::DaemonRunning(_) => Failure::Setup(e.to_string()),
        other => Failure::Failed(other.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::Failed(format!("backup task failed: {e}")))?
        .map_err(backup_failure)
}

pub async fn run(command: OpsCmd, raw: bool, settings: &Settings) -> Result<(), Failure> {
    match command {
        OpsCmd::Diag { verbose } => run_diag(raw, verbose, settings).await,
        OpsCmd::Backup { file } => run_backup(raw, settings, file).await,
        OpsCmd::Restore { file } => run_restore(raw, settings, file).await,
        OpsCmd::Send { tenant, channel, to, text, attach, reply_to, no_wait } => {
            let mut body = json!({"tenant": tenant, "channel": channel, "to": to});
            if let Some(text) = text {
                body["text"] = json!(text);
            }
            if !attach.is_empty() {
                let attachments: Vec<Value> = attach
                    .iter()
                    .map(|url| {
                        let name = url.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("file");
                        json!({"type": "file", "url": url, "name": name})
                    })
                    .collect();
                body["attachments"] = json!(attachments);
            }
            if let Some(reply_to) = reply_to {
                body["meta"] = json!({"reply_to": reply_to});
            }
            let path = if no_wait { "/send" } else { "/send?wait=true" };
            let answer = settings.client()?.post(path, &body).await.map_err(send_failure)?;
            print(raw, &answer, |a| {
                if a["queued"] == true {
                    println!("queued: job {} (avioctl cannot wait longer; the outbox keeps trying)", s(&a["job_id"]));
                } else if a["ok"] == true {
                    println!("sent: job {}", s(&a["job_id"]));
                }
            });
            if answer["ok"] == false {
                return Err(Failure::Failed(format!(
                    "not delivered: {} (job {})",
                    s(&answer["error"]),
                    s(&answer["job_id"])
                )));
            }
            Ok(())
        }
    }
}

/// The SPEC's refusals of `POST /send`, each with what to do.
fn send_failure(e: ClientError) -> Failure {
    if let ClientError::Api { body, .. } = &e {
        let hint = match body["error"].as_str() {
            Some("outbox_disabled") => {
                Some("sending is off: set OUTBOX_ENABLED=true in /etc/avio/avio.env, then sudo systemctl restart avio")
            }
            Some("not_whitelisted") => Some(
                "the recipient is not in OUTBOX_WHITELIST: add it in /etc/avio/avio.env, then sudo systemctl restart avio",
            ),
            Some("tenant_not_found") => Some("no such tenant: avioctl tenant list"),
            _ => None,
        };
        if let Some(hint) = hint {
            return Failure::Failed(format!("{}: {hint}", s(&body["error"])));
        }
    }
    e.into()
}

async fn run_diag(raw: bool, verbose: bool, settings: &Settings) -> Result<(), Failure> {
    let input =
        DiagInput { vars: settings.vars.clone(), env_file: settings.env_file.clone(), client: settings.client().ok() };
    let report = diag::run(&input).await;
    if raw {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for finding in &report.findings {
            println!("{:<5} {:<11} {}", finding.level.label(), finding.area, finding.message);
            if let Some(fix) = &finding.fix {
                println!("{:<17} fix: {fix}", "");
            }
            if verbose {
                for line in &finding.details {
                    println!("{:<17} {line}", "");
                }
            }
        }
        println!(
            "diag: {} failed, {} warning(s), {} ok{}",
            report.count(Level::Fail),
            report.count(Level::Warn),
            report.count(Level::Ok),
            if verbose { "" } else { " (--verbose for details)" }
        );
    }
    if report.failed() {
        return Err(Failure::Failed(format!("{} check(s) failed", report.count(Level::Fail))));
    }
    Ok(())
}

async fn run_backup(raw: bool, settings: &Settings, file: PathBuf) -> Result<(), Failure> {
    let layout = layout(settings);
    if file.exists() {
        return Err(Failure::Failed(format!("{} exists: choose another name", file.display())));
    }
    let snapshot = match settings.client() {
        Ok(client) => match online_snapshot(&client, &layout).await? {
            Some(snapshot) => snapshot,
            None => offline(&layout).await?,
        },
        Err(_) => offline(&layout).await?,
    };
    let out = file.clone();
    let report = {
        let layout = layout.clone();
        blocking(move || backup::write_archive(&layout, &snapshot, &out)).await?
    };
    let answer = json!({
        "ok": true,
        "file": report.path,
        "bytes": report.bytes,
        "files": report.n_files,
        "tenants": report.n_tenants,
        "source": report.source,
        "schema_version": report.schema_version,
    });
    print(raw, &answer, |_| {
        println!(
            "backup:  {} ({} bytes, {} files, {} tenants; {} snapshot, schema v{})",
            report.path.display(),
            report.bytes,
            report.n_files,
            report.n_tenants,
            report.source,
            report.schema_version
        );
        println!("It holds every tenant's sessions and keys: keep it as private as /var/lib/avio.");
    });
    Ok(())
}

/// Asks the running daemon for database snapshots; `None` when it does not answer.
async fn online_snapshot(client: &AdminClient, layout: &Layout) -> Result<Option<Snapshot>, Failure> {
    let answer = match client.post("/admin/backup", &json!({})).await {
        Ok(answer) => answer,
        Err(ClientError::Unreachable { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let name = answer["name"].as_str().unwrap_or_default();
    let dir = layout.data_dir.join("backups").join(name);
    if name.is_empty() || name.contains('/') || !dir.is_dir() {
        return Err(Failure::Setup(format!(
            "the daemon wrote its snapshot to {}, which is not in this DATA_DIR ({}): run as root (sudo) with the daemon's env file",
            s(&answer["dir"]),
            layout.data_dir.display()
        )));
    }
    Ok(Some(Snapshot { dir, source: "online" }))
}

async fn offline(layout: &Layout) -> Result<Snapshot, Failure> {
    let layout = layout.clone();
    blocking(move || backup::offline_snapshot(&layout)).await
}

async fn run_restore(raw: bool, settings: &Settings, file: PathBuf) -> Result<(), Failure> {
    // `/health` needs no token: a daemon that answers is running, whatever its token.
    let probe = AdminClient::new(&settings.url(), "");
    if probe.health().await.is_ok() {
        return Err(Failure::Setup(format!(
            "the daemon is running at {}: stop it first: sudo systemctl stop avio",
            probe.base_url()
        )));
    }
    if !Path::new(&file).is_file() {
        return Err(Failure::Failed(format!("{} is not a file", file.display())));
    }
    let layout = layout(settings);
    let report = {
        let layout = layout.clone();
        blocking(move || backup::restore(&layout, &file)).await?
    };
    let answer = json!({
        "ok": true,
        "files": report.n_files,
        "tenants": report.n_tenants,
        "created_at": report.manifest.created_at,
        "avio_version": report.manifest.avio_version,
        "schema_version": report.manifest.schema_version,
        "replaced_state": report.aside,
    });
    print(raw, &answer, |_| {
        println!(
            "restored: {} files, {} tenants from the backup of {} (avio {}, schema v{})",
            report.n_files,
            report.n_tenants,
            report.manifest.created_at,
            report.manifest.avio_version,
            report.manifest.schema_version
        );
        if let Some(aside) = &report.aside {
            println!("the state it replaced is kept in {}", aside.display());
        }
        println!("start the daemon: sudo systemctl start avio");
    });
    Ok(())
}
