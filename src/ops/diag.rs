//! `avioctl diag`: what is wrong with an installation, and what to do about it.
//!
//! Each check yields [`Finding`]s: `Ok`, `Warn` (works, but probably not as meant) or
//! `Fail` (broken; `avioctl diag` exits non-zero). Every finding that is not `Ok` names
//! its fix. Checks read the env file's view of the configuration, `DATA_DIR` on disk
//! and the daemon's admin routes; a route this build of the daemon lacks is skipped.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::Value;

use super::Layout;
use crate::client::{AdminClient, ClientError};
use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub level: Level,
    /// The part of the installation: `config`, `secrets`, `health`, `outbox`, ...
    pub area: &'static str,
    pub message: String,
    /// What to do; set on every `Warn` and `Fail`.
    pub fix: Option<String>,
    /// Printed with `--verbose`.
    pub details: Vec<String>,
}

impl Finding {
    fn ok(area: &'static str, message: impl Into<String>) -> Finding {
        Finding { level: Level::Ok, area, message: message.into(), fix: None, details: Vec::new() }
    }
    fn warn(area: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { level: Level::Warn, area, message: message.into(), fix: Some(fix.into()), details: Vec::new() }
    }
    fn fail(area: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { level: Level::Fail, area, message: message.into(), fix: Some(fix.into()), details: Vec::new() }
    }
    fn with_details(mut self, details: Vec<String>) -> Finding {
        self.details = details;
        self
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Fail)
    }
    pub fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }
    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }
}

/// What `avioctl` knows about the installation.
pub struct DiagInput {
    /// The variables `avioctl` loaded (env file, then the environment).
    pub vars: HashMap<String, String>,
    /// The env file they came from, if any (its permissions are checked).
    pub env_file: Option<PathBuf>,
    /// `None` when there is no `ADMIN_TOKEN` to talk to the daemon with.
    pub client: Option<AdminClient>,
}

impl DiagInput {
    fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
    }
    /// Where to change a variable, for fixes.
    fn env_file_name(&self) -> String {
        self.env_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| crate::config::SYSTEM_ENV_FILE.to_string())
    }
}

/// Values that are examples or defaults, never real secrets (compared lowercased,
/// without punctuation).
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "changemeplease",
    "replaceme",
    "admin",
    "admintoken",
    "adminadmin",
    "publickey",
    "secret",
    "password",
    "token",
    "default",
    "example",
    "test",
    "0123456789abcdef",
    "1234567890123456",
];

/// Runs every check.
pub async fn run(input: &DiagInput) -> Report {
    let mut report = Report::default();
    let layout = Layout::from_lookup(|k| input.vars.get(k).cloned());
    let env = input.env_file_name();
    let restart = "sudo systemctl restart avio";

    // Configuration: the daemon refuses to start on what `Config` refuses.
    let config = match Config::from_vars(&input.vars) {
        Ok(config) => {
            report.push(Finding::ok("config", format!("{env} is valid")));
            Some(config)
        }
        Err(e) => {
            report.push(Finding::fail("config", e.to_string(), format!("correct {} in {env}, then {restart}", e.var)));
            None
        }
    };
    if let Some(path) = &input.env_file {
        check_env_file_mode(&mut report, path);
    }
    check_secrets(&mut report, input, &env, restart);
    check_outbox(&mut report, input, &env, restart);
    check_providers_config(&mut report, input, &env);
    check_data_dir(&mut report, &layout);
    check_disk(&mut report, &layout.data_dir);

    let Some(client) = &input.client else {
        report.push(Finding::fail(
            "health",
            "no ADMIN_TOKEN: cannot ask the daemon",
            format!("run as root (sudo avioctl diag) so {env} is readable, or pass --env-file"),
        ));
        return report;
    };
    if !check_health(&mut report, client, restart).await {
        return report;
    }
    let tenants = match client.tenants().await {
        Ok(answer) => answer["tenants"].as_array().cloned().unwrap_or_default(),
        Err(e) => {
            report.push(Finding::fail("tenants", format!("cannot list tenants: {e}"), "see journalctl -u avio"));
            Vec::new()
        }
    };
    check_provider_tokens(&mut report, client, &tenants).await;
    check_channels(&mut report, client, &tenants, config.as_ref()).await;
    check_guardrails(&mut report, client).await;
    check_recent_errors(&mut report, client).await;
    report
}

