//! `avioctl tg status|logout --tenant N`: a tenant's Telegram session through the
//! daemon's admin routes (SPEC 11).

use clap::Subcommand;
use serde_json::{Value, json};

use super::{Failure, Settings, print, s};

#[derive(Subcommand)]
pub enum TgCmd {
    /// Login state, the account, and why it failed (exits 1 when failed).
    Status {
        #[arg(long)]
        tenant: i64,
    },
    /// End the session: log out at Telegram and delete the session file.
    Logout {
        #[arg(long)]
        tenant: i64,
    },
}

fn print_status(raw: bool, tenant: i64, answer: &Value) {
    print(raw, answer, |a| {
        println!("tenant:       {tenant}");
        println!("state:        {}", s(&a["state"]));
        if a["me"].is_object() {
            println!("account:      {} (@{})", a["me"]["id"], s(&a["me"]["username"]));
        }
        if !a["reason"].is_null() {
            println!("reason:       {}", s(&a["reason"]));
        }
        if let Some(at) = a["failed_at"].as_i64() {
            println!("failed at:    {}", avio::domain::rfc3339(at));
        }
        if !a["action"].is_null() {
            println!("fix:          {}", s(&a["action"]));
        }
        if let Some(at) = a["peer_flood_at"].as_i64() {
            println!(
                "PEER_FLOOD:   since {} (Telegram limits messages to people who did not write first)",
                avio::domain::rfc3339(at)
            );
        }
    });
}

pub async fn run(command: TgCmd, raw: bool, settings: &Settings) -> Result<(), Failure> {
    match command {
        TgCmd::Status { tenant } => {
            let answer = settings.client()?.get(&format!("/admin/tg/status?tenant={tenant}")).await?;
            print_status(raw, tenant, &answer);
            if answer["state"] == "failed" {
                return Err(Failure::Failed(format!("telegram session failed: {}", s(&answer["reason"]))));
            }
        }
        TgCmd::Logout { tenant } => {
            let answer = settings.client()?.post(&format!("/admin/tg/logout?tenant={tenant}"), &json!({})).await?;
            print(raw, &answer, |_| println!("tenant {tenant}: logged out of Telegram"));
        }
    }
    Ok(())
}
