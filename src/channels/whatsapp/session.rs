//! One tenant's WhatsApp session on its own OS thread, off the tokio workers: it owns
//! the Chromium process, the CDP `Browser`/`Tab`, takes commands (send, logout, stop,
//! restart) from a channel with oneshot replies, turns page events from the
//! `avioBridge` binding into [`ChannelEvent`]s and QR updates, and supervises the
//! browser: a crash, an exit or a failed heartbeat restarts it with exponential backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::{Page, Runtime};
use headless_chrome::{Browser, Tab};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::bridge::{self, BridgeEvent, PageMessage, Skip};
use super::browser::{self, ChromeProcess, LockCheck};
use crate::channels::{ChannelEvent, EventSink, OutboundMessage, SendError, SendReceipt};
use crate::domain::{Channel, TenantId, now_ms, now_rfc3339, now_s};
use crate::metrics::{ChannelStateLabels, Metrics};
use crate::queue::Queues;
use crate::store::TenantFiles;

/// The page→host binding's name (`window.avioBridge(json)`).
pub const BINDING: &str = "avioBridge";
const ADAPTER: &str = include_str!("adapter.js");

/// headless_chrome uses one duration for transport idleness, its browser event loop
/// and every call's wait; anything short kills the connection on a quiet page. Our
/// own deadlines (the watchdog) bound each call instead.
const CDP_IDLE: Duration = Duration::from_secs(365 * 24 * 3600);
/// A heartbeat proves the renderer still answers.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(10);
/// From launch to a QR or a restored session.
const START_DEADLINE: Duration = Duration::from_secs(90);
const SETUP_DEADLINE: Duration = Duration::from_secs(30);
const SEND_DEADLINE: Duration = Duration::from_secs(60);
const MEDIA_SEND_DEADLINE: Duration = Duration::from_secs(180);
const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(60);
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Media through CDP travels as base64 in one message; 16 MiB stays well below what
/// Chromium's DevTools socket takes.
pub const MAX_MEDIA_BYTES: usize = 16 * 1024 * 1024;
/// Consecutive failed launches before the session stays `failed`.
const MAX_FAILURES: u32 = 8;
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How many sent ids are remembered to recognise the page's echo of our sends.
const SENT_MEMORY: usize = 2000;
/// Recent events kept per tenant for `avioctl wa logs`.
const LOG_LINES: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Stopped,
    Starting,
    Qr,
    Ready,
    LoggedOut,
    Failed,
}

impl State {
    pub const ALL: [State; 6] =
        [State::Stopped, State::Starting, State::Qr, State::Ready, State::LoggedOut, State::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Qr => "qr",
            State::Ready => "ready",
            State::LoggedOut => "logged_out",
            State::Failed => "failed",
        }
    }
}

/// What `status` reports; updated by the session thread, read without it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state: State,
    /// The current QR string (what the phone scans); `None` outside `qr`.
    pub qr: Option<String>,
    pub qr_id: Option<String>,
    /// The account's own number (E.164 digits).
    pub me: Option<String>,
    pub pushname: Option<String>,
    /// `window.Debug.VERSION` of the page.
    pub version: Option<String>,
    pub pid: Option<u32>,
    /// Browser restarts after a crash, exit or failed heartbeat.
    pub restarts: u32,
    pub last_error: Option<String>,
    /// When the state last changed (RFC 3339).
    pub since: String,
}

impl Status {
    pub fn new(state: State) -> Self {
        Status {
            state,
            qr: None,
            qr_id: None,
            me: None,
            pushname: None,
            version: None,
            pid: None,
            restarts: 0,
            last_error: None,
            since: now_rfc3339(),
        }
    }
}

/// The session's state shared between its thread, the manager and the watchdog.
pub struct Shared {
    pub tenant: TenantId,
    pub status: Mutex<Status>,
    /// The CDP call in progress must finish by then (epoch ms; 0 = none): past it the
    /// watchdog kills Chromium, which fails the call at once.
    pub call_deadline_ms: AtomicU64,
    pub pid: AtomicU32,
    /// Set by the reaper of the current Chromium, so a reused pid is never killed.
    pub exited: Mutex<Arc<AtomicBool>>,
    /// The thread is running.
    pub alive: AtomicBool,
}

