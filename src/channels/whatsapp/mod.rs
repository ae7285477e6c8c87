//! WhatsApp in-process (SPEC 6.2): one headless Chromium per connected tenant, driving
//! the page at `WA_WEB_URL` through the module surfaces whatsapp-web.js uses.
//!
//! [`WhatsApp`] is the session manager: it starts sessions (lazily, or at boot for
//! tenants that were ready), caps them at `WA_MAX_SESSIONS`, answers status, logs out,
//! and implements [`ChannelDriver`] for `Channel::Whatsapp`. Each session runs on its
//! own OS thread ([`session`]); [`browser`] launches Chromium; [`bridge`] is the pure
//! mapping of page events; `adapter.js` is what runs inside the page.

pub mod bridge;
pub mod browser;
pub mod session;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use session::{Board, Command, Ctx, Input, Settings, Shared};
pub use session::{LogLine, State, Status};

use super::{ChannelDriver, DriverFactory, EventSink, OutboundMessage, SendError, SendReceipt};
use crate::config::Config;
use crate::domain::TenantId;
use crate::metrics::Metrics;
use crate::queue::Queues;
use crate::store::TenantFiles;

/// How long the manager waits for a session thread to answer a command.
const STOP_WAIT: Duration = Duration::from_secs(20);
const LOGOUT_WAIT: Duration = Duration::from_secs(90);
const SEND_WAIT: Duration = Duration::from_secs(240);
const WATCHDOG_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum WaError {
    #[error("WA_MAX_SESSIONS ({0}) sessions are running")]
    MaxSessions(usize),
    #[error("cannot start the session thread: {0}")]
    Thread(String),
    #[error("state directory: {0}")]
    Io(String),
}

struct Session {
    tx: mpsc::Sender<Input>,
    shared: Arc<Shared>,
}

impl Session {
    fn alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
    }
}

struct Inner {
    settings: Arc<Settings>,
    queues: Queues,
    events: EventSink,
    board: Arc<Board>,
    rt: tokio::runtime::Handle,
    sessions: Mutex<HashMap<TenantId, Session>>,
}

/// The session manager; a cheap handle.
#[derive(Clone)]
pub struct WhatsApp {
    inner: Arc<Inner>,
}

impl WhatsApp {
    /// Builds the manager and its watchdog. Must run inside the tokio runtime.
    pub fn new(config: &Config, queues: Queues, files: TenantFiles, metrics: Arc<Metrics>, events: EventSink) -> Self {
        let settings = Settings {
            web_url: config.wa_web_url.clone(),
            chromium: config.chromium_path.clone(),
            max_sessions: config.wa_max_sessions,
            state_root: config.data_dir.join("wa_state"),
            files,
        };
        let inner = Arc::new(Inner {
            settings: Arc::new(settings),
            queues,
            events,
            board: Arc::new(Board::new(metrics)),
            rt: tokio::runtime::Handle::current(),
            sessions: Mutex::new(HashMap::new()),
        });
        spawn_watchdog(Arc::downgrade(&inner));
        WhatsApp { inner }
    }

