//! The per-tenant Telegram session manager: the login state machine of SPEC 4
//! (`need_qr → need_2fa → authorized`, or `failed`), the QR refresh, the update loop
//! with its watchdog, and sending. It is also the tenant's `ChannelDriver`.
//!
//! It talks to Telegram only through [`TelegramAccount`], so every path here runs in
//! tests against a scripted account under paused time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::account::{
    AccountFactory, LoginStep, Probe, SelfUser, TelegramAccount, TgError, TgFile, TgMessage, TgOutgoing, TgPeer,
    TgUpdate,
};
use super::files::{self, LockError, SessionLock};
use super::{mapping, qr};
use crate::channels::{ChannelDriver, ChannelEvent, DriverFactory, EventSink, OutboundMessage, SendError, SendReceipt};
use crate::domain::{Channel, TenantId, now_s};
use crate::store::fsutil;

/// Timings of the login and update loops. The defaults are production's; tests run
/// them under paused time rather than shortening them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Export a new token this long before the shown one expires.
    pub refresh_margin: Duration,
    /// Keep refreshing the QR while someone asked for it within this window
    /// (the page polls `status`); after it the QR is left to expire.
    pub login_idle: Duration,
    /// Persist the update state this often.
    pub save_every: Duration,
    /// With no update for this long, ping Telegram; a failed ping rebuilds the connection.
    pub watchdog_idle: Duration,
    pub ping_timeout: Duration,
    /// With no update at all for this long, the connection is rebuilt even though
    /// pings answer: an update stream can stall while plain requests still work, and
    /// a rebuild catches up from the saved state. A quiet account pays one reconnect
    /// per interval.
    pub update_silence_max: Duration,
    /// How long to wait for Avio's own in-flight sends before calling an outgoing
    /// message "sent from another app".
    pub echo_wait: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            refresh_margin: Duration::from_secs(5),
            login_idle: Duration::from_secs(120),
            save_every: Duration::from_secs(15),
            watchdog_idle: Duration::from_secs(300),
            ping_timeout: Duration::from_secs(30),
            update_silence_max: Duration::from_secs(3600),
            echo_wait: Duration::from_secs(10),
        }
    }
}

/// SPEC 4's login states. `Idle` (nothing started, or logged out) reads as `need_qr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginState {
    #[default]
    Idle,
    NeedQr,
    Need2fa,
    Authorized,
    Failed,
}

impl LoginState {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginState::Idle | LoginState::NeedQr => "need_qr",
            LoginState::Need2fa => "need_2fa",
            LoginState::Authorized => "authorized",
            LoginState::Failed => "failed",
        }
    }
}

/// The QR currently shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrView {
    pub id: String,
    /// `tg://login?token=…`; a secret while valid, so never logged.
    pub login_url: String,
    /// Epoch seconds.
    pub expires_at: i64,
}

/// A snapshot of one tenant's session, for status pages, health and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TgStatus {
    pub state: LoginState,
    /// Why the state is `failed` (`qr_expired`, `session_revoked`…), or the last
    /// problem reaching Telegram.
    pub reason: Option<String>,
    /// When the session died at Telegram (epoch seconds); kept across restarts until
    /// a new login or logout.
    pub failed_at: Option<i64>,
    pub qr: Option<QrView>,
    pub password_hint: Option<String>,
    pub me: Option<SelfUser>,
    /// When Telegram last answered `PEER_FLOOD` (epoch seconds): the operator is alerted.
    pub peer_flood_at: Option<i64>,
}

impl TgStatus {
    pub fn authorized(&self) -> bool {
        self.state == LoginState::Authorized
    }

    /// What the operator should do about a `failed` state.
    pub fn action(&self) -> Option<&'static str> {
        if self.state != LoginState::Failed {
            return None;
        }
        Some(match self.reason.as_deref() {
            Some(reason) if is_gone_reason(reason) => {
                "the session ended at Telegram: log in again by QR from the cabinet (/pub/tg/start)"
            }
            Some("session_locked") => "another process uses this session file: stop it, then restart avio",
            _ => "start the QR login again from the cabinet (/pub/tg/start)",
        })
    }

    /// The body of `/pub/tg/status` without `qr_url` (the HTTP layer adds it).
    pub fn to_json(&self) -> Value {
        json!({
            "ok": true,
            "state": self.state.as_str(),
            "authorized": self.authorized(),
            "needs_2fa": self.state == LoginState::Need2fa,
            "qr_id": self.qr.as_ref().map(|q| q.id.clone()),
            "expires_at": self.qr.as_ref().map(|q| q.expires_at),
            "reason": self.reason,
            "failed_at": self.failed_at,
            "action": self.action(),
            "password_hint": self.password_hint,
            "me": self.me.as_ref().map(|me| json!({"id": me.id, "username": me.username, "first_name": me.first_name})),
            "peer_flood_at": self.peer_flood_at,
        })
    }
}

/// Why a login request was refused; `http::telegram` maps these to SPEC codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("telegram is not configured")]
    NotConfigured,
    #[error("already authorized")]
    AlreadyAuthorized,
    #[error("the qr expired")]
    QrExpired,
    #[error("no such qr")]
    QrNotFound,
    /// The QR existed but is no longer valid (expired or replaced).
    #[error("the qr is gone")]
    QrGone,
    #[error("wrong password")]
    BadPassword,
    #[error("not waiting for a 2fa password")]
    NotWaiting2fa,
    #[error("telegram unavailable: {0}")]
    Unavailable(String),
}

/// Reasons that mean the session file is dead: sends fail fast instead of retrying.
fn is_gone_reason(reason: &str) -> bool {
    matches!(
        reason,
        "auth_key_unregistered"
            | "session_revoked"
            | "auth_key_duplicated"
            | "session_expired"
            | "user_deactivated"
            | "user_deactivated_ban"
            | "auth_key_invalid"
            | "auth_key_perm_empty"
    )
}

/// A `PEER_FLOOD` alert clears this long after the last one (Telegram lifts the limit
/// on its own; a new `PEER_FLOOD` starts the period again).
pub const PEER_FLOOD_CLEARS_AFTER_S: i64 = 24 * 3600;

fn peer_flood_expired(at: i64) -> bool {
    at + PEER_FLOOD_CLEARS_AFTER_S <= now_s()
}

