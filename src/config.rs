//! Configuration from the environment and env files (SPEC section 2).
//!
//! `Config` is built from a plain map of variables so tests can build differently
//! configured apps in one process; only [`load_vars`] reads the process environment.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secrets;

/// The env file the package installs; `avioctl` reads it when it is readable.
pub const SYSTEM_ENV_FILE: &str = "/etc/avio/avio.env";

/// File in `DATA_DIR` holding the secrets `serve --dev` generated on its first start.
pub const DEV_SECRETS_FILE: &str = "dev-secrets.env";

/// A secret value: `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &str) -> bool {
        secrets::ct_eq(&self.0, presented)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct TelegramApp {
    pub api_id: i32,
    pub api_hash: Secret,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    /// External URL without a trailing slash.
    pub app_base_url: String,
    pub admin_token: Secret,
    /// `None` is compat mode: `ADMIN_TOKEN` is accepted as `?k=` (SPEC section 3).
    pub public_key: Option<Secret>,
    pub telegram: Option<TelegramApp>,
    pub tg_sessions_dir: PathBuf,
    pub wa_web_url: String,
    pub chromium_path: Option<PathBuf>,
    pub wa_max_sessions: usize,
    pub avito_client_id: Option<String>,
    pub avito_client_secret: Option<Secret>,
    pub avito_api_base: String,
    pub avito_webhook_url: String,
    /// Avito's authorize page (`AVITO_AUTH_URL`); tests point it at a local fake.
    pub avito_auth_url: String,
    /// How often the Avito backstop poller reads unread chats.
    pub avito_poll_interval: Duration,
    pub openai_api_key: Option<Secret>,
    pub openai_model: String,
    pub openai_base_url: String,
    pub inbox_enabled: bool,
    pub outbox_enabled: bool,
    /// Raw whitelist entries; normalized by `domain::Whitelist`.
    pub outbox_whitelist: Vec<String>,
    pub wa_web_token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub max_upload_size_bytes: u64,
    pub log_format: LogFormat,
    pub bot_debounce: Duration,
    pub bot_pause_after_operator: Duration,
    pub llm_daily_tokens_per_tenant: Option<u64>,
    /// Delivery attempts before a job is dead-lettered.
    pub outbox_max_attempts: u32,
    /// First retry delay; each retry doubles it (with jitter), up to 5 minutes.
    pub outbox_retry_base: Duration,
}

/// A bad configuration value; its `Display` is the one line start-up prints.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

fn err(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { var, reason: reason.into() }
}

/// Every variable Avio reads, with its default; used for validation and docs.
pub const VARIABLES: &[(&str, &str)] = &[
    ("BIND", "127.0.0.1:8000"),
    ("DATA_DIR", "./data"),
    ("APP_BASE_URL", "http://127.0.0.1:8000"),
    ("ADMIN_TOKEN", ""),
    ("PUBLIC_KEY", ""),
    ("TELEGRAM_API_ID", ""),
    ("TELEGRAM_API_HASH", ""),
    ("TG_SESSIONS_DIR", "DATA_DIR/tg_sessions"),
    ("WA_WEB_URL", "https://web.whatsapp.com"),
    ("CHROMIUM_PATH", "auto"),
    ("WA_MAX_SESSIONS", "20"),
    ("AVITO_CLIENT_ID", ""),
    ("AVITO_CLIENT_SECRET", ""),
    ("AVITO_API_BASE", "https://api.avito.ru"),
    ("AVITO_WEBHOOK_URL", "APP_BASE_URL/webhook/avito"),
    ("AVITO_AUTH_URL", "https://avito.ru/oauth"),
    ("AVITO_POLL_INTERVAL_S", "180"),
    ("OPENAI_API_KEY", ""),
    ("OPENAI_MODEL", "gpt-4o-mini"),
    ("OPENAI_BASE_URL", "https://api.openai.com/v1"),
    ("INBOX_ENABLED", "true"),
    ("OUTBOX_ENABLED", "false"),
    ("OUTBOX_WHITELIST", ""),
    ("WA_WEB_TOKEN", ""),
    ("WEBHOOK_SECRET", ""),
    ("MAX_UPLOAD_SIZE_BYTES", "20971520"),
    ("LOG_FORMAT", "text"),
    ("BOT_DEBOUNCE_MS", "3000"),
    ("BOT_PAUSE_AFTER_OPERATOR_MIN", "60"),
    ("LLM_DAILY_TOKENS_PER_TENANT", ""),
    ("OUTBOX_MAX_ATTEMPTS", "6"),
    ("OUTBOX_RETRY_BASE_MS", "2000"),
];