    pub fn factory(&self) -> Arc<dyn DriverFactory> {
        Arc::new(WaFactory(self.clone()))
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Session>> {
        self.inner.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the tenant's session unless it runs; answers its state.
    pub fn start(&self, tenant: TenantId) -> Result<State, WaError> {
        let mut sessions = self.sessions();
        if let Some(session) = sessions.get(&tenant)
            && session.alive()
        {
            return Ok(session.shared.status().state);
        }
        let running = sessions.values().filter(|s| s.alive()).count();
        if running >= self.inner.settings.max_sessions {
            tracing::warn!(event = "wa_max_sessions", tenant = %tenant, max = self.inner.settings.max_sessions);
            return Err(WaError::MaxSessions(self.inner.settings.max_sessions));
        }
        let previous = sessions.get(&tenant).map(|s| s.shared.status().state).unwrap_or(State::Stopped);
        let shared = Arc::new(Shared::new(tenant, previous));
        shared.alive.store(true, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        let ctx = Ctx {
            tenant,
            shared: shared.clone(),
            board: self.inner.board.clone(),
            settings: self.inner.settings.clone(),
            queues: self.inner.queues.clone(),
            events: self.inner.events.clone(),
            rt: self.inner.rt.clone(),
            tx: tx.clone(),
        };
        std::thread::Builder::new()
            .name(format!("wa-session-{tenant}"))
            .spawn(move || session::run(ctx, rx))
            .map_err(|e| WaError::Thread(e.to_string()))?;
        sessions.insert(tenant, Session { tx, shared });
        self.inner.board.record(tenant, "wa_start", "session thread started");
        Ok(State::Starting)
    }

    fn command(&self, tenant: TenantId, make: impl FnOnce() -> Command) -> bool {
        let sessions = self.sessions();
        match sessions.get(&tenant) {
            Some(session) if session.alive() => session.tx.send(Input::Command(make())).is_ok(),
            _ => false,
        }
    }

    /// Stops the tenant's browser without touching its state; `forget` also keeps it
    /// from coming back at boot (`avioctl wa down`). `false` when it was not running.
    pub async fn stop(&self, tenant: TenantId, forget: bool) -> bool {
        if forget {
            let marker = self.inner.settings.autostart_file(tenant);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(marker)).await;
        }
        let (reply, answer) = oneshot::channel();
        if !self.command(tenant, || Command::Stop { reply }) {
            return false;
        }
        let _ = tokio::time::timeout(STOP_WAIT, answer).await;
        true
    }

    /// Stops and starts the browser (the profile is kept).
    pub fn restart(&self, tenant: TenantId) -> Result<State, WaError> {
        if self.command(tenant, || Command::Restart) {
            return Ok(State::Starting);
        }
        self.start(tenant)
    }

    /// Logs out: the page logs the device out, the browser closes and the state
    /// directory is reset. The only way that directory is emptied.
    pub async fn logout(&self, tenant: TenantId) -> Result<(), WaError> {
        let (reply, answer) = oneshot::channel();
        if self.command(tenant, || Command::Logout { reply }) {
            let _ = tokio::time::timeout(LOGOUT_WAIT, answer).await;
            return Ok(());
        }
        let dir = self.inner.settings.profile_dir(tenant);
        tokio::task::spawn_blocking(move || browser::reset_profile(&dir))
            .await
            .map_err(|e| WaError::Io(e.to_string()))?
            .map_err(|e| WaError::Io(e.to_string()))?;
        if let Err(e) = crate::channels::qr::clear(&self.inner.queues, tenant).await {
            tracing::warn!(event = "wa_qr_cache_failed", tenant = %tenant, error = %e);
        }
        let mut sessions = self.sessions();
        let session = sessions.entry(tenant).or_insert_with(|| {
            let (tx, _) = mpsc::channel();
            Session { tx, shared: Arc::new(Shared::new(tenant, State::Stopped)) }
        });
        session::transition(&session.shared, &self.inner.board, &self.inner.events, State::LoggedOut, Some("logout"));
        self.inner.board.record(tenant, "wa_profile_reset", "logout: the state directory was reset");
        Ok(())
    }

    pub fn status(&self, tenant: TenantId) -> Status {
        self.sessions().get(&tenant).map(|s| s.shared.status()).unwrap_or_else(|| Status::new(State::Stopped))
    }

    /// `/pub/wa/status`.
    pub fn public_status(&self, tenant: TenantId) -> Value {
        let status = self.status(tenant);
        json!({
            "ok": true,
            "ready": status.state == State::Ready,
            "qr": status.qr,
            "state": status.state,
            "qr_id": status.qr_id,
            "me": status.me,
        })
    }

    /// The admin view: everything in [`Status`] plus whether the thread runs.
    pub fn admin_status(&self, tenant: TenantId) -> Value {
        let sessions = self.sessions();
        let running = sessions.get(&tenant).is_some_and(Session::alive);
        let status = sessions.get(&tenant).map(|s| s.shared.status()).unwrap_or_else(|| Status::new(State::Stopped));
        let mut value = serde_json::to_value(&status).unwrap_or(Value::Null);
        value["tenant"] = json!(tenant);
        value["running"] = json!(running);
        value["ready"] = json!(status.state == State::Ready);
        value
    }

    /// Tenants with a session (running or not) and those with a profile on disk.
    pub async fn known_tenants(&self) -> Vec<TenantId> {
        let mut tenants: Vec<TenantId> = self.sessions().keys().copied().collect();
        for (tenant, _) in self.profiles().await {
            if !tenants.contains(&tenant) {
                tenants.push(tenant);
            }
        }
        tenants.sort();
        tenants
    }

    /// Tenants currently running a session.
    pub fn running(&self) -> Vec<TenantId> {
        let mut tenants: Vec<_> = self.sessions().iter().filter(|(_, s)| s.alive()).map(|(t, _)| *t).collect();
        tenants.sort();
        tenants
    }

    pub fn logs(&self, tenant: TenantId, after: u64) -> Vec<LogLine> {
        self.inner.board.logs(tenant, after)
    }

    /// Chromium pids of running sessions (benchmarks, diagnostics).
    pub fn browser_pids(&self) -> Vec<u32> {
        self.sessions().values().map(|s| s.shared.pid.load(Ordering::SeqCst)).filter(|pid| *pid != 0).collect()
    }

    /// Profiles on disk: `(tenant, autostart)`.
    async fn profiles(&self) -> Vec<(TenantId, bool)> {
        let root = self.inner.settings.state_root.clone();
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let Some(tenant) = entry.file_name().to_str().and_then(TenantId::parse) else { continue };
                let marker = entry.path().join("avio_session.json");
                let autostart = std::fs::read(&marker)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                    .and_then(|v| v.get("autostart").and_then(Value::as_bool))
                    .unwrap_or(false);
                found.push((tenant, autostart));
            }
            found
        })
        .await
        .unwrap_or_default()
    }

    /// Brings back, in the background, the sessions of `tenants` that were ready when
    /// the daemon last stopped.
    pub fn restore_at_boot(&self, tenants: Vec<TenantId>) {
        let wa = self.clone();
        self.inner.rt.spawn(async move {
            for (tenant, autostart) in wa.profiles().await {
                if !autostart || !tenants.contains(&tenant) {
                    continue;
                }
                match wa.start(tenant) {
                    Ok(_) => tracing::info!(event = "wa_restored_at_boot", tenant = %tenant),
                    Err(e) => tracing::warn!(event = "wa_restore_failed", tenant = %tenant, error = %e),
                }
            }
        });
    }

    /// Stops every browser gracefully (shutdown); profiles and boot markers stay.
    pub async fn shutdown(&self) {
        let tenants = self.running();
        futures_util::future::join_all(tenants.into_iter().map(|t| self.stop(t, false))).await;
    }

    pub async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, SendError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Send { message: Box::new(message.clone()), reply };
        if !self.command(message.tenant, || command) {
            return Err(SendError::NotConnected);
        }
        match tokio::time::timeout(SEND_WAIT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SendError::Transient("the session ended during the send".into())),
            Err(_) => Err(SendError::Transient("the session did not answer in time".into())),
        }
    }
}