fn check_env_file_mode(report: &mut Report, path: &Path) {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o007 != 0 => report.push(Finding::fail(
            "secrets",
            format!("{} is readable by every user (mode {:o})", path.display(), meta.permissions().mode() & 0o777),
            format!("sudo chown root:avio {0} && sudo chmod 0640 {0}", path.display()),
        )),
        Ok(_) => {}
        Err(e) => report.push(Finding::warn(
            "secrets",
            format!("cannot read {}: {e}", path.display()),
            "run as root: sudo avioctl diag",
        )),
    }
}

fn check_secrets(report: &mut Report, input: &DiagInput, env: &str, restart: &str) {
    let admin = input.get("ADMIN_TOKEN");
    let public = input.get("PUBLIC_KEY");
    let mut problems = 0;
    match admin {
        None => {
            problems += 1;
            report.push(Finding::fail(
                "secrets",
                "ADMIN_TOKEN is not set",
                format!(
                    "set ADMIN_TOKEN in {env} to 40 random characters (e.g. `openssl rand -hex 20`), then {restart}"
                ),
            ));
        }
        Some(token) => {
            if let Some(why) = weak_secret(token) {
                problems += 1;
                report.push(Finding::fail(
                    "secrets",
                    format!("ADMIN_TOKEN {why}"),
                    format!(
                        "set ADMIN_TOKEN in {env} to 40 random characters (e.g. `openssl rand -hex 20`), then {restart}"
                    ),
                ));
            }
        }
    }
    match public {
        None => {
            problems += 1;
            report.push(Finding::warn(
                "secrets",
                "PUBLIC_KEY is not set: compat mode, ADMIN_TOKEN is accepted as ?k= on /pub/*",
                format!("set PUBLIC_KEY in {env} to 40 random characters, then {restart}"),
            ));
        }
        Some(key) => {
            if admin.is_some_and(|admin| crate::secrets::ct_eq(admin, key)) {
                problems += 1;
                report.push(Finding::fail(
                    "secrets",
                    "PUBLIC_KEY equals ADMIN_TOKEN (the daemon refuses to start)",
                    format!("set a different PUBLIC_KEY in {env}, then {restart}"),
                ));
            } else if let Some(why) = weak_secret(key) {
                problems += 1;
                report.push(Finding::fail(
                    "secrets",
                    format!("PUBLIC_KEY {why}"),
                    format!("set PUBLIC_KEY in {env} to 40 random characters, then {restart}"),
                ));
            }
        }
    }
    if problems == 0 {
        report.push(Finding::ok("secrets", "ADMIN_TOKEN and PUBLIC_KEY are set, distinct and strong"));
    }
}

/// Why a secret is not good enough, if it is not.
fn weak_secret(value: &str) -> Option<String> {
    let normalized: String = value.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
    if PLACEHOLDERS.contains(&normalized.as_str())
        || ["changeme", "replaceme", "placeholder", "example"].iter().any(|p| normalized.contains(p))
    {
        return Some("is a placeholder or default value".into());
    }
    if value.chars().count() < 16 {
        return Some(format!("is too short ({} characters, at least 16; 40 recommended)", value.chars().count()));
    }
    let mut distinct: Vec<char> = value.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 {
        return Some("has too few distinct characters to be random".into());
    }
    None
}