/// Reads variables: the env file first (when given), then the process environment,
/// which wins, as with systemd's `EnvironmentFile=` plus `Environment=`.
pub fn load_vars(env_file: Option<&Path>) -> anyhow::Result<HashMap<String, String>> {
    use anyhow::Context as _;
    let mut vars = HashMap::new();
    if let Some(path) = env_file {
        vars.extend(read_env_file(path).with_context(|| format!("read env file {}", path.display()))?);
    }
    vars.extend(std::env::vars());
    Ok(vars)
}

/// Parses a `KEY=value` env file (comments, quotes, `export` allowed).
pub fn read_env_file(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let mut vars = HashMap::new();
    for item in dotenvy::from_path_iter(path)? {
        let (key, value) = item?;
        vars.insert(key, value);
    }
    Ok(vars)
}

/// Secrets `serve --dev` generated, shown once on the start that created them.
pub struct DevSecrets {
    pub admin_token: String,
    pub public_key: String,
    pub newly_generated: bool,
}

/// Fills `ADMIN_TOKEN`/`PUBLIC_KEY` for `serve --dev` from `DATA_DIR/dev-secrets.env`,
/// generating and persisting (0600) them on the first start.
pub fn apply_dev_secrets(vars: &mut HashMap<String, String>) -> anyhow::Result<Option<DevSecrets>> {
    use anyhow::Context as _;
    let has = |vars: &HashMap<String, String>, k: &str| vars.get(k).is_some_and(|v| !v.is_empty());
    if has(vars, "ADMIN_TOKEN") && has(vars, "PUBLIC_KEY") {
        return Ok(None);
    }
    let data_dir = PathBuf::from(vars.get("DATA_DIR").map_or("./data", |s| s.as_str()));
    crate::store::fsutil::ensure_private_dir(&data_dir)
        .with_context(|| format!("create data dir {}", data_dir.display()))?;
    let path = data_dir.join(DEV_SECRETS_FILE);
    let (stored, newly_generated) = if path.exists() {
        (read_env_file(&path)?, false)
    } else {
        let mut fresh = HashMap::new();
        fresh.insert("ADMIN_TOKEN".to_string(), secrets::token(40));
        fresh.insert("PUBLIC_KEY".to_string(), secrets::token(40));
        let text = format!(
            "# Generated by `avio serve --dev` on first start. Keep private.\nADMIN_TOKEN={}\nPUBLIC_KEY={}\n",
            fresh["ADMIN_TOKEN"], fresh["PUBLIC_KEY"]
        );
        crate::store::fsutil::write_private(&path, text.as_bytes())
            .with_context(|| format!("write {}", path.display()))?;
        (fresh, true)
    };
    for key in ["ADMIN_TOKEN", "PUBLIC_KEY"] {
        if !has(vars, key)
            && let Some(value) = stored.get(key)
        {
            vars.insert(key.to_string(), value.clone());
        }
    }
    Ok(Some(DevSecrets {
        admin_token: vars.get("ADMIN_TOKEN").cloned().unwrap_or_default(),
        public_key: vars.get("PUBLIC_KEY").cloned().unwrap_or_default(),
        newly_generated,
    }))
}

struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    /// A set, non-empty value (empty counts as unset, as in the original's env files).
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
    }
    fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }
    fn bool(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(err(key, format!("expected true or false, got {v:?}"))),
            },
        }
    }
    fn number<T: std::str::FromStr>(&self, key: &'static str) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                v.parse::<T>().map(Some).map_err(|_| err(key, format!("expected a non-negative integer, got {v:?}")))
            }
        }
    }
    fn url(&self, key: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.string(key, default);
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            return Err(err(key, format!("expected an http(s) URL, got {value:?}")));
        }
        Ok(value.trim_end_matches('/').to_string())
    }
    fn secret(&self, key: &str) -> Option<Secret> {
        self.get(key).map(Secret::new)
    }
}

impl Config {
    /// Builds and validates the configuration from variables.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let v = Vars(vars);
        let bind_raw = v.string("BIND", "127.0.0.1:8000");
        let bind = bind_raw
            .parse::<SocketAddr>()
            .map_err(|_| err("BIND", format!("expected host:port such as 127.0.0.1:8000, got {bind_raw:?}")))?;
        let data_dir = PathBuf::from(v.string("DATA_DIR", "./data"));
        // Unset, the external URL follows BIND, so `BIND=…:9000` alone gives right links.
        let default_base = format!("http://{}", bind_raw.replace("0.0.0.0", "127.0.0.1"));
        let app_base_url = v.url("APP_BASE_URL", &default_base)?;