/// Kills the Chromium of any session whose CDP call overran its deadline: the only
/// hard cancel headless_chrome has. Ends with the manager.
fn spawn_watchdog(inner: Weak<Inner>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCHDOG_EVERY);
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            let shared: Vec<_> =
                inner.sessions.lock().unwrap_or_else(|p| p.into_inner()).values().map(|s| s.shared.clone()).collect();
            drop(inner);
            for session in shared {
                session.enforce_deadline();
            }
        }
    });
}

struct WaFactory(WhatsApp);

impl DriverFactory for WaFactory {
    fn create(&self, tenant: TenantId, _events: EventSink) -> Arc<dyn ChannelDriver> {
        Arc::new(WaDriver { tenant, wa: self.0.clone() })
    }
}

/// The `ChannelDriver` face of one tenant's session.
struct WaDriver {
    tenant: TenantId,
    wa: WhatsApp,
}

impl ChannelDriver for WaDriver {
    fn start(&self) -> BoxFuture<'_, Result<Value, SendError>> {
        async move {
            match self.wa.start(self.tenant) {
                Ok(state) => Ok(json!({"state": state})),
                Err(e) => Err(SendError::Transient(e.to_string())),
            }
        }
        .boxed()
    }

    fn status(&self) -> BoxFuture<'_, Value> {
        async move { self.wa.public_status(self.tenant) }.boxed()
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<SendReceipt, SendError>> {
        self.wa.send(message).boxed()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        async move {
            self.wa.stop(self.tenant, false).await;
        }
        .boxed()
    }
}