fn check_outbox(report: &mut Report, input: &DiagInput, env: &str, restart: &str) {
    let enabled =
        input.get("OUTBOX_ENABLED").is_some_and(|v| ["1", "true", "yes", "on"].contains(&v.to_lowercase().as_str()));
    let whitelist: Vec<&str> = input
        .get("OUTBOX_WHITELIST")
        .map(|s| s.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let finding = if !enabled {
        Finding::warn(
            "outbox",
            "OUTBOX_ENABLED=false: nothing is sent to leads (replies wait in the outbox)",
            format!("when ready, set OUTBOX_ENABLED=true and OUTBOX_WHITELIST in {env}, then {restart}"),
        )
    } else if whitelist.is_empty() {
        Finding::warn(
            "outbox",
            "OUTBOX_ENABLED=true but OUTBOX_WHITELIST is empty: every send is blocked (not_whitelisted)",
            format!("list the allowed recipients in OUTBOX_WHITELIST in {env} (* for everyone), then {restart}"),
        )
    } else if whitelist.contains(&"*") {
        Finding::ok("outbox", "sending is on, to every recipient (OUTBOX_WHITELIST=*)")
    } else {
        Finding::ok("outbox", format!("sending is on, to {} whitelisted recipient(s)", whitelist.len()))
            .with_details(whitelist.iter().map(|w| format!("whitelisted: {w}")).collect())
    };
    report.push(finding);
}

fn check_providers_config(report: &mut Report, input: &DiagInput, env: &str) {
    if input.get("OPENAI_API_KEY").is_none() {
        report.push(Finding::warn(
            "llm",
            "OPENAI_API_KEY is not set: the bot gives offline replies (catalog matches and a hand-off)",
            format!("set OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server) in {env}"),
        ));
    } else {
        let model = input.get("OPENAI_MODEL").unwrap_or("gpt-4o-mini");
        let base = input.get("OPENAI_BASE_URL").unwrap_or("https://api.openai.com/v1");
        report.push(Finding::ok("llm", format!("LLM configured: {model} at {base}")));
    }
    let telegram = input.get("TELEGRAM_API_ID").is_some() && input.get("TELEGRAM_API_HASH").is_some();
    let avito = input.get("AVITO_CLIENT_ID").is_some() && input.get("AVITO_CLIENT_SECRET").is_some();
    let chromium = chromium_binary(input.get("CHROMIUM_PATH"));
    let mut details = vec![
        format!("Telegram app: {}", if telegram { "configured" } else { "not configured (Telegram disabled)" }),
        format!(
            "Avito app: {}",
            if avito { "configured (OAuth connect)" } else { "not configured (own credentials only)" }
        ),
    ];
    details.push(format!("Chromium: {}", chromium.as_ref().map_or("not found".into(), |p| p.display().to_string())));
    match chromium {
        Some(_) => report.push(Finding::ok("channels", "Chromium found for WhatsApp sessions").with_details(details)),
        None => report.push(
            Finding::warn(
                "channels",
                "no Chromium: WhatsApp sessions cannot start",
                format!("sudo apt install chromium (or set CHROMIUM_PATH in {env})"),
            )
            .with_details(details),
        ),
    }
}

fn chromium_binary(configured: Option<&str>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return Path::new(path).is_file().then(|| PathBuf::from(path));
    }
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| ["/usr/bin", "/usr/local/bin", "/snap/bin"].map(|dir| Path::new(dir).join(name)))
        .find(|path| path.is_file())
}

fn check_data_dir(report: &mut Report, layout: &Layout) {
    let dir = &layout.data_dir;
    match std::fs::metadata(dir) {
        Err(e) => report.push(Finding::fail(
            "data",
            format!("DATA_DIR {} is not accessible: {e}", dir.display()),
            "run as root (sudo avioctl diag); if it is missing, start the daemon once: sudo systemctl start avio",
        )),
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => report.push(Finding::fail(
            "data",
            format!("DATA_DIR {} is open to other users (mode {:o})", dir.display(), meta.permissions().mode() & 0o777),
            format!("sudo chmod 0700 {}", dir.display()),
        )),
        Ok(_) => {
            let mut details = Vec::new();
            for name in ["avio.db", "queues.redb"] {
                let path = dir.join(name);
                match std::fs::metadata(&path) {
                    Ok(m) => details.push(format!("{name}: {}", human_bytes(m.len()))),
                    Err(e) => details.push(format!("{name}: {e}")),
                }
            }
            let backups = dir.join("backups");
            let n_backups = std::fs::read_dir(&backups).map(|d| d.count()).unwrap_or(0);
            details.push(format!("{}: {n_backups} entries", backups.display()));
            report.push(
                Finding::ok("data", format!("DATA_DIR {} is private (0700)", dir.display())).with_details(details),
            );
        }
    }
}

fn check_disk(report: &mut Report, dir: &Path) {
    // `df` rather than statvfs(2): it needs no unsafe code and is on every Debian.
    let output = std::process::Command::new("df").arg("-Pk").arg(dir).output();
    let Some((available, total)) = output.ok().filter(|o| o.status.success()).and_then(|o| parse_df(&o.stdout)) else {
        report.push(Finding::warn(
            "disk",
            format!("cannot measure free space at {}", dir.display()),
            format!("check by hand: df -h {}", dir.display()),
        ));
        return;
    };
    let percent = if total == 0 { 100.0 } else { available as f64 * 100.0 / total as f64 };
    let message = format!("{} free at {} ({percent:.0}%)", human_bytes(available), dir.display());
    let fix = format!(
        "free space: old archives in {}/backups, `sudo journalctl --vacuum-size=200M`, `sudo apt clean`",
        dir.display()
    );
    const GIB: u64 = 1 << 30;
    if available < GIB / 2 || percent < 2.0 {
        report.push(Finding::fail("disk", message, fix));
    } else if available < 2 * GIB || percent < 10.0 {
        report.push(Finding::warn("disk", message, fix));
    } else {
        report.push(Finding::ok("disk", message));
    }
}