impl Shared {
    pub fn new(tenant: TenantId, state: State) -> Self {
        Shared {
            tenant,
            status: Mutex::new(Status::new(state)),
            call_deadline_ms: AtomicU64::new(0),
            pid: AtomicU32::new(0),
            exited: Mutex::new(Arc::new(AtomicBool::new(true))),
            alive: AtomicBool::new(false),
        }
    }

    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn arm(&self, deadline: Duration) {
        self.call_deadline_ms.store(now_ms() + deadline.as_millis() as u64, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.call_deadline_ms.store(0, Ordering::SeqCst);
    }

    /// The watchdog's check: kills Chromium when a call overran its deadline.
    pub fn enforce_deadline(&self) {
        let deadline = self.call_deadline_ms.load(Ordering::SeqCst);
        if deadline == 0 || now_ms() < deadline {
            return;
        }
        self.call_deadline_ms.store(0, Ordering::SeqCst);
        let pid = self.pid.load(Ordering::SeqCst);
        if pid != 0 {
            tracing::warn!(event = "wa_watchdog_kill", tenant = %self.tenant, pid, reason = "cdp_call_deadline");
            let exited = self.exited.lock().unwrap_or_else(|p| p.into_inner()).clone();
            browser::kill_pid(pid, &exited);
        }
    }
}

/// One line of `avioctl wa logs`.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub seq: u64,
    pub ts: String,
    pub event: String,
    pub detail: String,
}

/// What all sessions share: recent events per tenant and the per-state gauges.
pub struct Board {
    metrics: Arc<Metrics>,
    states: Mutex<HashMap<TenantId, State>>,
    logs: Mutex<HashMap<TenantId, VecDeque<LogLine>>>,
    seq: AtomicU64,
}

impl Board {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Board { metrics, states: Mutex::default(), logs: Mutex::default(), seq: AtomicU64::new(0) }
    }

    pub fn record(&self, tenant: TenantId, event: &str, detail: impl Into<String>) {
        let line = LogLine {
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            ts: now_rfc3339(),
            event: event.to_string(),
            detail: detail.into(),
        };
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let lines = logs.entry(tenant).or_default();
        if lines.len() >= LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub fn logs(&self, tenant: TenantId, after: u64) -> Vec<LogLine> {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.get(&tenant).map(|lines| lines.iter().filter(|l| l.seq > after).cloned().collect()).unwrap_or_default()
    }

    /// Records a state and sets `channel_sessions{channel="whatsapp",state}` for all.
    pub fn set_state(&self, tenant: TenantId, state: State) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.insert(tenant, state);
        for each in State::ALL {
            let n = states.values().filter(|s| **s == each).count() as i64;
            self.metrics
                .channel_sessions
                .get_or_create(&ChannelStateLabels { channel: "whatsapp".into(), state: each.as_str().into() })
                .set(n);
        }
    }
}

/// Where things live and what to open.
pub struct Settings {
    pub web_url: String,
    pub chromium: Option<PathBuf>,
    pub max_sessions: usize,
    /// `DATA_DIR/wa_state`.
    pub state_root: PathBuf,
    pub files: TenantFiles,
}

impl Settings {
    pub fn profile_dir(&self, tenant: TenantId) -> PathBuf {
        self.state_root.join(tenant.to_string())
    }

    /// The marker that brings a session back at boot (inside its profile, so a
    /// logout's reset removes it with everything else).
    pub fn autostart_file(&self, tenant: TenantId) -> PathBuf {
        self.profile_dir(tenant).join("avio_session.json")
    }
}

pub enum Command {
    Send { message: Box<OutboundMessage>, reply: oneshot::Sender<Result<SendReceipt, SendError>> },
    Logout { reply: oneshot::Sender<()> },
    Stop { reply: oneshot::Sender<()> },
    Restart,
}

pub enum Input {
    Command(Command),
    /// A page event for the browser of `generation`.
    Bridge {
        generation: u64,
        payload: String,
    },
    /// The browser of `generation` exited or its renderer crashed.
    Crashed {
        generation: u64,
        what: &'static str,
    },
}

/// Everything the session thread needs.
pub struct Ctx {
    pub tenant: TenantId,
    pub shared: Arc<Shared>,
    pub board: Arc<Board>,
    pub settings: Arc<Settings>,
    pub queues: Queues,
    pub events: EventSink,
    pub rt: tokio::runtime::Handle,
    pub tx: mpsc::Sender<Input>,
}