/// Remembers recent QR ids, so an old one answers 410 rather than 404.
const RETIRED_QR_IDS: usize = 64;
/// Remembers the ids of messages Avio sent, to tell them from the account's own
/// messages sent elsewhere.
const SENT_IDS: usize = 4096;
/// Telegram's caption limit; longer texts go as their own message.
const CAPTION_LIMIT: usize = 1024;

struct Shared {
    /// `None` without `TELEGRAM_API_ID`/`TELEGRAM_API_HASH`.
    accounts: Option<Arc<dyn AccountFactory>>,
    sessions_dir: PathBuf,
    tenants_dir: PathBuf,
    events: EventSink,
    cancel: CancellationToken,
    timing: Timing,
}

/// Every tenant's Telegram session; the `DriverFactory` for `Channel::Telegram`.
pub struct TelegramHub {
    shared: Arc<Shared>,
    sessions: Mutex<HashMap<TenantId, Arc<TenantSession>>>,
}

impl TelegramHub {
    /// `accounts` is `None` when Telegram is not configured: every route then answers
    /// `tg_unavailable`. `data_dir` holds `tenants/<ID>/media` for downloaded media.
    pub fn new(
        accounts: Option<Arc<dyn AccountFactory>>,
        sessions_dir: PathBuf,
        data_dir: PathBuf,
        events: EventSink,
        timing: Timing,
    ) -> Arc<TelegramHub> {
        Arc::new(TelegramHub {
            shared: Arc::new(Shared {
                accounts,
                sessions_dir,
                tenants_dir: data_dir.join("tenants"),
                events,
                cancel: CancellationToken::new(),
                timing,
            }),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    pub fn configured(&self) -> bool {
        self.shared.accounts.is_some()
    }

    /// The tenant's session, created idle on first use.
    pub fn session(&self, tenant: TenantId) -> Arc<TenantSession> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.entry(tenant).or_insert_with(|| TenantSession::new(tenant, self.shared.clone())).clone()
    }

    /// The session only if it exists already (status must not create state).
    pub fn existing(&self, tenant: TenantId) -> Option<Arc<TenantSession>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(&tenant).cloned()
    }

    /// Restores every session file found in `TG_SESSIONS_DIR` (at start). Each
    /// tenant resumes in its own task, so one slow or broken session delays no other.
    pub async fn restore_all(&self) {
        if !self.configured() {
            return;
        }
        let dir = self.shared.sessions_dir.clone();
        let listed = tokio::task::spawn_blocking(move || {
            let tenants = files::list_tenants(&dir)?;
            let mut alerts = Vec::new();
            for tenant in files::list_alerts(&dir)? {
                match files::read_alerts(&dir, tenant) {
                    Ok(kept) => alerts.push((tenant, kept)),
                    Err(e) => tracing::error!(event = "tg_alerts_read_failed", tenant = %tenant, error = %e),
                }
            }
            Ok::<_, std::io::Error>((tenants, alerts))
        });
        let (tenants, alerts) = match listed.await {
            Ok(Ok(listed)) => listed,
            Ok(Err(e)) => {
                tracing::error!(event = "tg_restore_failed", error = %e);
                return;
            }
            Err(e) => {
                tracing::error!(event = "tg_restore_failed", error = %e);
                return;
            }
        };
        // Kept alerts first, so a dead session's tenant never reads as a plain need_qr.
        for (tenant, kept) in alerts {
            self.session(tenant).restore_alerts(kept).await;
        }
        for tenant in tenants {
            let session = self.session(tenant);
            tokio::spawn(async move { session.resume_from(true).await });
        }
    }

    /// Stops every session (shutdown): update state saved, connections closed, files kept.
    pub async fn stop_all(&self) {
        self.shared.cancel.cancel();
        let sessions: Vec<_> = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for session in sessions {
            session.shutdown().await;
        }
    }
}

impl DriverFactory for TelegramHub {
    fn create(&self, tenant: TenantId, _events: EventSink) -> Arc<dyn ChannelDriver> {
        self.session(tenant)
    }
}

/// The open account and the file lock that goes with it.
struct Live {
    account: Arc<dyn TelegramAccount>,
    _lock: SessionLock,
}

struct CurrentQr {
    id: String,
    deadline: Instant,
}

#[derive(Default)]
struct QrBook {
    current: Option<CurrentQr>,
    retired: VecDeque<String>,
}

impl QrBook {
    fn retire_current(&mut self) {
        if let Some(current) = self.current.take() {
            self.retired.push_back(current.id);
            while self.retired.len() > RETIRED_QR_IDS {
                self.retired.pop_front();
            }
        }
    }
}

#[derive(Default)]
struct SentIds {
    set: HashSet<i32>,
    order: VecDeque<i32>,
}

impl SentIds {
    fn insert(&mut self, id: i32) {
        if self.set.insert(id) {
            self.order.push_back(id);
            while self.order.len() > SENT_IDS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

#[derive(Default)]
struct Tasks {
    login: Option<CancellationToken>,
    run: Option<CancellationToken>,
}

/// One tenant's Telegram session.
pub struct TenantSession {
    tenant: TenantId,
    shared: Arc<Shared>,
    me: Weak<TenantSession>,
    status: watch::Sender<TgStatus>,
    live: tokio::sync::Mutex<Option<Live>>,
    /// Serializes the transitions started by requests (start, 2FA, logout, failure).
    ops: tokio::sync::Mutex<()>,
    /// Bumped by every new login, logout and failure, so a stale login task cannot
    /// apply its result.
    generation: AtomicU64,
    qr: Mutex<QrBook>,
    /// Last time someone asked for the QR or the status.
    watched_at: Mutex<Instant>,
    watched: Notify,
    tasks: Mutex<Tasks>,
    sent: Mutex<SentIds>,
    in_flight: AtomicUsize,
    sends_done: Notify,
    /// Usernames seen on incoming messages, for the `username` step of `to` resolution.
    usernames: Mutex<HashMap<i64, String>>,
    /// Mirror of `<ID>.alerts.json`; the lock also orders the file writes.
    alerts: tokio::sync::Mutex<files::Alerts>,
}

enum Wake {
    Scanned,
    Timer,
    Watched,
}

enum RunEnd {
    Stopped,
    Stalled,
    Gone(String),
}

impl TenantSession {
    fn new(tenant: TenantId, shared: Arc<Shared>) -> Arc<TenantSession> {
        Arc::new_cyclic(|me| TenantSession {
            tenant,
            shared,
            me: me.clone(),
            status: watch::Sender::new(TgStatus::default()),
            live: tokio::sync::Mutex::new(None),
            ops: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            qr: Mutex::new(QrBook::default()),
            watched_at: Mutex::new(Instant::now()),
            watched: Notify::new(),
            tasks: Mutex::new(Tasks::default()),
            sent: Mutex::new(SentIds::default()),
            in_flight: AtomicUsize::new(0),
            sends_done: Notify::new(),
            usernames: Mutex::new(HashMap::new()),
            alerts: tokio::sync::Mutex::new(files::Alerts::default()),
        })
    }

    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub fn status(&self) -> TgStatus {
        let mut status = self.status.borrow().clone();
        if status.peer_flood_at.is_some_and(peer_flood_expired) {
            status.peer_flood_at = None;
        }
        status
    }

    /// Watches state changes (tests wait on it instead of sleeping).
    pub fn subscribe(&self) -> watch::Receiver<TgStatus> {
        self.status.subscribe()
    }

    fn configured(&self) -> Result<&Arc<dyn AccountFactory>, LoginError> {
        self.shared.accounts.as_ref().ok_or(LoginError::NotConfigured)
    }

    /// Someone is looking at the login page: keep the QR fresh.
    fn touch(&self) {
        *self.watched_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.watched.notify_waiters();
    }

    fn watched_until(&self) -> Instant {
        *self.watched_at.lock().unwrap_or_else(|p| p.into_inner()) + self.shared.timing.login_idle
    }

    fn set_status(&self, change: impl FnOnce(&mut TgStatus)) {
        let mut from = LoginState::Idle;
        let mut to = LoginState::Idle;
        self.status.send_modify(|status| {
            from = status.state;
            let (reason, failed_at) = (status.reason.clone(), status.failed_at);
            change(status);
            to = status.state;
            // `failed_at` belongs to the failure it was set with.
            if to != LoginState::Failed || (status.failed_at == failed_at && status.reason != reason) {
                status.failed_at = None;
            }
        });
        if from != to {
            tracing::info!(event = "tg_state", tenant = %self.tenant, from = from.as_str(), to = to.as_str());
            let event = ChannelEvent::State {
                tenant: self.tenant,
                channel: Channel::Telegram,
                from: from.as_str().into(),
                to: to.as_str().into(),
            };
            // A full event channel must not stall a login; the state is in status anyway.
            let _ = self.shared.events.try_send(event);
        }
    }

    async fn account(&self) -> Option<Arc<dyn TelegramAccount>> {
        self.live.lock().await.as_ref().map(|live| live.account.clone())
    }

    /// The open account, opening the session file (under its lock) when needed.
    async fn open_account(&self) -> Result<Arc<dyn TelegramAccount>, TgError> {
        let factory = self.shared.accounts.clone().ok_or_else(|| TgError::Other("not configured".into()))?;
        let mut live = self.live.lock().await;
        if let Some(live) = live.as_ref() {
            return Ok(live.account.clone());
        }
        let dir = self.shared.sessions_dir.clone();
        let tenant = self.tenant;
        let lock = tokio::task::spawn_blocking(move || SessionLock::acquire(&dir, tenant))
            .await
            .map_err(|e| TgError::Other(e.to_string()))?
            .map_err(|e| match e {
                LockError::Busy => TgError::SessionLocked,
                LockError::Io(e) => TgError::Other(format!("session lock: {e}")),
            })?;
        let path = files::session_path(&self.shared.sessions_dir, self.tenant);
        let account = factory.open(self.tenant, &path).await?;
        *live = Some(Live { account: account.clone(), _lock: lock });
        Ok(account)
    }

    /// Closes the account and releases the file lock.
    async fn close_account(&self) {
        let live = self.live.lock().await.take();
        if let Some(live) = live {
            live.account.close().await;
        }
    }

    fn cancel_tasks(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for token in [tasks.login.take(), tasks.run.take()].into_iter().flatten() {
            token.cancel();
        }
    }

    fn login_running(&self) -> bool {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).login.as_ref().is_some_and(|t| !t.is_cancelled())
    }

    fn bump_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn is_current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == generation
    }

    fn unavailable(&self, error: &TgError) -> LoginError {
        tracing::warn!(event = "tg_unavailable", tenant = %self.tenant, reason = %error.code(), error = %error);
        LoginError::Unavailable(error.code())
    }

    // ---- login ----------------------------------------------------------------

    /// `GET /pub/tg/start`: shows a QR (a fresh login, or the one already running).
    pub async fn start_login(&self) -> Result<TgStatus, LoginError> {
        self.configured()?;
        self.touch();
        let _op = self.ops.lock().await;
        let current = self.status();
        match current.state {
            LoginState::Authorized => return Err(LoginError::AlreadyAuthorized),
            LoginState::Need2fa => return Ok(current),
            LoginState::NeedQr if current.qr.is_some() && self.login_running() => return Ok(current),
            _ => {}
        }
        let generation = self.bump_generation();
        self.cancel_tasks();
        let mut account = self.open_account().await.map_err(|e| self.fail_login(&e))?;
        match account.probe().await {
            Ok(Probe::Authorized(me)) => {
                self.become_authorized(me, account).await;
                return Err(LoginError::AlreadyAuthorized);
            }
            Ok(Probe::PasswordNeeded) => {
                self.become_need_2fa(&account).await;
                return Ok(self.status());
            }
            Ok(Probe::LoggedOut) => {}
            Ok(Probe::Revoked(code)) => {
                // The old key is dead: keep its file aside and log in with a new one.
                self.close_account().await;
                self.archive_session(&code).await;
                account = self.open_account().await.map_err(|e| self.fail_login(&e))?;
            }
            Err(e) => return Err(self.fail_login(&e)),
        }
        let mut step = self.follow_migration(&account, account.export_login_token().await).await;
        if matches!(&step, Ok(LoginStep::Token { expires, .. }) if *expires <= now_s()) {
            // One retry: a token born expired is a hiccup once, a broken clock twice.
            step = self.follow_migration(&account, account.export_login_token().await).await;
        }
        match step {
            Ok(LoginStep::Token { token, expires }) => {
                if expires <= now_s() {
                    self.retire_qr();
                    self.set_status(|s| {
                        s.state = LoginState::Failed;
                        s.reason = Some("qr_expired".into());
                        s.qr = None;
                    });
                    return Err(LoginError::QrExpired);
                }
                self.show_qr(&token, expires);
                self.spawn_login(account, generation);
                Ok(self.status())
            }
            Ok(LoginStep::MigrateTo { .. }) => Err(self.fail_login(&TgError::Other("repeated dc migration".into()))),
            Ok(LoginStep::Success(me)) => {
                self.become_authorized(me, account).await;
                Ok(self.status())
            }
            Err(TgError::PasswordNeeded) => {
                self.become_need_2fa(&account).await;
                Ok(self.status())
            }
            Err(e) => Err(self.fail_login(&e)),
        }
    }

    /// A login that could not begin: `failed` with the reason, 502 for the caller.
    fn fail_login(&self, error: &TgError) -> LoginError {
        self.retire_qr();
        self.set_status(|s| {
            s.state = LoginState::Failed;
            s.reason = Some(error.code());
            s.qr = None;
        });
        self.unavailable(error)
    }

    /// `loginTokenMigrateTo`: the account's home DC is elsewhere; import there.
    async fn follow_migration(
        &self,
        account: &Arc<dyn TelegramAccount>,
        mut step: Result<LoginStep, TgError>,
    ) -> Result<LoginStep, TgError> {
        // Telegram migrates at most once; the bound guards against a loop.
        for _ in 0..3 {
            match step {
                Ok(LoginStep::MigrateTo { dc_id, token }) => {
                    tracing::info!(event = "tg_login_migrate", tenant = %self.tenant, dc = dc_id);
                    step = account.import_login_token(dc_id, token).await;
                }
                other => return other,
            }
        }
        step
    }

    fn show_qr(&self, token: &[u8], expires: i64) {
        // Server time: the local deadline is at least a few seconds and at most two
        // minutes away whatever the clocks say.
        let ttl = Duration::from_secs(u64::try_from(expires - now_s()).unwrap_or(0).clamp(5, 120));
        let id = uuid::Uuid::new_v4().simple().to_string();
        {
            let mut book = self.qr.lock().unwrap_or_else(|p| p.into_inner());
            book.retire_current();
            book.current = Some(CurrentQr { id: id.clone(), deadline: Instant::now() + ttl });
        }
        let view = QrView { id, login_url: qr::login_url(token), expires_at: now_s() + ttl.as_secs() as i64 };
        tracing::info!(event = "tg_qr", tenant = %self.tenant, qr_id = %view.id, expires_at = view.expires_at);
        self.set_status(|s| {
            s.state = LoginState::NeedQr;
            s.reason = None;
            s.qr = Some(view);
            s.me = None;
        });
    }

    fn retire_qr(&self) {
        self.qr.lock().unwrap_or_else(|p| p.into_inner()).retire_current();
    }

    fn spawn_login(&self, account: Arc<dyn TelegramAccount>, generation: u64) {
        let Some(me) = self.me.upgrade() else { return };
        let cancel = self.shared.cancel.child_token();
        if let Some(old) = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).login.replace(cancel.clone()) {
            old.cancel();
        }
        tokio::spawn(async move { me.login_loop(account, generation, cancel).await });
    }

