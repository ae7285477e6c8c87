//! `avioctl wa up|down|restart|status|logs [-f]|purge --tenant N|--all`: WhatsApp
//! sessions through the daemon's admin routes (SPEC 6.2).

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Failure, Settings, print, s};

/// The sentence SPEC 6.2 gives `purge`.
const PURGE_REFUSAL: &str = "state must not be deleted; use logout";

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// One tenant.
    #[arg(long)]
    tenant: Option<i64>,
    /// Every tenant (up: those with a session profile; down, restart: running ones).
    #[arg(long)]
    all: bool,
}

/// `purge` takes the same selectors but none is required: it refuses whatever is asked.
#[derive(Args)]
pub struct PurgeArgs {
    #[arg(long)]
    tenant: Option<i64>,
    #[arg(long)]
    all: bool,
}

impl Which {
    fn query(&self) -> String {
        match self.tenant {
            Some(tenant) => format!("tenant={tenant}"),
            None => "all=true".into(),
        }
    }
}

#[derive(Subcommand)]
pub enum WaCmd {
    /// Start sessions (a QR appears for tenants not linked yet).
    Up(Which),
    /// Stop browsers; the state stays and they no longer start at boot.
    Down(Which),
    /// Restart browsers (the state stays).
    Restart(Which),
    /// Session states, numbers, restarts, last errors.
    Status(Which),
    /// Recent session events.
    Logs {
        #[command(flatten)]
        which: Which,
        /// Keep printing new events.
        #[arg(short, long)]
        follow: bool,
    },
    /// Refused: a session's state is only reset by logging out.
    Purge(PurgeArgs),
}

fn print_results(raw: bool, answer: &Value) {
    print(raw, answer, |a| {
        for r in a["results"].as_array().into_iter().flatten() {
            let outcome = if r["ok"] == true { s(&r["state"]) } else { s(&r["error"]) };
            println!("tenant {:<6} {}", r["tenant"], outcome);
        }
    });
}

fn failed_results(answer: &Value) -> Result<(), Failure> {
    let failed: Vec<String> = answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["ok"] != true)
        .map(|r| format!("tenant {}: {}", r["tenant"], s(&r["error"])))
        .collect();
    if failed.is_empty() { Ok(()) } else { Err(Failure::Failed(failed.join("; "))) }
}

pub async fn run(command: WaCmd, raw: bool, settings: &Settings) -> Result<(), Failure> {
    match command {
        WaCmd::Purge(_) => Err(Failure::Failed(PURGE_REFUSAL.into())),
        WaCmd::Up(which) => {
            let answer = settings.client()?.post(&format!("/admin/wa/up?{}", which.query()), &json!({})).await?;
            print_results(raw, &answer);
            failed_results(&answer)
        }
        WaCmd::Down(which) => {
            let answer = settings.client()?.post(&format!("/admin/wa/down?{}", which.query()), &json!({})).await?;
            print(raw, &answer, |a| {
                for r in a["results"].as_array().into_iter().flatten() {
                    let what = if r["was_running"] == true { "stopped" } else { "was not running" };
                    println!("tenant {:<6} {what}", r["tenant"]);
                }
            });
            Ok(())
        }
        WaCmd::Restart(which) => {
            let answer = settings.client()?.post(&format!("/admin/wa/restart?{}", which.query()), &json!({})).await?;
            print_results(raw, &answer);
            failed_results(&answer)
        }
        WaCmd::Status(which) => {
            let path = match which.tenant {
                Some(tenant) => format!("/admin/wa/status?tenant={tenant}"),
                None => "/admin/wa/status".into(),
            };
            let answer = settings.client()?.get(&path).await?;
            print(raw, &answer, |a| {
                println!("{:<7} {:<11} {:<16} {:<8} {:<9} last error", "tenant", "state", "me", "pid", "restarts");
                for session in a["sessions"].as_array().into_iter().flatten() {
                    println!(
                        "{:<7} {:<11} {:<16} {:<8} {:<9} {}",
                        session["tenant"],
                        s(&session["state"]),
                        s(&session["me"]),
                        s(&session["pid"]),
                        session["restarts"],
                        s(&session["last_error"])
                    );
                }
            });
            Ok(())
        }
        WaCmd::Logs { which, follow } => {
            let client = settings.client()?;
            let tenants: Vec<i64> = match which.tenant {
                Some(tenant) => vec![tenant],
                None => {
                    let answer = client.get("/admin/wa/status").await?;
                    answer["sessions"].as_array().into_iter().flatten().filter_map(|s| s["tenant"].as_i64()).collect()
                }
            };
            let mut after = vec![0u64; tenants.len()];
            loop {
                for (idx, tenant) in tenants.iter().enumerate() {
                    let answer = client.get(&format!("/admin/wa/logs?tenant={tenant}&after={}", after[idx])).await?;
                    for line in answer["lines"].as_array().into_iter().flatten() {
                        after[idx] = after[idx].max(line["seq"].as_u64().unwrap_or(0));
                        if raw {
                            println!("{line}");
                        } else {
                            println!("{} tenant={tenant} {} {}", s(&line["ts"]), s(&line["event"]), s(&line["detail"]));
                        }
                    }
                }
                if !follow {
                    return Ok(());
                }
                // Following polls: the daemon keeps a small ring buffer per tenant.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