impl Ctx {
    fn state(&self) -> State {
        self.shared.status().state
    }

    /// Moves to `to`: the status, the `wa_state` log line, the gauges, the recent
    /// events and a `ChannelEvent::State`.
    fn set_state(&self, to: State, reason: Option<&str>) {
        transition(&self.shared, &self.board, &self.events, to, reason);
    }

    fn record(&self, event: &str, detail: impl Into<String>) {
        self.board.record(self.tenant, event, detail);
    }

    fn cache_qr(&self, qr_id: &str, svg: &str) {
        if let Err(e) = self.rt.block_on(crate::channels::qr::cache(&self.queues, self.tenant, qr_id, svg)) {
            tracing::warn!(event = "wa_qr_cache_failed", tenant = %self.tenant, error = %e);
        }
    }

    fn clear_qr(&self) {
        if let Err(e) = self.rt.block_on(crate::channels::qr::clear(&self.queues, self.tenant)) {
            tracing::warn!(event = "wa_qr_cache_failed", tenant = %self.tenant, error = %e);
        }
    }

    fn emit(&self, event: ChannelEvent) {
        if self.events.blocking_send(event).is_err() {
            tracing::warn!(event = "wa_event_dropped", tenant = %self.tenant, reason = "pipeline_closed");
        }
    }
}

/// A state change, callable from the thread or the manager (never blocks).
pub fn transition(shared: &Shared, board: &Board, events: &EventSink, to: State, reason: Option<&str>) {
    let from = {
        let mut status = shared.status.lock().unwrap_or_else(|p| p.into_inner());
        let from = status.state;
        if from == to {
            return;
        }
        status.state = to;
        status.since = now_rfc3339();
        if to != State::Qr {
            status.qr = None;
            status.qr_id = None;
        }
        if to == State::Failed {
            status.last_error = reason.map(str::to_string);
        }
        from
    };
    let tenant = shared.tenant;
    tracing::info!(event = "wa_state", tenant = %tenant, from = from.as_str(), to = to.as_str(),
        reason = reason.unwrap_or(""));
    board.set_state(tenant, to);
    let detail = match reason {
        Some(reason) => format!("{} -> {} ({reason})", from.as_str(), to.as_str()),
        None => format!("{} -> {}", from.as_str(), to.as_str()),
    };
    board.record(tenant, "wa_state", detail);
    let event =
        ChannelEvent::State { tenant, channel: Channel::Whatsapp, from: from.as_str().into(), to: to.as_str().into() };
    // Informational: under backpressure a state event may be dropped, never block.
    let _ = events.try_send(event);
}

/// Ids of messages Avio sent, bounded, so the page's echo is not taken for the phone.
#[derive(Default)]
struct SentIds {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl SentIds {
    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > SENT_MEMORY
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}

/// Why a browser run ended.
enum Outcome {
    Stop(Option<oneshot::Sender<()>>),
    Logout(oneshot::Sender<()>),
    /// The account was logged out elsewhere (the phone, another device).
    LoggedOut(String),
    Restart,
    Crashed(String),
}

fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    (BACKOFF_BASE * factor).min(BACKOFF_MAX)
}