/// `df -Pk` output → (available, total) bytes.
fn parse_df(stdout: &[u8]) -> Option<(u64, u64)> {
    let text = String::from_utf8_lossy(stdout);
    let fields: Vec<&str> = text.lines().nth(1)?.split_whitespace().collect();
    let total = fields.get(1)?.parse::<u64>().ok()? * 1024;
    let available = fields.get(3)?.parse::<u64>().ok()? * 1024;
    Some((available, total))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Returns whether the daemon answered well enough for the remaining checks.
async fn check_health(report: &mut Report, client: &AdminClient, restart: &str) -> bool {
    match client.health().await {
        Ok(health) => {
            let version = health["version"].as_str().unwrap_or("?").to_string();
            report.push(Finding::ok("health", format!("daemon {version} at {} is healthy", client.base_url())));
            if version != env!("CARGO_PKG_VERSION") {
                report.push(Finding::warn(
                    "health",
                    format!("the daemon runs {version}, avioctl is {}", env!("CARGO_PKG_VERSION")),
                    format!("restart the daemon after an upgrade: {restart}"),
                ));
            }
        }
        Err(ClientError::Unreachable { url }) => {
            report.push(Finding::fail(
                "health",
                format!("the daemon does not answer at {url}"),
                "start it: sudo systemctl start avio; why it stopped: journalctl -u avio -n 50 (set AVIO_URL if it listens elsewhere)",
            ));
            return false;
        }
        Err(ClientError::Api { status, body }) if status == StatusCode::SERVICE_UNAVAILABLE => {
            report.push(Finding::fail(
                "health",
                format!("the daemon is unhealthy: sqlite {}, redb {}", body["sqlite"], body["redb"]),
                "a store is unwritable: check the disk (df -h) and that avio owns its data: sudo chown -R avio:avio /var/lib/avio",
            ));
        }
        Err(e) => {
            report.push(Finding::fail("health", format!("health check failed: {e}"), "see journalctl -u avio -n 50"));
            return false;
        }
    }
    // The admin token is only proven by an admin route.
    match client.get("/admin/queues").await {
        Ok(_) => true,
        Err(ClientError::BadToken) => {
            report.push(Finding::fail(
                "secrets",
                "the daemon refuses ADMIN_TOKEN from the env file",
                format!("the daemon still runs with an older token: {restart}"),
            ));
            false
        }
        Err(e) => {
            report.push(Finding::fail("health", format!("admin routes fail: {e}"), "see journalctl -u avio -n 50"));
            false
        }
    }
}

/// An admin GET; `Ok(None)` when this build of the daemon lacks the route.
async fn optional_get(client: &AdminClient, path: &str) -> Result<Option<Value>, ClientError> {
    match client.get(path).await {
        Ok(value) => Ok(Some(value)),
        Err(ClientError::Api { status, body }) if status == StatusCode::NOT_FOUND && body["error"].is_null() => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn tenant_label(tenant: &Value) -> (i64, String) {
    let id = tenant["id"].as_i64().unwrap_or(0);
    let name = tenant["name"].as_str().unwrap_or("").to_string();
    (id, if name.is_empty() { format!("tenant {id}") } else { format!("tenant {id} ({name})") })
}

async fn check_provider_tokens(report: &mut Report, client: &AdminClient, tenants: &[Value]) {
    let mut missing = Vec::new();
    let mut details = Vec::new();
    for tenant in tenants {
        let (id, label) = tenant_label(tenant);
        match client.get(&format!("/admin/keys/list?tenant={id}")).await {
            Ok(answer) => {
                let has_token = answer["provider_token"].as_str().is_some_and(|t| !t.is_empty());
                let n_keys = answer["keys"].as_array().map_or(0, Vec::len);
                details.push(format!(
                    "{label}: provider token {}, cabinet key {}",
                    if has_token { "set" } else { "MISSING" },
                    if n_keys > 0 { "set" } else { "none" }
                ));
                if !has_token {
                    missing.push(id);
                }
            }
            Err(e) => details.push(format!("{label}: {e}")),
        }
    }
    if missing.is_empty() {
        report.push(
            Finding::ok("tokens", format!("{} tenant(s), each with a provider token", tenants.len()))
                .with_details(details),
        );
    } else {
        let ids: Vec<String> = missing.iter().map(i64::to_string).collect();
        report.push(
            Finding::warn(
                "tokens",
                format!("tenant(s) {} have no provider token: their webhooks are refused", ids.join(", ")),
                format!("create one: avioctl token --tenant {}", missing[0]),
            )
            .with_details(details),
        );
    }
}

async fn check_channels(report: &mut Report, client: &AdminClient, tenants: &[Value], config: Option<&Config>) {
    let mut problems: Vec<Finding> = Vec::new();
    let mut details = Vec::new();
    // WhatsApp: one call lists every session.
    match optional_get(client, "/admin/wa/status").await {
        Ok(Some(answer)) => {
            for session in answer["sessions"].as_array().into_iter().flatten() {
                let id = session["tenant"].as_i64().unwrap_or(0);
                let state = session["state"].as_str().unwrap_or("?");
                let last_error = session["last_error"].as_str().unwrap_or("");
                details.push(format!("tenant {id} whatsapp: {state}{}", suffix(last_error)));
                match state {
                    "failed" => problems.push(Finding::fail(
                        "channels",
                        format!("tenant {id}: WhatsApp session failed{}", suffix(last_error)),
                        format!("avioctl wa logs --tenant {id}; then avioctl wa restart --tenant {id}"),
                    )),
                    "logged_out" => problems.push(Finding::warn(
                        "channels",
                        format!("tenant {id}: WhatsApp is logged out"),
                        format!("send the client the connect link again: avioctl key get --tenant {id}"),
                    )),
                    _ => {}
                }
            }
        }
        Ok(None) => details.push("whatsapp: not in this build".into()),
        Err(e) => details.push(format!("whatsapp: {e}")),
    }
    let telegram_configured = config.is_some_and(|c| c.telegram.is_some());
    for tenant in tenants {
        let (id, label) = tenant_label(tenant);
        if telegram_configured {
            match optional_get(client, &format!("/admin/tg/status?tenant={id}")).await {
                Ok(Some(status)) => {
                    let state = status["state"].as_str().unwrap_or("?");
                    let reason = status["reason"].as_str().unwrap_or("");
                    details.push(format!("{label} telegram: {state}{}", suffix(reason)));
                    if state == "failed" {
                        let since = status["failed_at"].as_i64().map(crate::domain::rfc3339).unwrap_or_default();
                        problems.push(Finding::fail(
                            "channels",
                            format!(
                                "{label}: Telegram session failed{}{}",
                                suffix(reason),
                                if since.is_empty() { String::new() } else { format!(" since {since}") }
                            ),
                            format!("log in again by QR from the cabinet (link: avioctl key get --tenant {id})"),
                        ));
                    }
                    if let Some(at) = status["peer_flood_at"].as_i64() {
                        problems.push(Finding::warn(
                            "channels",
                            format!(
                                "{label}: Telegram answered PEER_FLOOD at {}: the account may not message people who did not write first",
                                crate::domain::rfc3339(at)
                            ),
                            "send only to leads who wrote first; check the account's limits with @SpamBot in Telegram; the alert clears 24 h after the last PEER_FLOOD",
                        ));
                    }
                }
                Ok(None) => {}
                Err(e) => details.push(format!("{label} telegram: {e}")),
            }
        }
        match optional_get(client, &format!("/admin/avito/status?tenant={id}")).await {
            Ok(Some(status)) => {
                let state = status["state"].as_str().unwrap_or("?");
                let last_error = status["last_error"].as_str().unwrap_or("");
                details.push(format!("{label} avito: {state}{}", suffix(last_error)));
                match state {
                    "unauthorized" => problems.push(Finding::fail(
                        "channels",
                        format!("{label}: Avito refused the tokens{}", suffix(last_error)),
                        format!("reconnect Avito in the cabinet (link: avioctl key get --tenant {id})"),
                    )),
                    "error" => problems.push(Finding::warn(
                        "channels",
                        format!("{label}: Avito status unreadable"),
                        "see journalctl -u avio | grep avito_status_failed",
                    )),
                    _ => {}
                }
            }
            Ok(None) => {}
            Err(e) => details.push(format!("{label} avito: {e}")),
        }
    }
    if problems.is_empty() {
        report.push(Finding::ok("channels", "no session is failed or logged out").with_details(details));
    } else {
        if let Some(first) = problems.first_mut() {
            first.details = details;
        }
        for finding in problems {
            report.push(finding);
        }
    }
}

fn suffix(text: &str) -> String {
    if text.is_empty() { String::new() } else { format!(" ({text})") }
}

async fn check_guardrails(report: &mut Report, client: &AdminClient) {
    let answer = match client.get("/admin/guardrails").await {
        Ok(answer) => answer,
        Err(e) => {
            report.push(Finding::warn("guardrails", format!("cannot read guardrails: {e}"), "see journalctl -u avio"));
            return;
        }
    };
    let mut details = Vec::new();
    let mut broken = Vec::new();
    for g in answer["guardrails"].as_array().into_iter().flatten() {
        let name = match g["channel"].as_str() {
            Some(channel) => format!("{} ({channel})", g["name"].as_str().unwrap_or("?")),
            None => g["name"].as_str().unwrap_or("?").to_string(),
        };
        let line = format!(
            "{name}: {}/{} = {:.2}% over {} s (limit {:.2}%)",
            g["hits"],
            g["total"],
            g["ratio"].as_f64().unwrap_or(0.0) * 100.0,
            g["window_s"],
            g["max_ratio"].as_f64().unwrap_or(0.0) * 100.0
        );
        if g["ok"] != true {
            broken.push(line.clone());
        }
        details.push(line);
    }
    if broken.is_empty() {
        report.push(Finding::ok("guardrails", "every guardrail is within its limit").with_details(details));
    } else {
        report.push(
            Finding::fail(
                "guardrails",
                format!("broken: {}", broken.join("; ")),
                "look at the failing provider's recent webhooks: journalctl -u avio | grep webhook_",
            )
            .with_details(details),
        );
    }
}

async fn check_recent_errors(report: &mut Report, client: &AdminClient) {
    let mut details = Vec::new();
    let mut n_dead = 0;
    if let Ok(answer) = client.get("/admin/queues").await {
        for queue in answer["queues"].as_array().into_iter().flatten() {
            details.push(format!("queue {}: {} waiting, {} dead", s(&queue["queue"]), queue["depth"], queue["dead"]));
        }
        for dead in answer["dead"].as_array().into_iter().flatten() {
            n_dead += 1;
            details.push(format!(
                "dead letter {} in {} after {} attempt(s): {}",
                dead["id"],
                s(&dead["queue"]),
                dead["attempts"],
                s(&dead["last_error"])
            ));
        }
    }
    let mut n_failed = 0;
    if let Ok(Some(answer)) = optional_get(client, "/admin/outbox/recent?status=failed&limit=20").await {
        for job in answer["jobs"].as_array().into_iter().flatten() {
            n_failed += 1;
            details.push(format!(
                "failed send {} (tenant {}, {}): {}",
                s(&job["job_id"]),
                job["tenant"],
                s(&job["channel"]),
                s(&job["error"])
            ));
        }
    }
    details.extend(journal_errors());
    if n_dead == 0 {
        let message = if n_failed == 0 {
            "no dead letters, no failed sends".to_string()
        } else {
            format!("no dead letters; {n_failed} failed send(s) among the latest jobs")
        };
        report.push(Finding::ok("errors", message).with_details(details));
    } else {
        report.push(
            Finding::warn(
                "errors",
                format!("{n_dead} dead letter(s): items that failed every retry"),
                "read the errors (avioctl diag --verbose), fix the cause, then retry them in the admin panel (Queues)",
            )
            .with_details(details),
        );
    }
}

/// The daemon's error lines of the last day, when systemd runs it.
fn journal_errors() -> Vec<String> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Vec::new();
    }
    let output = std::process::Command::new("journalctl")
        .args(["-u", "avio", "-p", "err", "--since", "-24h", "-n", "20", "--no-pager", "-o", "short-iso", "-q"])
        .output();
    match output {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).lines().map(|l| format!("journal: {l}")).collect()
        }
        _ => Vec::new(),
    }
}

fn s(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_short_values_are_weak() {
        assert!(weak_secret("changeme").is_some());
        assert!(weak_secret("CHANGE-ME-please-0123456789").is_some());
        assert!(weak_secret("admin").is_some());
        assert!(weak_secret("aaaaaaaaaaaaaaaaaaaaaaaa").is_some());
        assert!(weak_secret("short1A").is_some());
        assert!(weak_secret(&crate::secrets::token(40)).is_none());
    }

    #[test]
    fn df_output_parses() {
        let out = b"Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/vda        263174212  35000000  60000000      37% /\n";
        assert_eq!(parse_df(out), Some((60000000 * 1024, 263174212 * 1024)));
    }
}