    /// Keeps the QR fresh until it is scanned, the page stops asking, or the flow breaks.
    async fn login_loop(
        self: Arc<Self>,
        account: Arc<dyn TelegramAccount>,
        generation: u64,
        cancel: CancellationToken,
    ) {
        let timing = self.shared.timing.clone();
        let mut backoff = Duration::from_secs(1);
        loop {
            let Some(deadline) = self.qr.lock().unwrap_or_else(|p| p.into_inner()).current.as_ref().map(|q| q.deadline)
            else {
                return;
            };
            let now = Instant::now();
            let ttl_left = deadline.saturating_duration_since(now);
            let refresh_at = deadline - timing.refresh_margin.min(ttl_left / 2);
            let watched = self.watched_until() > now;
            let wake_at = if watched { refresh_at } else { deadline };
            let wake = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = account.login_event() => Wake::Scanned,
                _ = tokio::time::sleep_until(wake_at) => Wake::Timer,
                _ = self.watched.notified(), if !watched => Wake::Watched,
            };
            if !self.is_current(generation) {
                return;
            }
            let step = match wake {
                Wake::Watched => continue,
                Wake::Scanned => {
                    tracing::info!(event = "tg_login_scanned", tenant = %self.tenant);
                    account.export_login_token().await
                }
                Wake::Timer if Instant::now() >= deadline => {
                    let _op = self.ops.lock().await;
                    if self.is_current(generation) {
                        self.expire_qr();
                    }
                    return;
                }
                Wake::Timer if self.watched_until() <= Instant::now() => continue,
                Wake::Timer => account.export_login_token().await,
            };
            let step = self.follow_migration(&account, step).await;
            let _op = self.ops.lock().await;
            if !self.is_current(generation) || cancel.is_cancelled() {
                return;
            }
            match step {
                Ok(LoginStep::Token { token, expires }) => {
                    backoff = Duration::from_secs(1);
                    self.show_qr(&token, expires);
                }
                Ok(LoginStep::MigrateTo { .. }) => {
                    tracing::warn!(event = "tg_login_migrate_loop", tenant = %self.tenant);
                }
                Ok(LoginStep::Success(me)) => {
                    self.become_authorized(me, account).await;
                    return;
                }
                Err(TgError::PasswordNeeded) => {
                    self.become_need_2fa(&account).await;
                    return;
                }
                Err(TgError::SessionGone(code)) => {
                    drop(_op);
                    self.fail_session(&code, Some(generation)).await;
                    return;
                }
                Err(e) => {
                    // Keep the shown QR until its deadline; the next turn retries or expires it.
                    let pause = match &e {
                        TgError::FloodWait(secs) => Duration::from_secs(u64::from(*secs)),
                        _ => backoff,
                    };
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    tracing::warn!(event = "tg_login_refresh_failed", tenant = %self.tenant, reason = %e.code(), error = %e);
                    drop(_op);
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(pause.min(ttl_left.max(Duration::from_secs(1)))) => {}
                    }
                }
            }
        }
    }

    /// Nobody refreshed the QR in time: `failed`, reason `qr_expired` (call start again).
    fn expire_qr(&self) {
        self.retire_qr();
        tracing::info!(event = "tg_qr_expired", tenant = %self.tenant);
        self.set_status(|s| {
            s.state = LoginState::Failed;
            s.reason = Some("qr_expired".into());
            s.qr = None;
        });
        if let Some(token) = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).login.take() {
            token.cancel();
        }
    }

    async fn become_need_2fa(&self, account: &Arc<dyn TelegramAccount>) {
        let hint = match account.password_hint().await {
            Ok(hint) => hint,
            Err(e) => {
                tracing::warn!(event = "tg_password_hint_failed", tenant = %self.tenant, error = %e);
                None
            }
        };
        self.retire_qr();
        if let Some(token) = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).login.take() {
            token.cancel();
        }
        self.set_status(|s| {
            s.state = LoginState::Need2fa;
            s.reason = None;
            s.qr = None;
            s.password_hint = hint;
        });
    }

    async fn become_authorized(&self, me: SelfUser, account: Arc<dyn TelegramAccount>) {
        // A new login ends an earlier session's failure (on disk before it shows).
        self.update_alerts(|a| a.failed = None).await;
        self.retire_qr();
        tracing::info!(event = "tg_authorized", tenant = %self.tenant, user_id = me.id);
        if let Some(token) = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).login.take() {
            token.cancel();
        }
        self.set_status(|s| {
            s.state = LoginState::Authorized;
            s.reason = None;
            s.qr = None;
            s.password_hint = None;
            s.me = Some(me);
        });
        self.spawn_run(account);
    }

    // ---- alerts kept across restarts ------------------------------------------

    /// Changes `<ID>.alerts.json` (written atomically, removed when empty).
    async fn update_alerts(&self, change: impl FnOnce(&mut files::Alerts)) {
        let mut alerts = self.alerts.lock().await;
        let before = alerts.clone();
        change(&mut alerts);
        if *alerts == before {
            return;
        }
        let (dir, tenant, snapshot) = (self.shared.sessions_dir.clone(), self.tenant, alerts.clone());
        match tokio::task::spawn_blocking(move || files::write_alerts(&dir, tenant, &snapshot)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(event = "tg_alerts_write_failed", tenant = %self.tenant, error = %e),
            Err(e) => tracing::error!(event = "tg_alerts_write_failed", tenant = %self.tenant, error = %e),
        }
    }

    /// At start: shows what the alerts file kept (a dead session's failure, a recent
    /// `PEER_FLOOD`) on a session nothing has touched yet.
    async fn restore_alerts(&self, kept: files::Alerts) {
        if self.status().state != LoginState::Idle {
            return;
        }
        *self.alerts.lock().await = kept.clone();
        if let Some(failure) = &kept.failed {
            tracing::warn!(event = "tg_session_failed_restored", tenant = %self.tenant, reason = %failure.reason,
                failed_at = failure.at);
        }
        self.set_status(|s| {
            if let Some(failure) = &kept.failed {
                s.state = LoginState::Failed;
                s.reason = Some(failure.reason.clone());
                s.failed_at = Some(failure.at);
            }
            s.peer_flood_at = kept.peer_flood_at;
        });
        self.expire_peer_flood().await;
    }

    /// Drops a `PEER_FLOOD` alert older than [`PEER_FLOOD_CLEARS_AFTER_S`].
    async fn expire_peer_flood(&self) {
        let stale = self.alerts.lock().await.peer_flood_at.is_some_and(peer_flood_expired)
            || self.status.borrow().peer_flood_at.is_some_and(peer_flood_expired);
        if stale {
            tracing::info!(event = "tg_peer_flood_cleared", tenant = %self.tenant);
            self.status.send_modify(|s| s.peer_flood_at = None);
            self.update_alerts(|a| a.peer_flood_at = None).await;
        }
    }

    /// `GET /pub/tg/qr.png`: the current QR as PNG; 410 for an old one, 404 for unknown.
    pub fn qr_png(&self, qr_id: &str) -> Result<Vec<u8>, LoginError> {
        self.configured()?;
        self.touch();
        let status = self.status();
        {
            let book = self.qr.lock().unwrap_or_else(|p| p.into_inner());
            match &book.current {
                Some(current) if current.id == qr_id => {
                    if Instant::now() >= current.deadline {
                        return Err(LoginError::QrGone);
                    }
                }
                _ if book.retired.iter().any(|id| id == qr_id) => return Err(LoginError::QrGone),
                _ => return Err(LoginError::QrNotFound),
            }
        }
        let view = status.qr.filter(|q| q.id == qr_id).ok_or(LoginError::QrGone)?;
        qr::render_png(&view.login_url).map_err(LoginError::Unavailable)
    }

    /// `GET /pub/tg/status`: the snapshot; asking keeps the QR fresh.
    pub fn poll_status(&self) -> Result<TgStatus, LoginError> {
        self.configured()?;
        self.touch();
        Ok(self.status())
    }

    /// `POST /pub/tg/2fa`. The password goes to the SRP check and nowhere else.
    pub async fn submit_password(&self, password: &str) -> Result<TgStatus, LoginError> {
        self.configured()?;
        self.touch();
        let _op = self.ops.lock().await;
        if self.status().state != LoginState::Need2fa {
            return Err(LoginError::NotWaiting2fa);
        }
        let account = self.account().await.ok_or(LoginError::NotWaiting2fa)?;
        match account.check_password(password).await {
            Ok(me) => {
                self.bump_generation();
                self.become_authorized(me, account).await;
                Ok(self.status())
            }
            Err(TgError::PasswordInvalid) => {
                tracing::info!(event = "tg_bad_password", tenant = %self.tenant);
                Err(LoginError::BadPassword)
            }
            Err(TgError::SessionGone(code)) => {
                drop(_op);
                self.fail_session(&code, None).await;
                Err(LoginError::Unavailable(code.to_ascii_lowercase()))
            }
            Err(e) => Err(self.unavailable(&e)),
        }
    }

    /// `POST /pub/tg/logout`: `auth.logOut`, then the session file is deleted (the
    /// only way Avio deletes one) and the state is back to `need_qr`.
    pub async fn logout(&self) -> Result<TgStatus, LoginError> {
        self.configured()?;
        let _op = self.ops.lock().await;
        self.bump_generation();
        self.cancel_tasks();
        self.retire_qr();
        let had_user = matches!(self.status().state, LoginState::Authorized | LoginState::Need2fa);
        let session_file = files::session_path(&self.shared.sessions_dir, self.tenant);
        let account = match self.account().await {
            Some(account) => Some(account),
            None if tokio::fs::try_exists(&session_file).await.unwrap_or(false) => match self.open_account().await {
                Ok(account) => Some(account),
                Err(TgError::SessionLocked) => return Err(LoginError::Unavailable("session_locked".into())),
                Err(e) => {
                    tracing::warn!(event = "tg_logout_open_failed", tenant = %self.tenant, error = %e);
                    None
                }
            },
            None => None,
        };
        if let Some(account) = account {
            let logged_in =
                had_user || matches!(account.probe().await, Ok(Probe::Authorized(_) | Probe::PasswordNeeded));
            if logged_in && let Err(e) = account.logout().await {
                // The file goes anyway: the operator asked for the session to end.
                tracing::warn!(event = "tg_logout_remote_failed", tenant = %self.tenant, error = %e);
            }
        }
        self.close_account().await;
        let dir = self.shared.sessions_dir.clone();
        let tenant = self.tenant;
        match tokio::task::spawn_blocking(move || files::remove(&dir, tenant)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(event = "tg_session_remove_failed", tenant = %self.tenant, error = %e),
            Err(e) => tracing::error!(event = "tg_session_remove_failed", tenant = %self.tenant, error = %e),
        }
        tracing::info!(event = "tg_logout", tenant = %self.tenant);
        self.update_alerts(|a| a.failed = None).await;
        self.set_status(|s| *s = TgStatus { peer_flood_at: s.peer_flood_at, ..TgStatus::default() });
        Ok(self.status())
    }

    /// Restores a session from its file (start-up, or the driver's `start`).
    pub async fn resume(&self) {
        self.resume_from(false).await
    }

    /// `over_kept_failure`: at start, a session file newer than a kept failure (a new
    /// login begun after it) is still probed; until it is authorized the failure shows.
    async fn resume_from(&self, over_kept_failure: bool) {
        if self.shared.accounts.is_none() {
            return;
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            let op = self.ops.lock().await;
            let state = self.status().state;
            let kept_failure =
                over_kept_failure && state == LoginState::Failed && self.alerts.lock().await.failed.is_some();
            if state != LoginState::Idle && !kept_failure {
                return;
            }
            let retry = match self.open_account().await {
                Ok(account) => match account.probe().await {
                    Ok(Probe::Authorized(me)) => {
                        self.bump_generation();
                        self.become_authorized(me, account).await;
                        return;
                    }
                    Ok(Probe::PasswordNeeded) => {
                        self.become_need_2fa(&account).await;
                        return;
                    }
                    Ok(Probe::LoggedOut) => {
                        // Nothing to run: free the file for a later login.
                        self.close_account().await;
                        return;
                    }
                    Ok(Probe::Revoked(code)) => {
                        drop(op);
                        self.fail_session(&code, None).await;
                        return;
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if retry == TgError::SessionLocked {
                self.set_status(|s| {
                    s.state = LoginState::Failed;
                    s.reason = Some(retry.code());
                });
                tracing::error!(event = "tg_session_locked", tenant = %self.tenant);
                return;
            }
            self.close_account().await;
            drop(op);
            tracing::warn!(event = "tg_restore_retry", tenant = %self.tenant, reason = %retry.code(), error = %retry);
            self.status.send_modify(|s| {
                if s.state == LoginState::Idle {
                    s.reason = Some(retry.code());
                }
            });
            tokio::select! {
                _ = self.shared.cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(300));
        }
    }

    /// Shutdown: stop the loops, save the update state, close; the file stays.
    async fn shutdown(&self) {
        self.cancel_tasks();
        if let Some(account) = self.account().await
            && self.status().authorized()
            && let Err(e) = account.save_state().await
        {
            tracing::warn!(event = "tg_save_state_failed", tenant = %self.tenant, error = %e);
        }
        self.close_account().await;
    }

    /// The key is dead (`SESSION_REVOKED`…): `failed`, the file archived, sends refused.
    /// `generation` limits the failure to the login attempt that saw it.
    async fn fail_session(&self, code: &str, generation: Option<u64>) {
        let _op = self.ops.lock().await;
        if generation.is_some_and(|g| !self.is_current(g)) {
            return;
        }
        let code = code.to_ascii_lowercase();
        self.bump_generation();
        self.cancel_tasks();
        self.retire_qr();
        self.close_account().await;
        self.archive_session(&code).await;
        tracing::error!(event = "tg_session_gone", tenant = %self.tenant, reason = %code);
        let at = now_s();
        // Kept on disk, so a restart still says why and what to do.
        let failure = files::Failure { reason: code.clone(), at };
        self.update_alerts(|a| a.failed = Some(failure)).await;
        self.set_status(|s| {
            s.state = LoginState::Failed;
            s.reason = Some(code);
            s.failed_at = Some(at);
            s.qr = None;
            s.me = None;
        });
    }

    async fn archive_session(&self, reason: &str) {
        let dir = self.shared.sessions_dir.clone();
        let (tenant, reason) = (self.tenant, reason.to_string());
        match tokio::task::spawn_blocking(move || files::archive(&dir, tenant, &reason, now_s())).await {
            Ok(Ok(Some(to))) => tracing::warn!(event = "tg_session_archived", tenant = %self.tenant,
                file = %to.file_name().and_then(|n| n.to_str()).unwrap_or("")),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(event = "tg_session_archive_failed", tenant = %self.tenant, error = %e),
            Err(e) => tracing::error!(event = "tg_session_archive_failed", tenant = %self.tenant, error = %e),
        }
    }

    // ---- updates --------------------------------------------------------------

    fn spawn_run(&self, account: Arc<dyn TelegramAccount>) {
        let Some(me) = self.me.upgrade() else { return };
        let cancel = self.shared.cancel.child_token();
        if let Some(old) = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).run.replace(cancel.clone()) {
            old.cancel();
        }
        tokio::spawn(async move { me.run_loop(account, cancel).await });
    }

    /// Receives updates until stopped; a stalled connection is rebuilt over the same
    /// session file, a dead key fails the session.
    async fn run_loop(self: Arc<Self>, mut account: Arc<dyn TelegramAccount>, cancel: CancellationToken) {
        loop {
            let (tx, mut rx) = mpsc::channel(64);
            let reader_cancel = cancel.child_token();
            tokio::spawn(read_updates(account.clone(), tx, reader_cancel.clone(), self.tenant));
            let end = self.pump(&account, &mut rx, &cancel).await;
            reader_cancel.cancel();
            match end {
                RunEnd::Stopped => return,
                RunEnd::Gone(code) => {
                    self.fail_session(&code, None).await;
                    return;
                }
                RunEnd::Stalled => {
                    tracing::warn!(event = "tg_watchdog_rebuild", tenant = %self.tenant);
                    match self.rebuild(&cancel).await {
                        Some(fresh) => account = fresh,
                        None => return,
                    }
                }
            }
        }
    }

    async fn pump(
        &self,
        account: &Arc<dyn TelegramAccount>,
        rx: &mut mpsc::Receiver<Result<TgUpdate, TgError>>,
        cancel: &CancellationToken,
    ) -> RunEnd {
        let timing = self.shared.timing.clone();
        // Last sign of life (an update or an answered ping), and last update.
        let mut alive_at = Instant::now();
        let mut update_at = Instant::now();
        let mut save = tokio::time::interval_at(Instant::now() + timing.save_every, timing.save_every);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return RunEnd::Stopped,
                item = rx.recv() => match item {
                    None => return RunEnd::Stalled,
                    Some(Err(TgError::SessionGone(code))) => return RunEnd::Gone(code),
                    Some(Err(_)) => {}
                    Some(Ok(update)) => {
                        alive_at = Instant::now();
                        update_at = alive_at;
                        if let TgUpdate::Message(message) = update {
                            self.handle_message(*message).await;
                        }
                    }
                },
                _ = save.tick() => {
                    match account.save_state().await {
                        Ok(()) => {}
                        Err(TgError::SessionGone(code)) => return RunEnd::Gone(code),
                        Err(e) => tracing::warn!(event = "tg_save_state_failed", tenant = %self.tenant, error = %e),
                    }
                    self.expire_peer_flood().await;
                }
                _ = tokio::time::sleep_until(alive_at + timing.watchdog_idle) => {
                    match tokio::time::timeout(timing.ping_timeout, account.ping()).await {
                        Ok(Ok(())) if update_at.elapsed() >= timing.update_silence_max => {
                            // Requests work but nothing has come in for too long: the
                            // update stream may be stuck; a rebuild catches up.
                            tracing::warn!(event = "tg_watchdog_silent", tenant = %self.tenant,
                                silent_s = update_at.elapsed().as_secs());
                            return RunEnd::Stalled;
                        }
                        Ok(Ok(())) => alive_at = Instant::now(),
                        Ok(Err(TgError::SessionGone(code))) => return RunEnd::Gone(code),
                        Ok(Err(e)) => {
                            tracing::warn!(event = "tg_watchdog_ping_failed", tenant = %self.tenant, error = %e);
                            return RunEnd::Stalled;
                        }
                        Err(_) => {
                            tracing::warn!(event = "tg_watchdog_ping_timeout", tenant = %self.tenant);
                            return RunEnd::Stalled;
                        }
                    }
                }
            }
        }
    }

    /// Replaces the account with a fresh one over the same file (the lock stays held).
    async fn rebuild(&self, cancel: &CancellationToken) -> Option<Arc<dyn TelegramAccount>> {
        let factory = self.shared.accounts.clone()?;
        let path = files::session_path(&self.shared.sessions_dir, self.tenant);
        let mut backoff = Duration::from_secs(1);
        loop {
            let outcome = {
                let mut live = self.live.lock().await;
                let live = live.as_mut()?;
                live.account.close().await;
                match factory.open(self.tenant, &path).await {
                    Ok(fresh) => {
                        live.account = fresh.clone();
                        fresh.probe().await.map(|probe| (probe, fresh))
                    }
                    Err(e) => Err(e),
                }
            };
            match outcome {
                Ok((Probe::Authorized(_), fresh)) => {
                    tracing::info!(event = "tg_rebuilt", tenant = %self.tenant);
                    return Some(fresh);
                }
                Ok((Probe::Revoked(code), _)) => {
                    self.fail_session(&code, None).await;
                    return None;
                }
                Ok((Probe::LoggedOut | Probe::PasswordNeeded, _)) => {
                    self.fail_session("auth_key_unregistered", None).await;
                    return None;
                }
                Err(TgError::SessionGone(code)) => {
                    self.fail_session(&code, None).await;
                    return None;
                }
                Err(e) => tracing::warn!(event = "tg_rebuild_failed", tenant = %self.tenant, error = %e),
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(120));
        }
    }

    /// One private message: Avio's own echoes dropped, media saved, the rest into the inbox.
    async fn handle_message(&self, message: TgMessage) {
        if message.outgoing && self.sent_by_avio(message.id).await {
            return;
        }
        if let Some(name) = message.username.as_ref().filter(|n| !n.is_empty()) {
            self.usernames.lock().unwrap_or_else(|p| p.into_inner()).insert(message.chat_user_id, name.clone());
        }
        let mut attachments = Vec::new();
        if let Some(media) = &message.media {
            let path = match &media.bytes {
                Some(bytes) => self.save_media(message.id, media, bytes.clone()).await,
                None => None,
            };
            attachments.push(mapping::attachment(media, path));
        }
        let Some(incoming) = mapping::message_in(self.tenant, &message, attachments) else {
            return;
        };
        tracing::info!(event = "tg_incoming", tenant = %self.tenant, peer = %incoming.peer,
            message_id = %incoming.message_id, from_me = incoming.from_me);
        if self.shared.events.send(ChannelEvent::Incoming(incoming)).await.is_err() {
            tracing::error!(event = "tg_incoming_dropped", tenant = %self.tenant, message_id = message.id);
        }
    }

    /// Whether Avio sent message `id`; waits for sends still in flight, because
    /// Telegram may echo a message before `send` has returned its id.
    async fn sent_by_avio(&self, id: i32) -> bool {
        let deadline = Instant::now() + self.shared.timing.echo_wait;
        loop {
            let done = self.sends_done.notified();
            if self.sent.lock().unwrap_or_else(|p| p.into_inner()).set.contains(&id) {
                return true;
            }
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return false;
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return self.sent.lock().unwrap_or_else(|p| p.into_inner()).set.contains(&id);
            }
        }
    }

    /// Writes media under `tenants/<ID>/media/`; returns the path relative to the tenant folder.
    async fn save_media(
        &self,
        message_id: i32,
        media: &super::account::TgMedia,
        bytes: bytes::Bytes,
    ) -> Option<String> {
        let name = mapping::media_file_name(message_id, media);
        let path = self.shared.tenants_dir.join(self.tenant.to_string()).join("media").join(&name);
        match tokio::task::spawn_blocking(move || fsutil::write_private(&path, &bytes)).await {
            Ok(Ok(())) => Some(format!("media/{name}")),
            Ok(Err(e)) => {
                tracing::error!(event = "tg_media_save_failed", tenant = %self.tenant, error = %e);
                None
            }
            Err(e) => {
                tracing::error!(event = "tg_media_save_failed", tenant = %self.tenant, error = %e);
                None
            }
        }
    }

    // ---- sending --------------------------------------------------------------

    async fn send_outbound(&self, message: &OutboundMessage) -> Result<SendReceipt, SendError> {
        let status = self.status();
        match status.state {
            LoginState::Authorized => {}
            LoginState::Failed if status.reason.as_deref().is_some_and(is_gone_reason) => {
                return Err(SendError::SessionGone(status.reason.unwrap_or_default()));
            }
            _ => return Err(SendError::NotConnected),
        }
        let account = self.account().await.ok_or(SendError::NotConnected)?;
        let known_username = message
            .to
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|id| self.usernames.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned());
        let mut peer: Option<TgPeer> = None;
        for target in mapping::targets(&message.to, known_username.as_deref()) {
            match account.resolve(&target).await {
                Ok(Some(found)) => {
                    peer = Some(found);
                    break;
                }
                Ok(None) | Err(TgError::PeerInvalid(_)) => continue,
                Err(e) => return Err(self.on_send_error(e).await),
            }
        }
        let peer = peer.ok_or_else(|| SendError::RecipientNotFound(message.to.clone()))?;
        let reply_to = message.reply_to.as_deref().and_then(|r| r.trim().parse::<i32>().ok());
        let text = message.text.clone().unwrap_or_default();
        let mut outgoing = Vec::new();
        let caption_fits = text.chars().count() <= CAPTION_LIMIT;
        if message.files.is_empty() || !caption_fits {
            outgoing.push(TgOutgoing { text: text.clone(), file: None, reply_to });
        }
        for (idx, file) in message.files.iter().enumerate() {
            let first = idx == 0;
            outgoing.push(TgOutgoing {
                text: if first && caption_fits { text.clone() } else { String::new() },
                file: Some(TgFile {
                    name: file.name.clone(),
                    mime: file.mime.clone(),
                    bytes: file.bytes.clone(),
                    as_photo: mapping::send_as_photo(file),
                }),
                reply_to: if first && caption_fits { reply_to } else { None },
            });
        }
        let _flight = InFlight::new(self);
        let mut first_id = None;
        for item in outgoing.iter().filter(|o| o.file.is_some() || !o.text.trim().is_empty()) {
            match account.send(&peer, item).await {
                Ok(id) => {
                    self.sent.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
                    first_id.get_or_insert(id);
                }
                Err(e) => return Err(self.on_send_error(e).await),
            }
        }
        let id = first_id.ok_or_else(|| SendError::Permanent("empty_message".into()))?;
        Ok(SendReceipt { provider_message_id: Some(id.to_string()) })
    }

    async fn on_send_error(&self, error: TgError) -> SendError {
        match &error {
            TgError::PeerFlood => {
                let at = now_s();
                tracing::error!(event = "tg_peer_flood", tenant = %self.tenant,
                    "Telegram limits this account's messages to new people (PEER_FLOOD)");
                self.update_alerts(|a| a.peer_flood_at = Some(at)).await;
                self.status.send_modify(|s| s.peer_flood_at = Some(at));
            }
            TgError::SessionGone(code) => self.fail_session(code, None).await,
            TgError::FloodWait(secs) => {
                tracing::warn!(event = "tg_flood_wait", tenant = %self.tenant, seconds = secs);
            }
            _ => {}
        }
        mapping::send_error(&error)
    }
}