/// The thread's body: launch, run, and restart with backoff until stopped.
pub fn run(ctx: Ctx, rx: mpsc::Receiver<Input>) {
    let mut failures: u32 = 0;
    let mut generation: u64 = 0;
    let mut sent = SentIds::default();
    loop {
        generation += 1;
        ctx.set_state(State::Starting, None);
        let outcome = match Live::launch(&ctx, generation) {
            Ok(mut live) => {
                let outcome = live.run(&ctx, &rx, &mut sent);
                if live.reached {
                    failures = 0;
                }
                live.close(&ctx);
                outcome
            }
            Err(reason) => Outcome::Crashed(reason),
        };
        let next = match outcome {
            Outcome::Crashed(reason) => {
                failures += 1;
                ctx.shared.update(|s| s.restarts += 1);
                tracing::warn!(event = "wa_browser_failed", tenant = %ctx.tenant, reason = %reason, failures);
                ctx.set_state(State::Failed, Some(&reason));
                if failures >= MAX_FAILURES {
                    ctx.record(
                        "wa_gave_up",
                        format!("{failures} failures in a row; POST /pub/wa/start or avioctl wa up"),
                    );
                    break;
                }
                let delay = backoff(failures);
                ctx.record("wa_restart_scheduled", format!("in {} ms", delay.as_millis()));
                wait_backoff(&rx, delay)
            }
            other => other,
        };
        match next {
            Outcome::Crashed(_) | Outcome::Restart => continue,
            Outcome::Stop(reply) => {
                ctx.set_state(State::Stopped, None);
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                break;
            }
            Outcome::Logout(reply) => {
                reset_profile(&ctx);
                ctx.clear_qr();
                ctx.set_state(State::LoggedOut, Some("logout"));
                let _ = reply.send(());
                break;
            }
            Outcome::LoggedOut(reason) => {
                // The phone ended the session: the profile stays (only our logout resets
                // it) but it must not come back at boot.
                let _ = std::fs::remove_file(ctx.settings.autostart_file(ctx.tenant));
                ctx.clear_qr();
                ctx.set_state(State::LoggedOut, Some(&reason));
                break;
            }
        }
    }
    ctx.shared.pid.store(0, Ordering::SeqCst);
    ctx.shared.update(|s| s.pid = None);
    ctx.shared.alive.store(false, Ordering::SeqCst);
    // Whoever still waits gets an answer instead of a dropped channel.
    while let Ok(input) = rx.try_recv() {
        refuse(input);
    }
}

fn refuse(input: Input) {
    match input {
        Input::Command(Command::Send { reply, .. }) => {
            let _ = reply.send(Err(SendError::NotConnected));
        }
        Input::Command(Command::Logout { reply } | Command::Stop { reply }) => {
            let _ = reply.send(());
        }
        _ => {}
    }
}

fn reset_profile(ctx: &Ctx) {
    let dir = ctx.settings.profile_dir(ctx.tenant);
    match browser::reset_profile(&dir) {
        Ok(()) => ctx.record("wa_profile_reset", "logout: the state directory was reset"),
        Err(e) => tracing::error!(event = "wa_profile_reset_failed", tenant = %ctx.tenant, error = %e),
    }
}

/// Waits out a backoff while still answering commands.
fn wait_backoff(rx: &mpsc::Receiver<Input>, delay: Duration) -> Outcome {
    let until = Instant::now() + delay;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::Restart;
        }
        match rx.recv_timeout(left) {
            Ok(Input::Command(Command::Stop { reply })) => return Outcome::Stop(Some(reply)),
            Ok(Input::Command(Command::Logout { reply })) => return Outcome::Logout(reply),
            Ok(Input::Command(Command::Restart)) => return Outcome::Restart,
            Ok(Input::Command(Command::Send { reply, .. })) => {
                let _ = reply.send(Err(SendError::NotConnected));
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => return Outcome::Restart,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Outcome::Stop(None),
        }
    }
}

#[derive(Debug)]
enum EvalError {
    /// The page threw or rejected.
    Js(String),
    /// CDP failed: the browser is gone or was killed by the watchdog.
    Cdp(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Js(e) => write!(f, "page: {e}"),
            EvalError::Cdp(e) => write!(f, "cdp: {e}"),
        }
    }
}

/// A running browser with the page open.
struct Live {
    process: ChromeProcess,
    // Dropped before the process handle is forgotten; kept for its connection.
    _browser: Browser,
    tab: Arc<Tab>,
    generation: u64,
    /// The page showed a QR or a session: the launch worked.
    reached: bool,
    launched_at: Instant,
}

