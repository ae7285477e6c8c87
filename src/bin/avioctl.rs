//! `avioctl`: the operator's command line. Thin: arguments → admin client or the data
//! directory → printed result and an exit code (0 ok, 1 failed, 2 bad setup or usage).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use avio::client::{AdminClient, ClientError};
use avio::config;

#[path = "avioctl/wa.rs"]
mod wa;

#[path = "avioctl/tg.rs"]
mod tg;

#[path = "avioctl/ops.rs"]
mod ops;

#[derive(Parser)]
#[command(name = "avioctl", version, about = "Operate an Avio daemon")]
struct Cli {
    /// Read variables from this env file (default: /etc/avio/avio.env when readable).
    #[arg(long, global = true, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Print raw JSON answers.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Daemon health, the admin URL and token.
    Status,
    /// Tenants (the agency's clients).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// The tenant's cabinet key.
    #[command(subcommand)]
    Key(KeyCmd),
    /// The tenant's provider token (for webhooks).
    Token {
        #[arg(long)]
        tenant: i64,
    },
    /// Apply database migrations (works on DATA_DIR directly) and print the schema.
    Migrate,
    /// Talk to the bot through the real pipeline on the simulator channel.
    Chat {
        #[arg(long)]
        tenant: i64,
        /// The simulated lead; each name is its own dialog.
        #[arg(long, default_value = "avioctl")]
        contact: String,
        /// The channel the dialog pretends to be on (the persona's {CHANNEL}).
        #[arg(long, default_value = "whatsapp")]
        channel: String,
        /// Start from a clean sales state.
        #[arg(long)]
        reset: bool,
        /// Print the stored dialog (lead, bot and operator messages) after each reply.
        #[arg(long)]
        show_messages: bool,
    },
    /// Dialog state.
    #[command(subcommand)]
    State(StateCmd),
    /// WhatsApp sessions: up|down|restart|status|logs [-f]|purge --tenant N|--all.
    #[command(subcommand)]
    Wa(wa::WaCmd),
    /// Telegram sessions: status|logout --tenant N.
    #[command(subcommand)]
    Tg(tg::TgCmd),
    /// Catalog tools that work offline, without the daemon.
    #[command(subcommand)]
    Catalog(CatalogCmd),
    #[command(flatten)]
    Ops(ops::OpsCmd),
}

#[derive(Subcommand)]
enum CatalogCmd {
    /// Convert a price list (.pdf .csv .xlsx .xls .ods) and print the normalized CSV.
    Convert { file: PathBuf },
}

#[derive(Subcommand)]
enum TenantCmd {
    /// Create a tenant.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        id: Option<i64>,
        #[arg(long)]
        brand: Option<String>,
        #[arg(long)]
        agent_name: Option<String>,
        #[arg(long)]
        city: Option<String>,
    },
    /// List tenants.
    List,
    /// Show one tenant.
    Show { id: i64 },
}

#[derive(Subcommand)]
enum StateCmd {
    /// Forget a dialog's sales state (stage, facts, pauses).
    Reset {
        #[arg(long)]
        tenant: i64,
        #[arg(long)]
        contact: i64,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Print the tenant's key and client links, creating the key when there is none.
    Get {
        #[arg(long)]
        tenant: i64,
    },
    /// Delete the tenant's key (only then can a new one be made).
    Delete {
        #[arg(long)]
        tenant: i64,
    },
}

/// Where `avioctl` finds the daemon and its secrets.
struct Settings {
    vars: HashMap<String, String>,
    /// The env file the variables came from (`diag` checks its permissions).
    env_file: Option<PathBuf>,
}

impl Settings {
    fn load(env_file: Option<&Path>) -> anyhow::Result<Settings> {
        let system = Path::new(config::SYSTEM_ENV_FILE);
        let file = match env_file {
            Some(path) => Some(path.to_path_buf()),
            None if std::fs::File::open(system).is_ok() => Some(system.to_path_buf()),
            None => None,
        };
        let mut vars = config::load_vars(file.as_deref())?;
        // `avio serve --dev` keeps its generated secrets in the data directory.
        let empty = |v: &HashMap<String, String>, k: &str| v.get(k).is_none_or(|s| s.trim().is_empty());
        if empty(&vars, "ADMIN_TOKEN") {
            let data_dir = vars.get("DATA_DIR").cloned().unwrap_or_else(|| "./data".into());
            let dev = Path::new(&data_dir).join(config::DEV_SECRETS_FILE);
            if let Ok(dev_vars) = config::read_env_file(&dev) {
                for (k, v) in dev_vars {
                    if empty(&vars, &k) {
                        vars.insert(k, v);
                    }
                }
            }
        }
        Ok(Settings { vars, env_file: file })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    fn url(&self) -> String {
        self.get("AVIO_URL")
            .map(str::to_string)
            .or_else(|| self.get("BIND").map(|b| format!("http://{}", b.replace("0.0.0.0", "127.0.0.1"))))
            .unwrap_or_else(|| "http://127.0.0.1:8000".into())
    }

    fn client(&self) -> Result<AdminClient, Failure> {
        let token = self.get("ADMIN_TOKEN").ok_or_else(|| {
            Failure::Setup(
                "ADMIN_TOKEN is not set: export it, pass --env-file, or run as a user who can read /etc/avio/avio.env (sudo)".into(),
            )
        })?;
        Ok(AdminClient::new(&self.url(), token))
    }

    fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.get("DATA_DIR").unwrap_or("./data"))
    }
}