/// Counts a send in flight; the echo check waits for it.
struct InFlight<'a>(&'a TenantSession);

impl<'a> InFlight<'a> {
    fn new(session: &'a TenantSession) -> Self {
        session.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(session)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.sends_done.notify_waiters();
    }
}

/// Pulls updates in their own task, so the manager's timers never cancel a
/// half-read update.
async fn read_updates(
    account: Arc<dyn TelegramAccount>,
    tx: mpsc::Sender<Result<TgUpdate, TgError>>,
    cancel: CancellationToken,
    tenant: TenantId,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            next = account.next_update() => next,
        };
        match next {
            Ok(update) => {
                backoff = Duration::from_secs(1);
                if tx.send(Ok(update)).await.is_err() {
                    return;
                }
            }
            Err(TgError::SessionGone(code)) => {
                let _ = tx.send(Err(TgError::SessionGone(code))).await;
                return;
            }
            Err(e) => {
                tracing::warn!(event = "tg_updates_error", tenant = %tenant, error = %e);
                let _ = tx.send(Err(e)).await;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

impl ChannelDriver for TenantSession {
    fn start(&self) -> BoxFuture<'_, Result<Value, SendError>> {
        async move {
            self.resume().await;
            Ok(self.status().to_json())
        }
        .boxed()
    }

    fn status(&self) -> BoxFuture<'_, Value> {
        async move { TenantSession::status(self).to_json() }.boxed()
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<SendReceipt, SendError>> {
        self.send_outbound(message).boxed()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        self.shutdown().boxed()
    }
}