impl Live {
    fn launch(ctx: &Ctx, generation: u64) -> Result<Live, String> {
        let profile = ctx.settings.profile_dir(ctx.tenant);
        browser::prepare_profile(&profile).map_err(|e| format!("profile {}: {e}", profile.display()))?;
        match browser::clear_stale_lock(&profile) {
            Ok(LockCheck::Free) => {}
            Ok(LockCheck::ClearedStale(target)) => {
                tracing::warn!(event = "wa_stale_lock_cleared", tenant = %ctx.tenant, lock = %target);
                ctx.record("wa_stale_lock_cleared", target);
            }
            Ok(LockCheck::InUse(pid)) => return Err(format!("the profile is in use by a live Chromium (pid {pid})")),
            Err(e) => return Err(format!("clear SingletonLock: {e}")),
        }
        let binary = browser::find_chromium(ctx.settings.chromium.as_deref())
            .ok_or_else(|| "no Chromium found: install chromium or set CHROMIUM_PATH".to_string())?;
        let tx = ctx.tx.clone();
        let process = ChromeProcess::launch(&binary, &profile, move || {
            let _ = tx.send(Input::Crashed { generation, what: "the browser process exited" });
        })
        .map_err(|e| e.to_string())?;
        ctx.shared.pid.store(process.pid, Ordering::SeqCst);
        *ctx.shared.exited.lock().unwrap_or_else(|p| p.into_inner()) = process.exited.clone();
        ctx.shared.update(|s| s.pid = Some(process.pid));
        ctx.record("wa_browser_started", format!("pid {}", process.pid));
        tracing::info!(event = "wa_browser_started", tenant = %ctx.tenant, pid = process.pid);

        ctx.shared.arm(SETUP_DEADLINE);
        let setup = Self::open_page(ctx, &process, generation);
        ctx.shared.disarm();
        match setup {
            Ok((browser, tab)) => {
                Ok(Live { process, _browser: browser, tab, generation, reached: false, launched_at: Instant::now() })
            }
            Err(e) => {
                process.kill();
                process.wait_exit(CLOSE_WAIT);
                Err(format!("open the page: {e:#}"))
            }
        }
    }

    fn open_page(ctx: &Ctx, process: &ChromeProcess, generation: u64) -> anyhow::Result<(Browser, Arc<Tab>)> {
        let browser = Browser::connect_with_timeout(process.ws_url.clone(), CDP_IDLE)?;
        // The tab Chromium opened at launch: reusing it saves a renderer.
        let deadline = Instant::now() + SETUP_DEADLINE;
        let tab = loop {
            if let Some(tab) = browser.get_tabs().lock().unwrap_or_else(|p| p.into_inner()).first().cloned() {
                break tab;
            }
            anyhow::ensure!(Instant::now() < deadline, "chromium opened no tab");
            std::thread::sleep(Duration::from_millis(20));
        };
        // Runtime first: without it the binding does not survive navigations.
        tab.enable_runtime()?;
        let tx = ctx.tx.clone();
        // Runs on headless_chrome's tab thread: hand the payload over, never block or panic.
        tab.expose_function(
            BINDING,
            Arc::new(move |value: Value| {
                if let Value::String(payload) = value {
                    let _ = tx.send(Input::Bridge { generation, payload });
                }
            }),
        )?;
        let tx = ctx.tx.clone();
        tab.add_event_listener(Arc::new(move |event: &headless_chrome::protocol::cdp::types::Event| {
            if let headless_chrome::protocol::cdp::types::Event::InspectorTargetCrashed(_) = event {
                let _ = tx.send(Input::Crashed { generation, what: "the page's renderer crashed" });
            }
        }))?;
        tab.call_method(Page::AddScriptToEvaluateOnNewDocument {
            source: ADAPTER.to_string(),
            world_name: None,
            include_command_line_api: None,
            run_immediately: None,
        })?;
        // A normal desktop UA of the same major version (WhatsApp refuses HeadlessChrome).
        let product = browser.get_version().map(|v| v.product).unwrap_or_default();
        let major = product.split('/').nth(1).and_then(|v| v.split('.').next()).unwrap_or("130").to_string();
        let user_agent = format!(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 Safari/537.36"
        );
        tab.set_user_agent(&user_agent, Some("ru-RU,ru;q=0.9,en;q=0.8"), Some("Linux x86_64"))?;
        tab.navigate_to(&ctx.settings.web_url)?;
        Ok((browser, tab))
    }