        let admin_token = v
            .secret("ADMIN_TOKEN")
            .ok_or_else(|| err("ADMIN_TOKEN", "is required (set it in the env file, or run `avio serve --dev`)"))?;
        if admin_token.expose().len() < 16 {
            return Err(err("ADMIN_TOKEN", "must be at least 16 characters"));
        }
        let public_key = v.secret("PUBLIC_KEY");
        if let Some(key) = &public_key
            && key.expose() == admin_token.expose()
        {
            return Err(err("PUBLIC_KEY", "must differ from ADMIN_TOKEN"));
        }

        let telegram = match (v.get("TELEGRAM_API_ID"), v.secret("TELEGRAM_API_HASH")) {
            (None, None) => None,
            (Some(id), Some(hash)) => Some(TelegramApp {
                api_id: id.parse().map_err(|_| err("TELEGRAM_API_ID", format!("expected an integer, got {id:?}")))?,
                api_hash: hash,
            }),
            (Some(_), None) => return Err(err("TELEGRAM_API_HASH", "is required when TELEGRAM_API_ID is set")),
            (None, Some(_)) => return Err(err("TELEGRAM_API_ID", "is required when TELEGRAM_API_HASH is set")),
        };
        let tg_sessions_dir =
            v.get("TG_SESSIONS_DIR").map(PathBuf::from).unwrap_or_else(|| data_dir.join("tg_sessions"));

        let wa_max_sessions = v.number::<usize>("WA_MAX_SESSIONS")?.unwrap_or(20);
        if wa_max_sessions == 0 {
            return Err(err("WA_MAX_SESSIONS", "must be at least 1"));
        }
        let avito_client_id = v.get("AVITO_CLIENT_ID").map(str::to_string);
        let avito_client_secret = v.secret("AVITO_CLIENT_SECRET");
        if avito_client_id.is_some() != avito_client_secret.is_some() {
            let missing = if avito_client_id.is_some() { "AVITO_CLIENT_SECRET" } else { "AVITO_CLIENT_ID" };
            return Err(err(missing, "is required when the other Avito app credential is set"));
        }
        let avito_webhook_url = match v.get("AVITO_WEBHOOK_URL") {
            Some(_) => v.url("AVITO_WEBHOOK_URL", "")?,
            None => format!("{app_base_url}/webhook/avito"),
        };

        let avito_poll_interval_s = v.number::<u64>("AVITO_POLL_INTERVAL_S")?.unwrap_or(180);
        if avito_poll_interval_s == 0 {
            return Err(err("AVITO_POLL_INTERVAL_S", "must be at least 1"));
        }