enum Failure {
    Setup(String),
    Failed(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unreachable { .. } | ClientError::BadToken => Failure::Setup(e.to_string()),
            other => Failure::Failed(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.env_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("avioctl: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("avioctl: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command, cli.json, &settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Setup(message)) => {
            eprintln!("avioctl: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("avioctl: {message}");
            ExitCode::from(1)
        }
    }
}

fn print(raw: bool, value: &Value, human: impl FnOnce(&Value)) {
    if raw {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        human(value);
    }
}

fn s(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

async fn run(command: Command, raw: bool, settings: &Settings) -> Result<(), Failure> {
    match command {
        Command::Status => {
            let client = settings.client()?;
            let health = client.health().await?;
            let tenants = client.tenants().await?;
            let base = settings.get("APP_BASE_URL").unwrap_or(client.base_url()).trim_end_matches('/').to_string();
            let n_tenants = tenants["tenants"].as_array().map_or(0, Vec::len);
            let report = json!({
                "daemon": client.base_url(),
                "health": health,
                "admin_url": format!("{base}/admin"),
                "admin_token": settings.get("ADMIN_TOKEN"),
                "public_key_set": settings.get("PUBLIC_KEY").is_some(),
                "tenants": n_tenants,
            });
            print(raw, &report, |r| {
                println!(
                    "daemon:       {} ({})",
                    s(&r["daemon"]),
                    if r["health"]["ok"] == true { "healthy" } else { "UNHEALTHY" }
                );
                println!("version:      {}", s(&r["health"]["version"]));
                println!("admin panel:  {}", s(&r["admin_url"]));
                println!("admin token:  {}", s(&r["admin_token"]));
                println!("PUBLIC_KEY:   {}", if r["public_key_set"] == true { "set" } else { "unset (compat mode)" });
                println!("tenants:      {}", r["tenants"]);
            });
        }
        Command::Tenant(TenantCmd::Add { name, id, brand, agent_name, city }) => {
            let mut passport = serde_json::Map::new();
            for (key, value) in [("brand", brand), ("agent_name", agent_name), ("city", city)] {
                if let Some(value) = value {
                    passport.insert(key.into(), Value::String(value));
                }
            }
            let body = json!({"id": id, "name": name, "passport": passport});
            let answer = settings.client()?.create_tenant(&body).await?;
            print(raw, &answer, |a| println!("created tenant {} ({})", a["tenant"]["id"], s(&a["tenant"]["name"])));
        }
        Command::Tenant(TenantCmd::List) => {
            let answer = settings.client()?.tenants().await?;
            print(raw, &answer, |a| {
                println!("{:<6} {:<30} created", "id", "name");
                for t in a["tenants"].as_array().into_iter().flatten() {
                    println!("{:<6} {:<30} {}", t["id"], s(&t["name"]), s(&t["created_at"]));
                }
            });
        }
        Command::Tenant(TenantCmd::Show { id }) => {
            let answer = settings.client()?.tenant(id).await?;
            println!("{}", serde_json::to_string_pretty(&answer["tenant"]).unwrap_or_default());
        }
        Command::Key(KeyCmd::Get { tenant }) => {
            let answer = settings.client()?.key_get(tenant).await?;
            print(raw, &answer, |a| {
                println!("key:          {}", s(&a["key"]));
                println!("cabinet:      {}", s(&a["cabinet_link"]));
                println!("connect WA:   {}", s(&a["link"]));
                println!("connect TG:   {}", s(&a["tg_link"]));
            });
        }
        Command::Key(KeyCmd::Delete { tenant }) => {
            let answer = settings.client()?.key_delete(tenant).await?;
            print(raw, &answer, |a| {
                if a["deleted"] == true {
                    println!("deleted the key of tenant {tenant}");
                } else {
                    println!("tenant {tenant} had no key");
                }
            });
        }
        Command::Token { tenant } => {
            let answer = settings.client()?.provider_token(tenant).await?;
            print(raw, &answer, |a| println!("{}", s(&a["provider_token"])));
        }
        Command::Wa(command) => wa::run(command, raw, settings).await?,
        Command::Tg(command) => tg::run(command, raw, settings).await?,
        Command::Chat { tenant, contact, channel, reset, show_messages } => {
            chat(&settings.client()?, tenant, &contact, &channel, reset, show_messages).await?;
        }
        Command::State(StateCmd::Reset { tenant, contact }) => {
            let answer =
                settings.client()?.post("/admin/state/reset", &json!({"tenant": tenant, "contact": contact})).await?;
            print(raw, &answer, |a| {
                println!("{}", if a["existed"] == true { "state reset" } else { "no state to reset" })
            });
        }
        Command::Migrate => {
            let path = settings.data_dir().join("avio.db");
            if let Some(dir) = path.parent() {
                avio::store::fsutil::ensure_private_dir(dir)
                    .map_err(|e| Failure::Setup(format!("create {}: {e}", dir.display())))?;
            }
            let report = avio::store::migrate_and_report(&path)
                .map_err(|e| Failure::Failed(format!("migrate {}: {e}", path.display())))?;
            println!("database:  {}", path.display());
            println!("version:   {} (applied now: {:?})", report.version, report.applied);
            println!("tables:    {}", report.tables.join(", "));
            for table in ["leads", "messages"] {
                let present = report.tables.iter().any(|t| t == table);
                println!("  {table:<9} {}", if present { "present" } else { "MISSING" });
            }
            println!("contacts:  {}", report.contacts_columns.join(", "));
        }
        Command::Catalog(CatalogCmd::Convert { file }) => catalog_convert(&file)?,
        Command::Ops(command) => ops::run(command, raw, settings).await?,
    }
    Ok(())
}

/// `catalog convert FILE`: the normalized CSV on stdout, warnings on stderr.
fn catalog_convert(file: &Path) -> Result<(), Failure> {
    let conversion =
        avio::catalog::convert_file(file).map_err(|e| Failure::Failed(format!("catalog convert: {e:#}")))?;
    for warning in &conversion.warnings {
        eprintln!("avioctl: warning: {warning}");
    }
    let stdout = std::io::stdout();
    avio_catalog::write_csv(&conversion.rows, stdout.lock())
        .map_err(|e| Failure::Failed(format!("catalog convert: write stdout: {e}")))?;
    Ok(())
}

/// `avioctl chat`: lines from stdin go to the bot as a simulated lead; its replies
/// print as they arrive. `reset` clears the dialog's state, `exit` ends.
async fn chat(
    client: &AdminClient,
    tenant: i64,
    contact: &str,
    channel: &str,
    reset: bool,
    show: bool,
) -> Result<(), Failure> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let peer = json!({"tenant": tenant, "peer": contact});
    if reset {
        client.post("/admin/simulator/reset", &peer).await?;
        println!("(state reset)");
    }
    println!(
        "Chat with tenant {tenant}'s bot as «{contact}» ({channel}). Type `reset` to clear the state, `exit` to quit."
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        use std::io::Write as _;
        print!("you> ");
        let _ = std::io::stdout().flush();
        let Ok(Some(line)) = lines.next_line().await else { break };
        let line = line.trim();
        match line {
            "" => continue,
            "exit" | "quit" => break,
            "reset" => {
                client.post("/admin/simulator/reset", &peer).await?;
                println!("(state reset)");
                continue;
            }
            _ => {}
        }
        let body = json!({"tenant": tenant, "peer": contact, "text": line, "channel": channel});
        client.post("/admin/simulator/message", &body).await?;
        // The first reply comes after the debounce and the LLM; later parts come fast.
        let mut wait_ms = 60_000;
        loop {
            let path =
                format!("/admin/simulator/replies?tenant={tenant}&peer={}&wait_ms={wait_ms}", urlencode(contact));
            let answer = client.get(&path).await?;
            let replies = answer["replies"].as_array().cloned().unwrap_or_default();
            if replies.is_empty() {
                if wait_ms == 60_000 {
                    println!("(no reply: the bot is silent in this dialog; `reset` clears a hand-off)");
                }
                break;
            }
            for reply in replies {
                println!("bot> {}", s(&reply["text"]));
            }
            wait_ms = 1_500;
        }
        if show {
            let path = format!("/admin/simulator/dialog?tenant={tenant}&peer={}", urlencode(contact));
            let dialog = client.get(&path).await?;
            println!("--- dialog (stage: {}) ---", s(&dialog["state"]["stage"]));
            for m in dialog["messages"].as_array().into_iter().flatten() {
                println!("[{}] {}: {}", s(&m["ts"]), s(&m["author"]), s(&m["text"]));
            }
            println!("---");
        }
    }
    Ok(())
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("v", text)]).unwrap_or_default().trim_start_matches("v=").to_string()
}