    /// Serves the session until it ends; returns why.
    fn run(&mut self, ctx: &Ctx, rx: &mpsc::Receiver<Input>, sent: &mut SentIds) -> Outcome {
        let mut next_beat = Instant::now() + HEARTBEAT_EVERY;
        loop {
            let wait = next_beat.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Input::Bridge { generation, payload }) if generation == self.generation => {
                    if let Some(outcome) = self.on_bridge(ctx, &payload, sent) {
                        return outcome;
                    }
                }
                Ok(Input::Crashed { generation, what }) if generation == self.generation => {
                    let tail = self.process.tail().into_iter().last().unwrap_or_default();
                    return Outcome::Crashed(if tail.is_empty() {
                        what.to_string()
                    } else {
                        format!("{what}: {tail}")
                    });
                }
                Ok(Input::Bridge { .. } | Input::Crashed { .. }) => {}
                Ok(Input::Command(command)) => match command {
                    Command::Send { message, reply } => {
                        let result = self.send(ctx, &message, sent);
                        let _ = reply.send(result);
                    }
                    Command::Logout { reply } => {
                        self.page_logout(ctx);
                        return Outcome::Logout(reply);
                    }
                    Command::Stop { reply } => return Outcome::Stop(Some(reply)),
                    Command::Restart => return Outcome::Restart,
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) =
                        self.eval(ctx, "window.__avio ? window.__avio.heartbeat() : null", HEARTBEAT_DEADLINE)
                    {
                        return Outcome::Crashed(format!("heartbeat failed: {e}"));
                    }
                    if !self.reached && self.launched_at.elapsed() > START_DEADLINE {
                        return Outcome::Crashed(format!("no QR and no session within {START_DEADLINE:?}"));
                    }
                    next_beat = Instant::now() + HEARTBEAT_EVERY;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Outcome::Stop(None),
            }
        }
    }

    fn on_bridge(&mut self, ctx: &Ctx, payload: &str, sent: &mut SentIds) -> Option<Outcome> {
        let Some(event) = BridgeEvent::parse(payload) else {
            tracing::debug!(event = "wa_bridge_unknown", tenant = %ctx.tenant, payload_len = payload.len());
            return None;
        };
        match event {
            BridgeEvent::Loading { version } => {
                tracing::info!(event = "wa_page_loaded", tenant = %ctx.tenant, version = %version);
                ctx.record("wa_page_loaded", version.clone());
                ctx.shared.update(|s| s.version = Some(version));
            }
            BridgeEvent::Qr { qr } => {
                if ctx.state() == State::Ready {
                    return None;
                }
                self.reached = true;
                let qr_id = bridge::qr_id(&qr);
                match bridge::qr_svg(&qr) {
                    Some(svg) => ctx.cache_qr(&qr_id, &svg),
                    None => tracing::warn!(event = "wa_qr_render_failed", tenant = %ctx.tenant),
                }
                ctx.shared.update(|s| {
                    s.qr = Some(qr);
                    s.qr_id = Some(qr_id.clone());
                });
                ctx.set_state(State::Qr, None);
                tracing::info!(event = "wa_qr", tenant = %ctx.tenant, qr_id = %qr_id);
                ctx.record("wa_qr", qr_id);
            }
            BridgeEvent::Ready { me, pushname } => {
                self.reached = true;
                let me = me.as_deref().map(bridge::me_number);
                ctx.shared.update(|s| {
                    s.me = me.clone();
                    s.pushname = pushname;
                });
                ctx.clear_qr();
                ctx.set_state(State::Ready, None);
                ctx.record("wa_ready", me.clone().unwrap_or_default());
                let marker = json!({"autostart": true, "me": me, "ready_at": now_s()});
                let path = ctx.settings.autostart_file(ctx.tenant);
                if let Err(e) = crate::store::fsutil::write_private(&path, marker.to_string().as_bytes()) {
                    tracing::warn!(event = "wa_autostart_write_failed", tenant = %ctx.tenant, error = %e);
                }
            }
            BridgeEvent::SocketState { state } => ctx.record("wa_socket", state),
            BridgeEvent::Disconnected { state } => {
                if matches!(state.as_str(), "UNPAIRED" | "UNPAIRED_IDLE") && ctx.state() == State::Ready {
                    return Some(Outcome::LoggedOut(format!("socket {state}")));
                }
                return Some(Outcome::Crashed(format!("socket {state}")));
            }
            BridgeEvent::Logout { reason } => return Some(Outcome::LoggedOut(reason)),
            BridgeEvent::Message { message } => self.on_message(ctx, *message, sent),
            BridgeEvent::Ack { id, ack } => {
                if sent.contains(&id)
                    && let Some(status) = bridge::ack_status(ack)
                {
                    ctx.emit(ChannelEvent::Delivery {
                        tenant: ctx.tenant,
                        channel: Channel::Whatsapp,
                        provider_message_id: id,
                        status: status.into(),
                    });
                }
            }
            BridgeEvent::Failed { error } => return Some(Outcome::Crashed(error)),
        }
        None
    }

    fn on_message(&mut self, ctx: &Ctx, message: PageMessage, sent: &SentIds) {
        if sent.contains(&message.id) {
            return;
        }
        let mut incoming = match message.to_message_in(ctx.tenant, now_s()) {
            Ok(incoming) => incoming,
            Err(Skip::Echo) => return,
            Err(skip) => {
                tracing::info!(event = "wa_message_skipped", tenant = %ctx.tenant, reason = skip.reason(),
                    wa_type = %message.kind);
                return;
            }
        };
        if message.is_media() {
            match self.download(ctx, &message) {
                Ok(path) => {
                    if let Some(attachment) = incoming.attachments.first_mut() {
                        attachment.path = Some(path);
                    }
                }
                Err(e) => {
                    tracing::warn!(event = "wa_media_failed", tenant = %ctx.tenant, message_id = %message.id, error = %e);
                    incoming.meta["media_error"] = Value::String(e);
                }
            }
        }
        tracing::info!(event = "wa_message_in", tenant = %ctx.tenant, peer = %incoming.peer,
            message_id = %incoming.message_id, from_me = incoming.from_me, wa_type = %message.kind);
        ctx.record("wa_message_in", format!("{} from_me={}", incoming.peer, incoming.from_me));
        ctx.emit(ChannelEvent::Incoming(incoming));
    }

    /// Downloads a message's media through the page into `tenants/<ID>/media/`;
    /// returns the path relative to the tenant folder.
    fn download(&self, ctx: &Ctx, message: &PageMessage) -> Result<String, String> {
        use base64::Engine as _;
        let expression = format!(
            "window.__avio.downloadMedia({}, {})",
            bridge::js(&Value::String(message.id.clone())),
            MAX_MEDIA_BYTES
        );
        let answer = self.eval(ctx, &expression, DOWNLOAD_DEADLINE).map_err(|e| e.to_string())?;
        if answer.get("too_large").and_then(Value::as_bool) == Some(true) {
            return Err(format!("media_too_large: {} bytes", answer["size"]));
        }
        let b64 = answer.get("b64").and_then(Value::as_str).ok_or("media_missing")?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("media_base64: {e}"))?;
        let mime = answer.get("mimetype").and_then(Value::as_str).or(message.mimetype.as_deref());
        let original = answer.get("filename").and_then(Value::as_str).or(message.filename.as_deref());
        let name = bridge::media_file_name(&message.id, mime, original);
        let dir = ctx.settings.files.dir(ctx.tenant).join("media");
        crate::store::fsutil::ensure_private_dir(&dir).map_err(|e| format!("media dir: {e}"))?;
        crate::store::fsutil::write_private(&dir.join(&name), &bytes).map_err(|e| format!("media write: {e}"))?;
        Ok(format!("media/{name}"))
    }

    fn send(&mut self, ctx: &Ctx, message: &OutboundMessage, sent: &mut SentIds) -> Result<SendReceipt, SendError> {
        use base64::Engine as _;
        if ctx.state() != State::Ready {
            return Err(SendError::NotConnected);
        }
        let jid = bridge::recipient_jid(&message.to).ok_or_else(|| SendError::RecipientNotFound(message.to.clone()))?;
        let text = message.text.clone().filter(|t| !t.trim().is_empty());
        let mut ids = Vec::new();
        if message.files.is_empty() {
            let text = text.as_deref().ok_or_else(|| SendError::Permanent("empty_message".into()))?;
            ids.push(self.send_one(ctx, &jid, Some(text), Value::Null, SEND_DEADLINE, sent)?);
        }
        for (idx, file) in message.files.iter().enumerate() {
            if file.bytes.len() > MAX_MEDIA_BYTES {
                return Err(SendError::Permanent("attachment_too_large".into()));
            }
            let as_document = !(file.kind == "image" && file.mime.starts_with("image/"));
            let media = json!({
                "b64": base64::engine::general_purpose::STANDARD.encode(&file.bytes),
                "mimetype": file.mime,
                "filename": file.name,
                "asDocument": as_document,
            });
            // WhatsApp style: the text is the first file's caption.
            let caption = if idx == 0 { text.as_deref() } else { None };
            ids.push(self.send_one(ctx, &jid, caption, media, MEDIA_SEND_DEADLINE, sent)?);
        }
        tracing::info!(event = "wa_sent", tenant = %ctx.tenant, to = %jid, messages = ids.len(), job_id = %message.job_id);
        ctx.record("wa_sent", format!("{jid} ({} message(s))", ids.len()));
        Ok(SendReceipt { provider_message_id: ids.into_iter().next() })
    }

    fn send_one(
        &self,
        ctx: &Ctx,
        jid: &str,
        text: Option<&str>,
        media: Value,
        deadline: Duration,
        sent: &mut SentIds,
    ) -> Result<String, SendError> {
        let expression = format!(
            "window.__avio.send({}, {}, {})",
            bridge::js(&Value::String(jid.to_string())),
            bridge::js(&text.map_or(Value::Null, |t| Value::String(t.to_string()))),
            bridge::js(&media)
        );
        match self.eval(ctx, &expression, deadline) {
            Ok(answer) => {
                let id = answer.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                if !id.is_empty() {
                    sent.insert(id.clone());
                }
                Ok(id)
            }
            Err(EvalError::Js(e)) if e.contains("not_ready") => Err(SendError::NotConnected),
            Err(EvalError::Js(e)) if e.contains("chat_not_found") => Err(SendError::RecipientNotFound(jid.into())),
            Err(EvalError::Js(e)) if e.contains("adapter_incompatible") => Err(SendError::Permanent(e)),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }

    /// Logs the account out in the page (the phone's "linked devices" entry goes).
    fn page_logout(&self, ctx: &Ctx) {
        if ctx.state() != State::Ready {
            return;
        }
        if let Err(e) = self.eval(ctx, "window.__avio.logout()", SEND_DEADLINE) {
            tracing::warn!(event = "wa_page_logout_failed", tenant = %ctx.tenant, error = %e);
        }
    }

    /// Runs JS in the page with a deadline the watchdog enforces.
    fn eval(&self, ctx: &Ctx, expression: &str, deadline: Duration) -> Result<Value, EvalError> {
        ctx.shared.arm(deadline);
        let result = self.tab.call_method(Runtime::Evaluate {
            expression: expression.to_string(),
            object_group: None,
            include_command_line_api: None,
            silent: Some(true),
            context_id: None,
            return_by_value: Some(true),
            generate_preview: None,
            user_gesture: None,
            await_promise: Some(true),
            throw_on_side_effect: None,
            timeout: None,
            disable_breaks: None,
            repl_mode: None,
            allow_unsafe_eval_blocked_by_csp: None,
            unique_context_id: None,
            serialization_options: None,
        });
        ctx.shared.disarm();
        let result = result.map_err(|e| EvalError::Cdp(e.to_string()))?;
        if let Some(details) = result.exception_details {
            let message = details.exception.and_then(|e| e.description).unwrap_or(details.text);
            return Err(EvalError::Js(message));
        }
        Ok(result.result.value.unwrap_or(Value::Null))
    }

    /// Graceful close: `Browser.close` flushes the profile (localStorage) and removes
    /// the lock; a browser that does not exit in time is killed.
    fn close(self, ctx: &Ctx) {
        if !self.process.has_exited() {
            ctx.shared.arm(CLOSE_WAIT);
            let _ = self.tab.call_method(headless_chrome::protocol::cdp::Browser::Close(None));
            ctx.shared.disarm();
            if !self.process.wait_exit(CLOSE_WAIT) {
                tracing::warn!(event = "wa_browser_killed", tenant = %ctx.tenant, pid = self.process.pid,
                    reason = "did_not_close");
                self.process.kill();
                self.process.wait_exit(CLOSE_WAIT);
            }
        }
        ctx.record("wa_browser_closed", format!("pid {}", self.process.pid));
        ctx.shared.pid.store(0, Ordering::SeqCst);
        ctx.shared.update(|s| s.pid = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(10), Duration::from_secs(60));
        assert_eq!(backoff(100), Duration::from_secs(60));
    }

    #[test]
    fn sent_ids_are_bounded() {
        let mut sent = SentIds::default();
        for i in 0..(SENT_MEMORY + 10) {
            sent.insert(format!("id{i}"));
        }
        assert!(!sent.contains("id0"));
        assert!(sent.contains(&format!("id{}", SENT_MEMORY + 9)));
        assert_eq!(sent.set.len(), SENT_MEMORY);
    }
}