        let log_format = match v.get("LOG_FORMAT").map(|s| s.to_ascii_lowercase()).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(err("LOG_FORMAT", format!("expected text or json, got {other:?}"))),
        };
        let max_upload_size_bytes = v.number::<u64>("MAX_UPLOAD_SIZE_BYTES")?.unwrap_or(20 * 1024 * 1024);
        if max_upload_size_bytes == 0 {
            return Err(err("MAX_UPLOAD_SIZE_BYTES", "must be greater than 0"));
        }

        Ok(Config {
            bind,
            tg_sessions_dir,
            app_base_url,
            admin_token,
            public_key,
            telegram,
            wa_web_url: v.url("WA_WEB_URL", "https://web.whatsapp.com")?,
            chromium_path: v.get("CHROMIUM_PATH").map(PathBuf::from),
            wa_max_sessions,
            avito_client_id,
            avito_client_secret,
            avito_api_base: v.url("AVITO_API_BASE", "https://api.avito.ru")?,
            avito_webhook_url,
            avito_auth_url: v.url("AVITO_AUTH_URL", "https://avito.ru/oauth")?,
            avito_poll_interval: Duration::from_secs(avito_poll_interval_s),
            openai_api_key: v.secret("OPENAI_API_KEY"),
            openai_model: v.string("OPENAI_MODEL", "gpt-4o-mini"),
            openai_base_url: v.url("OPENAI_BASE_URL", "https://api.openai.com/v1")?,
            inbox_enabled: v.bool("INBOX_ENABLED", true)?,
            outbox_enabled: v.bool("OUTBOX_ENABLED", false)?,
            outbox_whitelist: v
                .get("OUTBOX_WHITELIST")
                .map(|s| {
                    s.split(|c: char| c == ',' || c.is_whitespace())
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            wa_web_token: v.secret("WA_WEB_TOKEN"),
            webhook_secret: v.secret("WEBHOOK_SECRET"),
            max_upload_size_bytes,
            log_format,
            bot_debounce: Duration::from_millis(v.number::<u64>("BOT_DEBOUNCE_MS")?.unwrap_or(3000)),
            bot_pause_after_operator: Duration::from_secs(
                60 * v.number::<u64>("BOT_PAUSE_AFTER_OPERATOR_MIN")?.unwrap_or(60),
            ),
            llm_daily_tokens_per_tenant: v.number::<u64>("LLM_DAILY_TOKENS_PER_TENANT")?,
            outbox_max_attempts: v.number::<u32>("OUTBOX_MAX_ATTEMPTS")?.unwrap_or(6).max(1),
            outbox_retry_base: Duration::from_millis(v.number::<u64>("OUTBOX_RETRY_BASE_MS")?.unwrap_or(2000)),
            data_dir,
        })
    }

    /// The admin panel's URL, printed at start.
    pub fn admin_url(&self) -> String {
        format!("{}/admin", self.app_base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const ADMIN: (&str, &str) = ("ADMIN_TOKEN", "admin-token-0123456789");

    #[test]
    fn defaults_match_the_spec() {
        let cfg = Config::from_vars(&vars(&[ADMIN])).unwrap();
        assert_eq!(cfg.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(cfg.data_dir, PathBuf::from("./data"));
        assert_eq!(cfg.tg_sessions_dir, PathBuf::from("./data/tg_sessions"));
        assert_eq!(cfg.avito_webhook_url, "http://127.0.0.1:8000/webhook/avito");
        assert_eq!(cfg.avito_auth_url, "https://avito.ru/oauth");
        assert_eq!(cfg.avito_poll_interval, Duration::from_secs(180));
        assert_eq!(cfg.openai_model, "gpt-4o-mini");
        assert_eq!(cfg.wa_max_sessions, 20);
        assert!(cfg.inbox_enabled);
        assert!(!cfg.outbox_enabled);
        assert!(cfg.outbox_whitelist.is_empty());
        assert_eq!(cfg.max_upload_size_bytes, 20 * 1024 * 1024);
        assert_eq!(cfg.bot_debounce, Duration::from_millis(3000));
        assert_eq!(cfg.bot_pause_after_operator, Duration::from_secs(3600));
        assert!(cfg.public_key.is_none());
        assert!(cfg.telegram.is_none());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (key, value) in [
            ("BIND", "nonsense"),
            ("LOG_FORMAT", "xml"),
            ("OUTBOX_ENABLED", "maybe"),
            ("WA_MAX_SESSIONS", "-3"),
            ("OPENAI_BASE_URL", "ftp://x"),
            ("TELEGRAM_API_ID", "abc"),
        ] {
            let mut v = vars(&[ADMIN, (key, value)]);
            if key == "TELEGRAM_API_ID" {
                v.insert("TELEGRAM_API_HASH".into(), "hash".into());
            }
            let e = Config::from_vars(&v).unwrap_err();
            assert_eq!(e.var, key, "{e}");
            assert!(e.to_string().contains(key));
        }
    }

    #[test]
    fn equal_public_key_and_admin_token_stop_start_up() {
        let e = Config::from_vars(&vars(&[ADMIN, ("PUBLIC_KEY", ADMIN.1)])).unwrap_err();
        assert_eq!(e.var, "PUBLIC_KEY");
    }

    #[test]
    fn admin_token_is_required() {
        assert_eq!(Config::from_vars(&vars(&[])).unwrap_err().var, "ADMIN_TOKEN");
    }

    #[test]
    fn whitelist_splits_on_commas_and_spaces() {
        let cfg = Config::from_vars(&vars(&[ADMIN, ("OUTBOX_WHITELIST", "me, 79991234567  @bob,*")])).unwrap();
        assert_eq!(cfg.outbox_whitelist, ["me", "79991234567", "@bob", "*"]);
    }

    #[test]
    fn debug_never_prints_secrets() {
        let cfg = Config::from_vars(&vars(&[ADMIN, ("OPENAI_API_KEY", "sk-very-secret")])).unwrap();
        let text = format!("{cfg:?}");
        assert!(!text.contains(ADMIN.1));
        assert!(!text.contains("sk-very-secret"));
    }
}
