//! Telegram sessions end to end through the Avio-owned account trait: a scripted
//! account stands in for Telegram (unreachable from here). The login state machine
//! runs under tokio's paused time; the routes run on the real router with real files.

mod common;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use avio::app::Extensions;
use avio::channels::telegram::account::{
    AccountFactory, LoginStep, Probe, SelfUser, Target, TelegramAccount, TgError, TgMedia, TgMessage, TgOutgoing,
    TgPeer, TgPeerKind, TgUpdate,
};
use avio::channels::telegram::{LoginError, LoginState, TelegramHub, TenantSession, TgStatus, Timing, files, qr};
use avio::channels::{ChannelDriver, ChannelEvent, OutboundFile, OutboundMessage, SendError};
use avio::domain::{Channel, TenantId, now_s};
use common::{ADMIN_TOKEN, TestApp, eventually, spawn_app_full, spawn_app_with};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

// ---- the scripted account -------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ping {
    Ok,
    Hang,
}

/// What the fake Telegram answers; shared by every account the factory opens, so a
/// rebuilt connection sees the same script.
struct Script {
    probe: Mutex<Result<Probe, TgError>>,
    /// Answers to `export_login_token`; when empty, a fresh token valid for 30 s.
    exports: Mutex<VecDeque<Result<LoginStep, TgError>>>,
    imports: Mutex<VecDeque<Result<LoginStep, TgError>>>,
    scanned: Notify,
    password: String,
    me: SelfUser,
    updates_tx: mpsc::UnboundedSender<Result<TgUpdate, TgError>>,
    updates_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Result<TgUpdate, TgError>>>,
    /// Targets that resolve; others answer "nobody".
    peers: Mutex<HashMap<Target, TgPeer>>,
    resolved: Mutex<Vec<Target>>,
    send_results: Mutex<VecDeque<TgError>>,
    /// When each send was tried, failed or not.
    send_attempts: Mutex<Vec<tokio::time::Instant>>,
    sent: Mutex<Vec<(TgPeer, TgOutgoing, i32)>>,
    next_id: AtomicI32,
    ping: Mutex<Ping>,
    calls: Mutex<Vec<String>>,
    opens: AtomicUsize,
    token_counter: AtomicI32,
}

impl Script {
    fn new() -> Arc<Script> {
        Self::with_password("correct horse")
    }

    fn with_password(password: &str) -> Arc<Script> {
        let (updates_tx, updates_rx) = mpsc::unbounded_channel();
        Arc::new(Script {
            probe: Mutex::new(Ok(Probe::LoggedOut)),
            exports: Mutex::new(VecDeque::new()),
            imports: Mutex::new(VecDeque::new()),
            scanned: Notify::new(),
            password: password.into(),
            me: SelfUser { id: 1000, username: Some("shop".into()), first_name: Some("Shop".into()) },
            updates_tx,
            updates_rx: tokio::sync::Mutex::new(updates_rx),
            peers: Mutex::new(HashMap::new()),
            resolved: Mutex::new(Vec::new()),
            send_results: Mutex::new(VecDeque::new()),
            send_attempts: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
            next_id: AtomicI32::new(500),
            ping: Mutex::new(Ping::Ok),
            calls: Mutex::new(Vec::new()),
            opens: AtomicUsize::new(0),
            token_counter: AtomicI32::new(0),
        })
    }

    fn then_export(&self, step: Result<LoginStep, TgError>) {
        self.exports.lock().unwrap().push_back(step);
    }

    fn then_import(&self, step: Result<LoginStep, TgError>) {
        self.imports.lock().unwrap().push_back(step);
    }

    /// The user scans the QR with their phone.
    fn scan(&self) {
        self.scanned.notify_one();
    }

    fn push(&self, message: TgMessage) {
        self.updates_tx.send(Ok(TgUpdate::Message(Box::new(message)))).unwrap();
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn call(&self, name: impl Into<String>) {
        self.calls.lock().unwrap().push(name.into());
    }

    fn fresh_token(&self) -> LoginStep {
        let n = self.token_counter.fetch_add(1, Ordering::SeqCst);
        LoginStep::Token { token: format!("token-{n}").into_bytes(), expires: now_s() + 30 }
    }
}

struct ScriptedAccount(Arc<Script>);

impl TelegramAccount for ScriptedAccount {
    fn probe(&self) -> BoxFuture<'_, Result<Probe, TgError>> {
        async move { self.0.probe.lock().unwrap().clone() }.boxed()
    }

    fn export_login_token(&self) -> BoxFuture<'_, Result<LoginStep, TgError>> {
        async move {
            self.0.call("export");
            let next = self.0.exports.lock().unwrap().pop_front();
            next.unwrap_or_else(|| Ok(self.0.fresh_token()))
        }
        .boxed()
    }

    fn import_login_token(&self, dc_id: i32, token: Vec<u8>) -> BoxFuture<'_, Result<LoginStep, TgError>> {
        async move {
            self.0.call(format!("import:{dc_id}:{}", String::from_utf8_lossy(&token)));
            let next = self.0.imports.lock().unwrap().pop_front();
            next.unwrap_or_else(|| Ok(LoginStep::Success(self.0.me.clone())))
        }
        .boxed()
    }

    fn login_event(&self) -> BoxFuture<'_, ()> {
        self.0.scanned.notified().boxed()
    }

    fn password_hint(&self) -> BoxFuture<'_, Result<Option<String>, TgError>> {
        async { Ok(Some("horse".into())) }.boxed()
    }

    fn check_password<'a>(&'a self, password: &'a str) -> BoxFuture<'a, Result<SelfUser, TgError>> {
        async move {
            if password == self.0.password {
                *self.0.probe.lock().unwrap() = Ok(Probe::Authorized(self.0.me.clone()));
                Ok(self.0.me.clone())
            } else {
                Err(TgError::PasswordInvalid)
            }
        }
        .boxed()
    }

    fn next_update(&self) -> BoxFuture<'_, Result<TgUpdate, TgError>> {
        async move {
            self.0.call("next_update");
            let mut rx = self.0.updates_rx.lock().await;
            match rx.recv().await {
                Some(update) => update,
                None => futures_util::future::pending().await,
            }
        }
        .boxed()
    }

    fn save_state(&self) -> BoxFuture<'_, Result<(), TgError>> {
        async move {
            self.0.call("save_state");
            Ok(())
        }
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), TgError>> {
        async move {
            self.0.call("ping");
            let mode = *self.0.ping.lock().unwrap();
            match mode {
                Ping::Ok => Ok(()),
                Ping::Hang => futures_util::future::pending().await,
            }
        }
        .boxed()
    }

    fn resolve<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Option<TgPeer>, TgError>> {
        async move {
            self.0.resolved.lock().unwrap().push(target.clone());
            if *target == Target::Me {
                return Ok(Some(TgPeer { kind: TgPeerKind::User, id: self.0.me.id, access_hash: Some(1) }));
            }
            Ok(self.0.peers.lock().unwrap().get(target).copied())
        }
        .boxed()
    }

    fn send<'a>(&'a self, peer: &'a TgPeer, message: &'a TgOutgoing) -> BoxFuture<'a, Result<i32, TgError>> {
        async move {
            self.0.send_attempts.lock().unwrap().push(tokio::time::Instant::now());
            if let Some(error) = self.0.send_results.lock().unwrap().pop_front() {
                return Err(error);
            }
            let id = self.0.next_id.fetch_add(1, Ordering::SeqCst);
            self.0.sent.lock().unwrap().push((*peer, message.clone(), id));
            Ok(id)
        }
        .boxed()
    }

    fn logout(&self) -> BoxFuture<'_, Result<(), TgError>> {
        async move {
            self.0.call("logout");
            *self.0.probe.lock().unwrap() = Ok(Probe::LoggedOut);
            Ok(())
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move { self.0.call("close") }.boxed()
    }
}

/// Opens scripted accounts; like grammers, it leaves a session file behind.
struct ScriptFactory(Arc<Script>);

impl AccountFactory for ScriptFactory {
    fn open<'a>(
        &'a self,
        _tenant: TenantId,
        session_file: &'a Path,
    ) -> BoxFuture<'a, Result<Arc<dyn TelegramAccount>, TgError>> {
        async move {
            self.0.opens.fetch_add(1, Ordering::SeqCst);
            self.0.call("open");
            if !session_file.exists() {
                avio::store::fsutil::write_private(session_file, b"scripted").unwrap();
            }
            let account: Arc<dyn TelegramAccount> = Arc::new(ScriptedAccount(self.0.clone()));
            Ok(account)
        }
        .boxed()
    }
}

// ---- helpers --------------------------------------------------------------------

fn tenant(n: i64) -> TenantId {
    TenantId::new(n).unwrap()
}

struct Harness {
    hub: Arc<TelegramHub>,
    script: Arc<Script>,
    events: mpsc::Receiver<ChannelEvent>,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let script = Script::new();
        Self::over(dir, script)
    }

    fn over(dir: tempfile::TempDir, script: Arc<Script>) -> Harness {
        let (tx, events) = mpsc::channel(64);
        let factory: Arc<dyn AccountFactory> = Arc::new(ScriptFactory(script.clone()));
        let hub =
            TelegramHub::new(Some(factory), sessions_dir(dir.path()), dir.path().to_path_buf(), tx, Timing::default());
        Harness { hub, script, events, dir }
    }

    fn session(&self) -> Arc<TenantSession> {
        self.hub.session(tenant(7))
    }

    fn session_file(&self) -> PathBuf {
        files::session_path(&sessions_dir(self.dir.path()), tenant(7))
    }

    fn alerts_file(&self) -> PathBuf {
        files::alerts_path(&sessions_dir(self.dir.path()), tenant(7))
    }

    /// A daemon restart: the hub stops, a new one over the same directory restores.
    async fn restart(self) -> Harness {
        self.hub.stop_all().await;
        let Harness { script, dir, .. } = self;
        let restarted = Harness::over(dir, script);
        restarted.hub.restore_all().await;
        restarted
    }

    /// The next incoming message the session reported, skipping state events.
    async fn next_incoming(&mut self) -> avio::domain::MessageIn {
        loop {
            match self.events.recv().await.expect("event channel open") {
                ChannelEvent::Incoming(message) => return message,
                _ => continue,
            }
        }
    }

    /// Logs in straight through a scan.
    async fn authorized(&self) -> Arc<TenantSession> {
        let session = self.session();
        session.start_login().await.unwrap();
        self.script.then_export(Ok(LoginStep::Success(self.script.me.clone())));
        *self.script.probe.lock().unwrap() = Ok(Probe::Authorized(self.script.me.clone()));
        self.script.scan();
        wait_for(&session, |s| s.state == LoginState::Authorized).await;
        session
    }
}

fn sessions_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tg_sessions")
}

/// Waits (in virtual time under a paused clock) for the session to reach a state.
async fn wait_for(session: &TenantSession, check: impl Fn(&TgStatus) -> bool) -> TgStatus {
    let mut rx = session.subscribe();
    let status = tokio::time::timeout(Duration::from_secs(3600), rx.wait_for(|s| check(s)))
        .await
        .expect("state reached")
        .expect("session alive");
    status.clone()
}

fn qr_id(status: &TgStatus) -> String {
    status.qr.as_ref().expect("a qr is shown").id.clone()
}

fn outbound(to: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        tenant: tenant(7),
        job_id: "job-1".into(),
        to: to.into(),
        text: Some(text.into()),
        files: Vec::new(),
        reply_to: None,
    }
}

fn lead_message(id: i32, text: &str) -> TgMessage {
    TgMessage {
        id,
        chat_user_id: 5001,
        username: Some("ivan".into()),
        first_name: Some("Иван".into()),
        date: 1_715_683_200,
        text: text.into(),
        ..TgMessage::default()
    }
}

// ---- the login state machine (paused time) -------------------------------------

#[tokio::test(start_paused = true)]
async fn the_qr_is_refreshed_before_it_expires_while_the_page_polls() {
    let h = Harness::new();
    let session = h.session();
    let first = session.start_login().await.unwrap();
    assert_eq!(first.state, LoginState::NeedQr);
    let first_id = qr_id(&first);
    assert!(first.qr.as_ref().unwrap().login_url.starts_with("tg://login?token="));

    // The page polls every 5 s; the token (30 s) is replaced before it runs out.
    let mut seen = vec![first_id.clone()];
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let status = session.poll_status().unwrap();
        assert_eq!(status.state, LoginState::NeedQr, "never expires while watched");
        let id = qr_id(&status);
        if seen.last() != Some(&id) {
            seen.push(id);
        }
    }
    assert!(seen.len() >= 3, "refreshed repeatedly: {seen:?}");
    assert_eq!(session.qr_png(&first_id), Err(LoginError::QrGone), "a replaced QR answers 410");
    let png = session.qr_png(seen.last().unwrap()).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    assert_eq!(session.qr_png("never-issued"), Err(LoginError::QrNotFound));
}

#[tokio::test(start_paused = true)]
async fn an_unwatched_qr_expires_into_failed_and_start_begins_again() {
    let h = Harness::new();
    let session = h.session();
    let first = session.start_login().await.unwrap();
    let old = qr_id(&first);

    let failed = wait_for(&session, |s| s.state == LoginState::Failed).await;
    assert_eq!(failed.reason.as_deref(), Some("qr_expired"));
    assert!(failed.qr.is_none());
    assert_eq!(session.qr_png(&old), Err(LoginError::QrGone));
    assert_eq!(session.poll_status().unwrap().state.as_str(), "failed");

    let again = session.start_login().await.unwrap();
    assert_eq!(again.state, LoginState::NeedQr);
    assert_ne!(qr_id(&again), old);
}

#[tokio::test(start_paused = true)]
async fn a_scan_refreshes_on_update_login_token_and_success_authorizes() {
    let h = Harness::new();
    let session = h.session();
    let first = session.start_login().await.unwrap();
    // The first scan event only refreshes (Telegram sends it on every token change).
    h.script.scan();
    let refreshed = wait_for(&session, |s| s.qr.as_ref().is_some_and(|q| q.id != qr_id(&first))).await;
    assert_eq!(refreshed.state, LoginState::NeedQr);

    h.script.then_export(Ok(LoginStep::Success(h.script.me.clone())));
    h.script.scan();
    let done = wait_for(&session, |s| s.state == LoginState::Authorized).await;
    assert_eq!(done.me.as_ref().map(|m| m.id), Some(1000));
    assert!(done.qr.is_none());
    assert_eq!(session.start_login().await, Err(LoginError::AlreadyAuthorized));
    assert_eq!(session.submit_password("x").await, Err(LoginError::NotWaiting2fa));
    // The update loop runs.
    wait_until(|| h.script.calls().contains(&"next_update".to_string())).await;
}

#[tokio::test(start_paused = true)]
async fn login_token_migration_imports_the_token_on_the_accounts_dc() {
    let h = Harness::new();
    let session = h.session();
    session.start_login().await.unwrap();
    h.script.then_export(Ok(LoginStep::MigrateTo { dc_id: 4, token: b"moved".to_vec() }));
    h.script.then_import(Ok(LoginStep::Success(h.script.me.clone())));
    h.script.scan();
    wait_for(&session, |s| s.state == LoginState::Authorized).await;
    assert!(h.script.calls().contains(&"import:4:moved".to_string()), "{:?}", h.script.calls());
}

#[tokio::test(start_paused = true)]
async fn two_factor_refuses_a_wrong_password_and_accepts_the_right_one() {
    let h = Harness::new();
    let session = h.session();
    assert_eq!(session.submit_password("correct horse").await, Err(LoginError::NotWaiting2fa));
    session.start_login().await.unwrap();
    h.script.then_export(Err(TgError::PasswordNeeded));
    h.script.scan();
    let waiting = wait_for(&session, |s| s.state == LoginState::Need2fa).await;
    assert_eq!(waiting.password_hint.as_deref(), Some("horse"));
    assert!(waiting.qr.is_none());
    // start during need_2fa keeps the state (the page shows the password form).
    assert_eq!(session.start_login().await.unwrap().state, LoginState::Need2fa);

    assert_eq!(session.submit_password("wrong").await, Err(LoginError::BadPassword));
    assert_eq!(session.status().state, LoginState::Need2fa);
    let done = session.submit_password("correct horse").await.unwrap();
    assert_eq!(done.state, LoginState::Authorized);
    assert_eq!(session.submit_password("correct horse").await, Err(LoginError::NotWaiting2fa));
}

#[tokio::test(start_paused = true)]
async fn a_token_born_expired_answers_qr_expired() {
    let h = Harness::new();
    let session = h.session();
    for _ in 0..2 {
        h.script.then_export(Ok(LoginStep::Token { token: b"old".to_vec(), expires: now_s() - 5 }));
    }
    assert_eq!(session.start_login().await, Err(LoginError::QrExpired));
    assert_eq!(session.status().state, LoginState::Failed);
    assert_eq!(session.status().reason.as_deref(), Some("qr_expired"));
}

#[tokio::test(start_paused = true)]
async fn telegram_down_at_start_is_tg_unavailable() {
    let h = Harness::new();
    *h.script.probe.lock().unwrap() = Err(TgError::Network("connection refused".into()));
    assert_eq!(h.session().start_login().await, Err(LoginError::Unavailable("network".into())));
    assert_eq!(h.session().status().state, LoginState::Failed);
}

// ---- sending --------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn to_is_resolved_peer_id_then_user_id_then_username_then_me() {
    let mut h = Harness::new();
    let session = h.authorized().await;
    // The lead wrote first, so Avio knows their username.
    h.script.push(lead_message(1, "Здравствуйте"));
    h.next_incoming().await;
    let lead_peer = TgPeer { kind: TgPeerKind::User, id: 5001, access_hash: Some(77) };
    h.script.peers.lock().unwrap().insert(Target::Username("ivan".into()), lead_peer);

    let mut reply = outbound("5001", "Добрый день!");
    reply.reply_to = Some("1".into());
    let receipt = session.send(&reply).await.unwrap();
    assert_eq!(
        h.script.resolved.lock().unwrap().clone(),
        vec![Target::PeerId(5001), Target::UserId(5001), Target::Username("ivan".into())]
    );
    let (peer, message, id) = h.script.sent.lock().unwrap()[0].clone();
    assert_eq!(peer, lead_peer);
    assert_eq!(message.text, "Добрый день!");
    assert_eq!(message.reply_to, Some(1));
    assert_eq!(receipt.provider_message_id, Some(id.to_string()));

    h.script.resolved.lock().unwrap().clear();
    session.send(&outbound("me", "note")).await.unwrap();
    assert_eq!(h.script.resolved.lock().unwrap().clone(), vec![Target::Me]);

    let missing = session.send(&outbound("@nobody", "hi")).await.unwrap_err();
    assert!(matches!(missing, SendError::RecipientNotFound(_)), "{missing:?}");
}

#[tokio::test(start_paused = true)]
async fn attachments_go_as_photo_or_document_with_the_caption() {
    let h = Harness::new();
    let session = h.authorized().await;
    let file = |name: &str, mime: &str| OutboundFile {
        kind: "file".into(),
        name: name.into(),
        mime: mime.into(),
        bytes: bytes::Bytes::from_static(b"data"),
    };
    let mut message = outbound("me", "Наш каталог");
    message.files = vec![file("photo.jpg", "image/jpeg"), file("offer.pdf", "application/pdf")];
    session.send(&message).await.unwrap();
    let sent = h.script.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    let photo = sent[0].1.file.as_ref().unwrap();
    assert!(photo.as_photo);
    assert_eq!(sent[0].1.text, "Наш каталог", "the caption rides on the first file");
    let doc = sent[1].1.file.as_ref().unwrap();
    assert!(!doc.as_photo);
    assert_eq!((doc.name.as_str(), doc.mime.as_str(), &doc.bytes[..]), ("offer.pdf", "application/pdf", &b"data"[..]));
    assert_eq!(sent[1].1.text, "");
}

#[tokio::test(start_paused = true)]
async fn flood_wait_postpones_the_send_and_peer_flood_alerts() {
    let h = Harness::new();
    let session = h.authorized().await;
    h.script.send_results.lock().unwrap().push_back(TgError::FloodWait(42));
    let error = session.send(&outbound("me", "hi")).await.unwrap_err();
    assert!(matches!(error, SendError::RateLimited(d) if d == Duration::from_secs(42)), "{error:?}");
    assert_eq!(session.status().state, LoginState::Authorized);

    h.script.send_results.lock().unwrap().push_back(TgError::PeerFlood);
    let error = session.send(&outbound("me", "hi")).await.unwrap_err();
    assert_eq!(error.result_code(), "provider_refused");
    let status = session.status();
    assert!(status.peer_flood_at.is_some(), "the operator sees the alert");
    assert!(status.to_json()["peer_flood_at"].is_i64());
}

#[tokio::test(start_paused = true)]
async fn a_revoked_session_fails_the_tenant_and_archives_its_file() {
    let h = Harness::new();
    let session = h.authorized().await;
    assert!(h.session_file().exists());
    h.script.send_results.lock().unwrap().push_back(TgError::SessionGone("SESSION_REVOKED".into()));
    let error = session.send(&outbound("me", "hi")).await.unwrap_err();
    assert!(matches!(&error, SendError::SessionGone(code) if code == "session_revoked"), "{error:?}");
    let status = session.status();
    assert_eq!((status.state, status.reason.as_deref()), (LoginState::Failed, Some("session_revoked")));
    assert!(!h.session_file().exists(), "the dead session is moved aside");
    let archived: Vec<String> = std::fs::read_dir(sessions_dir(h.dir.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("7.session.session_revoked-"))
        .collect();
    assert_eq!(archived.len(), 1);
    // Later sends fail at once, without touching Telegram.
    let sent_before = h.script.sent.lock().unwrap().len();
    assert!(matches!(session.send(&outbound("me", "again")).await, Err(SendError::SessionGone(_))));
    assert_eq!(h.script.sent.lock().unwrap().len(), sent_before);
    // A new login starts over with a fresh file.
    *h.script.probe.lock().unwrap() = Ok(Probe::LoggedOut);
    assert_eq!(session.start_login().await.unwrap().state, LoginState::NeedQr);
}

#[tokio::test(start_paused = true)]
async fn a_revoked_session_seen_by_the_update_loop_fails_the_tenant() {
    let h = Harness::new();
    let session = h.authorized().await;
    h.script.updates_tx.send(Err(TgError::SessionGone("AUTH_KEY_DUPLICATED".into()))).unwrap();
    let status = wait_for(&session, |s| s.state == LoginState::Failed).await;
    assert_eq!(status.reason.as_deref(), Some("auth_key_duplicated"));
    assert!(!h.session_file().exists());
}

#[tokio::test(start_paused = true)]
async fn a_dead_session_stays_failed_across_a_restart_until_a_new_login() {
    let h = Harness::new();
    let session = h.authorized().await;
    h.script.send_results.lock().unwrap().push_back(TgError::SessionGone("SESSION_REVOKED".into()));
    session.send(&outbound("me", "hi")).await.unwrap_err();
    let failed_at = session.status().failed_at.expect("the failure's time");
    assert_eq!(common::file_mode(&h.alerts_file()), 0o600);

    let h = h.restart().await;
    let status = h.session().status();
    assert_eq!(
        (status.state, status.reason.as_deref(), status.failed_at),
        (LoginState::Failed, Some("session_revoked"), Some(failed_at))
    );
    let body = status.to_json();
    assert_eq!((body["state"].clone(), body["failed_at"].clone()), (json!("failed"), json!(failed_at)));
    assert!(body["action"].as_str().unwrap().contains("log in again by QR"), "{body}");
    assert!(matches!(h.session().send(&outbound("me", "x")).await, Err(SendError::SessionGone(_))));
    // The outbox starting the driver does not open a new session behind the operator's back.
    ChannelDriver::start(&*h.session()).await.unwrap();
    assert_eq!(h.session().status().state, LoginState::Failed);
    assert!(!h.session_file().exists());
    // A login attempt that cannot reach Telegram does not end the kept failure.
    *h.script.probe.lock().unwrap() = Err(TgError::Network("down".into()));
    h.session().start_login().await.unwrap_err();
    let status = h.session().status();
    assert_eq!((status.reason.as_deref(), status.failed_at), (Some("network"), None));
    assert!(h.alerts_file().exists());

    // A new login by QR clears the failure, on disk too.
    *h.script.probe.lock().unwrap() = Ok(Probe::LoggedOut);
    let status = h.authorized().await.status();
    assert_eq!((status.failed_at, status.action(), status.reason), (None, None, None));
    assert!(!h.alerts_file().exists());
    let h = h.restart().await;
    wait_for(&h.session(), |s| s.state == LoginState::Authorized).await;
}

#[tokio::test(start_paused = true)]
async fn logout_clears_a_kept_failure() {
    let h = Harness::new();
    let session = h.authorized().await;
    h.script.updates_tx.send(Err(TgError::SessionGone("AUTH_KEY_UNREGISTERED".into()))).unwrap();
    wait_for(&session, |s| s.state == LoginState::Failed).await;
    wait_until(|| h.alerts_file().exists()).await;
    session.logout().await.unwrap();
    assert!(!h.alerts_file().exists());
    let h = h.restart().await;
    let status = h.session().status();
    assert_eq!((status.state.as_str(), status.reason), ("need_qr", None));
}

#[tokio::test(start_paused = true)]
async fn a_session_authorized_after_a_kept_failure_wins_at_restore() {
    // A new login finished but the daemon died before clearing the alerts file.
    let h = Harness::new();
    let dir = sessions_dir(h.dir.path());
    let kept = files::Alerts {
        failed: Some(files::Failure { reason: "session_revoked".into(), at: now_s() - 60 }),
        peer_flood_at: None,
    };
    files::write_alerts(&dir, tenant(7), &kept).unwrap();
    std::fs::write(h.session_file(), b"new login").unwrap();
    *h.script.probe.lock().unwrap() = Ok(Probe::Authorized(h.script.me.clone()));
    h.hub.restore_all().await;
    wait_for(&h.session(), |s| s.state == LoginState::Authorized).await;
    wait_until(|| !h.alerts_file().exists()).await;
}

#[tokio::test(start_paused = true)]
async fn peer_flood_is_kept_across_a_restart_and_clears_after_a_day() {
    let h = Harness::new();
    let session = h.authorized().await;
    h.script.send_results.lock().unwrap().push_back(TgError::PeerFlood);
    session.send(&outbound("me", "hi")).await.unwrap_err();
    let at = session.status().peer_flood_at.expect("alerted");
    let dir = sessions_dir(h.dir.path());
    assert_eq!(files::read_alerts(&dir, tenant(7)).unwrap(), files::Alerts { failed: None, peer_flood_at: Some(at) });
    assert_eq!(common::file_mode(&h.alerts_file()), 0o600);

    let h = h.restart().await;
    let status = wait_for(&h.session(), |s| s.state == LoginState::Authorized).await;
    assert_eq!(status.peer_flood_at, Some(at), "the alert survives the restart");
    assert_eq!(h.session().status().to_json()["peer_flood_at"], json!(at));

    // One older than a day is dropped at restore, with its file.
    h.hub.stop_all().await;
    let stale = now_s() - avio::channels::telegram::manager::PEER_FLOOD_CLEARS_AFTER_S - 60;
    files::write_alerts(&dir, tenant(7), &files::Alerts { failed: None, peer_flood_at: Some(stale) }).unwrap();
    let h = h.restart().await;
    wait_for(&h.session(), |s| s.state == LoginState::Authorized).await;
    assert_eq!(h.session().status().peer_flood_at, None);
    assert!(!h.alerts_file().exists());
}

// ---- incoming -------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn private_messages_become_message_in_with_media_saved_under_the_tenant() {
    let mut h = Harness::new();
    h.authorized().await;
    let mut message = lead_message(41, "Вот фото");
    message.reply_to = Some(40);
    message.media = Some(TgMedia {
        kind: "image".into(),
        mime: Some("image/jpeg".into()),
        file_name: None,
        size: Some(3),
        bytes: Some(bytes::Bytes::from_static(b"jpg")),
    });
    h.script.push(message);
    let incoming = h.next_incoming().await;
    assert_eq!(incoming.channel, Channel::Telegram);
    assert_eq!((incoming.peer.as_str(), incoming.message_id.as_str()), ("5001", "41"));
    assert_eq!(incoming.sender.telegram_user_id.as_deref(), Some("5001"));
    assert_eq!(incoming.sender.telegram_username.as_deref(), Some("ivan"));
    assert_eq!(incoming.text.as_deref(), Some("Вот фото"));
    assert_eq!(incoming.ts, 1_715_683_200);
    assert_eq!(incoming.reply_to.as_deref(), Some("40"));
    assert!(!incoming.from_me);
    let path = incoming.attachments[0].path.clone().unwrap();
    assert_eq!(path, "media/tg-41-image.jpg");
    let on_disk = h.dir.path().join("tenants/7").join(&path);
    assert_eq!(std::fs::read(&on_disk).unwrap(), b"jpg");
    assert_eq!(common::file_mode(&on_disk), 0o600);
}

#[tokio::test(start_paused = true)]
async fn own_messages_sent_elsewhere_are_from_me_but_avios_own_are_not_echoed() {
    let mut h = Harness::new();
    let session = h.authorized().await;
    let receipt = session.send(&outbound("me", "from Avio")).await.unwrap();
    let avio_id: i32 = receipt.provider_message_id.unwrap().parse().unwrap();

    let mut echo = lead_message(avio_id, "from Avio");
    echo.outgoing = true;
    h.script.push(echo);
    let mut from_phone = lead_message(900, "Я отвечу сам");
    from_phone.outgoing = true;
    h.script.push(from_phone);
    let incoming = h.next_incoming().await;
    assert_eq!(incoming.message_id, "900", "the echo of Avio's own send is dropped");
    assert!(incoming.from_me);
    assert_eq!(incoming.peer, "5001");

    // Bots never reach the inbox.
    let mut bot = lead_message(901, "spam");
    bot.from_bot = true;
    h.script.push(bot);
    h.script.push(lead_message(902, "после бота"));
    assert_eq!(h.next_incoming().await.message_id, "902");
}

// ---- restart, watchdog, state saving --------------------------------------------

#[tokio::test(start_paused = true)]
async fn update_state_is_saved_periodically_and_at_stop() {
    let h = Harness::new();
    h.authorized().await;
    tokio::time::sleep(Timing::default().save_every * 3 + Duration::from_secs(1)).await;
    let saves = h.script.calls().iter().filter(|c| *c == "save_state").count();
    assert!(saves >= 3, "{saves}");
    h.hub.stop_all().await;
    let calls = h.script.calls();
    assert_eq!(calls.iter().filter(|c| *c == "save_state").count(), saves + 1);
    assert_eq!(calls.last().map(String::as_str), Some("close"));
    assert!(h.session_file().exists(), "stopping keeps the session");
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_rebuilds_a_stalled_connection() {
    let h = Harness::new();
    let session = h.authorized().await;
    assert_eq!(h.script.opens.load(Ordering::SeqCst), 1);
    *h.script.ping.lock().unwrap() = Ping::Hang;
    let timing = Timing::default();
    tokio::time::sleep(timing.watchdog_idle + timing.ping_timeout + Duration::from_secs(1)).await;
    wait_until(|| h.script.opens.load(Ordering::SeqCst) == 2).await;
    assert_eq!(session.status().state, LoginState::Authorized);
    // A healthy connection is left alone.
    *h.script.ping.lock().unwrap() = Ping::Ok;
    tokio::time::sleep(timing.watchdog_idle * 3).await;
    assert_eq!(h.script.opens.load(Ordering::SeqCst), 2);
    assert!(h.script.calls().iter().filter(|c| *c == "ping").count() >= 3);
}

#[tokio::test(start_paused = true)]
async fn a_silent_update_stream_is_rebuilt_even_though_pings_answer() {
    let h = Harness::new();
    let session = h.authorized().await;
    let timing = Timing::default();
    // Updates keep coming: the connection is left alone for hours.
    for _ in 0..24 {
        tokio::time::sleep(Duration::from_secs(600)).await;
        h.script.updates_tx.send(Ok(TgUpdate::Other)).unwrap();
    }
    assert_eq!(h.script.opens.load(Ordering::SeqCst), 1);
    let pings = h.script.calls().iter().filter(|c| *c == "ping").count();
    assert!(pings >= 20, "{pings}");
    // Nothing comes in while pings still answer: rebuilt once the silence is too long.
    tokio::time::sleep(timing.update_silence_max - timing.watchdog_idle).await;
    assert_eq!(h.script.opens.load(Ordering::SeqCst), 1, "not before update_silence_max");
    tokio::time::sleep(timing.watchdog_idle * 2).await;
    wait_until(|| h.script.opens.load(Ordering::SeqCst) == 2).await;
    assert_eq!(session.status().state, LoginState::Authorized);
}

#[tokio::test(start_paused = true)]
async fn authorized_sessions_are_restored_at_start_and_a_second_process_is_locked_out() {
    let h = Harness::new();
    h.authorized().await;
    // A second process over the same directory while the first holds the session.
    let second_dir = tempfile::tempdir().unwrap();
    let (tx, _events) = mpsc::channel(8);
    let other_script = Script::new();
    *other_script.probe.lock().unwrap() = Ok(Probe::Authorized(other_script.me.clone()));
    let factory: Arc<dyn AccountFactory> = Arc::new(ScriptFactory(other_script.clone()));
    let intruder =
        TelegramHub::new(Some(factory), sessions_dir(h.dir.path()), second_dir.path().into(), tx, Timing::default());
    intruder.restore_all().await;
    let locked = wait_for(&intruder.session(tenant(7)), |s| s.state == LoginState::Failed).await;
    assert_eq!(locked.reason.as_deref(), Some("session_locked"));
    assert_eq!(other_script.opens.load(Ordering::SeqCst), 0, "never opened a session in use");

    // Restart: the first process stops, a new one restores the authorized session.
    h.hub.stop_all().await;
    let Harness { script, dir, .. } = h;
    let restarted = Harness::over(dir, script.clone());
    restarted.hub.restore_all().await;
    let status = wait_for(&restarted.session(), |s| s.state == LoginState::Authorized).await;
    assert_eq!(status.me.map(|m| m.id), Some(1000));
    assert_eq!(script.opens.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_session_revoked_while_the_daemon_was_down_is_archived_at_restore() {
    let h = Harness::new();
    std::fs::create_dir_all(sessions_dir(h.dir.path())).unwrap();
    std::fs::write(h.session_file(), b"old").unwrap();
    *h.script.probe.lock().unwrap() = Ok(Probe::Revoked("SESSION_REVOKED".into()));
    h.hub.restore_all().await;
    let status = wait_for(&h.session(), |s| s.state == LoginState::Failed).await;
    assert_eq!(status.reason.as_deref(), Some("session_revoked"));
    assert!(!h.session_file().exists());
}

#[tokio::test(start_paused = true)]
async fn logout_logs_out_deletes_the_session_and_returns_to_need_qr() {
    let h = Harness::new();
    let session = h.authorized().await;
    let status = session.logout().await.unwrap();
    assert_eq!(status.state.as_str(), "need_qr");
    assert!(!status.authorized());
    assert!(h.script.calls().contains(&"logout".to_string()));
    assert!(!h.session_file().exists());
    assert!(matches!(session.send(&outbound("me", "x")).await, Err(SendError::NotConnected)));
}

async fn wait_until(check: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met");
}

#[test]
fn the_login_url_round_trips_through_the_rendered_png() {
    let url = qr::login_url(&[0xfb, 0xff, 0xfe, 0x01, 0x02, 0x03]);
    assert_eq!(url, "tg://login?token=-__-AQID");
    let png = qr::render_png(&url).unwrap();
    assert_eq!(decode_qr(&png), url);
}

fn decode_qr(png_bytes: &[u8]) -> String {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let width = info.width as usize;
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(width, info.height as usize, |x, y| pixels[y * width + x]);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    grids[0].decode().unwrap().1
}

// ---- the routes (real router, real time) ----------------------------------------

const TG_VARS: &[(&str, &str)] =
    &[("TELEGRAM_API_ID", "12345"), ("TELEGRAM_API_HASH", "0123456789abcdef0123456789abcdef")];

async fn tg_app(script: &Arc<Script>) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = tg_app_in(dir.path(), script, &[]).await;
    (app, dir)
}

/// The app over `data_dir` (a restart when it held an app before).
async fn tg_app_in(data_dir: &Path, script: &Arc<Script>, extra: &[(&str, &str)]) -> TestApp {
    let mut vars: Vec<(&str, &str)> = TG_VARS.to_vec();
    vars.extend([("OUTBOX_ENABLED", "true"), ("OUTBOX_WHITELIST", "*")]);
    vars.extend_from_slice(extra);
    let factory: Arc<dyn AccountFactory> = Arc::new(ScriptFactory(script.clone()));
    let extensions = Extensions { telegram_accounts: Some(factory), ..Default::default() };
    spawn_app_full(data_dir, &vars, extensions).await
}

async fn get_png(app: &TestApp, path: &str) -> (u16, Vec<u8>, Option<String>) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    (status, response.bytes().await.unwrap().to_vec(), kind)
}

async fn health(app: &TestApp, tenant: i64) -> u16 {
    app.admin_get(&format!("/health/tg?tenant={tenant}")).await.0
}

#[tokio::test]
async fn every_tg_route_answers_502_not_configured_without_api_credentials() {
    let app = spawn_app_with(&[]).await;
    let key = app.tenant_with_key(3).await;
    let q = format!("tenant=3&k={key}");
    let expected = json!({"ok": false, "error": "tg_unavailable", "reason": "not_configured"});
    for path in [format!("/pub/tg/start?{q}"), format!("/pub/tg/status?{q}"), format!("/pub/tg/qr.png?{q}&qr_id=x")] {
        assert_eq!(app.get(&path).await, (502, expected.clone()), "{path}");
    }
    assert_eq!(app.post(&format!("/pub/tg/logout?{q}"), &json!({})).await, (502, expected.clone()));
    let two_fa = app.post(&format!("/pub/tg/2fa?k={key}"), &json!({"tenant": 3, "password": "pw"})).await;
    assert_eq!(two_fa, (502, expected.clone()));
    assert_eq!(app.admin_get("/health/tg?tenant=3").await, (502, expected));
    app.stop().await;
}

#[tokio::test]
async fn qr_login_with_2fa_over_http_then_health_and_logout() {
    let script = Script::new();
    let (app, dir) = tg_app(&script).await;
    let key = app.tenant_with_key(7).await;
    let q = format!("tenant=7&k={key}");

    // Auth first: a wrong key is 401, like every /pub route.
    assert_eq!(app.get("/pub/tg/start?tenant=7&k=wrong").await.0, 401);
    assert_eq!(health(&app, 7).await, 503);

    let (status, start) = app.get(&format!("/pub/tg/start?{q}")).await;
    assert_eq!(status, 200, "{start}");
    assert_eq!(start["ok"], true);
    assert_eq!(start["state"], "need_qr");
    assert!(start["expires_at"].as_i64().unwrap() > now_s());
    let qr_id = start["qr_id"].as_str().unwrap().to_string();
    let qr_url = start["qr_url"].as_str().unwrap();
    let expected_prefix = format!("{}/pub/tg/qr.png?tenant=7&qr_id={qr_id}", app.state.config.app_base_url);
    assert!(qr_url.starts_with(&expected_prefix), "{qr_url}");
    assert!(qr_url.contains(&format!("k={key}")));

    // The PNG decodes back to the login URL of the token Telegram gave.
    let (code, png, kind) = get_png(&app, &format!("/pub/tg/qr.png?{q}&qr_id={qr_id}")).await;
    assert_eq!((code, kind.as_deref()), (200, Some("image/png")));
    assert_eq!(decode_qr(&png), qr::login_url(b"token-0"));
    let (status, body) = app.get(&format!("/pub/tg/qr.png?{q}&qr_id=unknown")).await;
    assert_eq!((status, body), (404, json!({"ok": false, "error": "qr_not_found"})));

    let (status, polled) = app.get(&format!("/pub/tg/status?{q}")).await;
    assert_eq!(status, 200);
    assert_eq!(polled["qr_id"], qr_id.as_str());
    assert_eq!((polled["authorized"].clone(), polled["needs_2fa"].clone()), (json!(false), json!(false)));

    let early = app.post(&format!("/pub/tg/2fa?{q}"), &json!({"password": "correct horse"})).await;
    assert_eq!(early, (409, json!({"ok": false, "error": "not_waiting_2fa"})));

    // The phone scans; the account has 2FA.
    script.then_export(Err(TgError::PasswordNeeded));
    script.scan();
    let needs = eventually(Duration::from_secs(10), || async {
        let (_, body) = app.get(&format!("/pub/tg/status?{q}")).await;
        (body["needs_2fa"] == true).then_some(body)
    })
    .await;
    assert_eq!(needs["state"], "need_2fa");
    assert_eq!(needs["qr_id"], Value::Null);
    let (status, body) = app.get(&format!("/pub/tg/qr.png?{q}&qr_id={qr_id}")).await;
    assert_eq!((status, body), (410, json!({"ok": false, "error": "qr_expired"})));

    let wrong = app.post(&format!("/pub/tg/2fa?k={key}"), &json!({"tenant": 7, "password": "wrong"})).await;
    assert_eq!(wrong, (401, json!({"ok": false, "error": "bad_password"})));
    let (status, done) =
        app.post(&format!("/pub/tg/2fa?k={key}"), &json!({"tenant": "7", "password": "correct horse"})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["state"].clone(), done["authorized"].clone()), (json!("authorized"), json!(true)));

    let again = app.get(&format!("/pub/tg/start?{q}")).await;
    assert_eq!(again, (409, json!({"ok": false, "error": "already_authorized"})));
    assert_eq!(health(&app, 7).await, 200);
    let (status, admin) = app.admin_get("/admin/tg/status?tenant=7").await;
    assert_eq!((status, admin["state"].clone(), admin["me"]["id"].clone()), (200, json!("authorized"), json!(1000)));
    assert_eq!(app.admin_get("/health/tg?tenant=99").await.0, 404);

    let session_file = files::session_path(&sessions_dir(dir.path()), tenant(7));
    assert!(session_file.exists());
    assert_eq!(common::file_mode(&session_file), 0o600);
    let (status, out) = app.post(&format!("/pub/tg/logout?{q}"), &json!({})).await;
    assert_eq!((status, out["state"].clone(), out["authorized"].clone()), (200, json!("need_qr"), json!(false)));
    assert!(!session_file.exists());
    assert_eq!(health(&app, 7).await, 503);
    app.stop().await;
}

#[tokio::test]
async fn start_answers_502_qr_expired_when_telegram_hands_out_expired_tokens() {
    let script = Script::new();
    for _ in 0..2 {
        script.then_export(Ok(LoginStep::Token { token: b"stale".to_vec(), expires: now_s() - 60 }));
    }
    let (app, _dir) = tg_app(&script).await;
    let key = app.tenant_with_key(7).await;
    let (status, body) = app.get(&format!("/pub/tg/start?tenant=7&k={key}")).await;
    assert_eq!((status, body), (502, json!({"ok": false, "error": "qr_expired"})));
    let (_, polled) = app.get(&format!("/pub/tg/status?tenant=7&k={key}")).await;
    assert_eq!(polled["state"], "failed");
    app.stop().await;
}

#[tokio::test]
async fn incoming_messages_enter_the_inbox_once_and_replies_go_out_through_the_outbox() {
    let script = Script::new();
    let (app, _dir) = tg_app(&script).await;
    app.tenant_with_key(7).await;
    *script.probe.lock().unwrap() = Ok(Probe::Authorized(script.me.clone()));
    let session = app.state.telegram.session(tenant(7));
    session.start_login().await.unwrap_err();
    assert!(session.status().authorized());

    // Telegram may deliver a message twice (catch-up after a reconnect).
    script.push(lead_message(41, "Сколько стоит диван?"));
    script.push(lead_message(41, "Сколько стоит диван?"));
    script.push(lead_message(42, "И доставка?"));
    let conn = common::db(&app.data_dir);
    eventually(Duration::from_secs(10), || async {
        (common::count(
            &conn,
            "SELECT COUNT(*) FROM messages WHERE channel = 'telegram' AND provider_message_id = '42'",
        ) == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        common::count(&conn, "SELECT COUNT(*) FROM messages WHERE channel = 'telegram' AND provider_message_id = '41'"),
        1
    );

    // A reply to the lead (its contact exists now) through POST /send.
    script
        .peers
        .lock()
        .unwrap()
        .insert(Target::PeerId(5001), TgPeer { kind: TgPeerKind::User, id: 5001, access_hash: Some(9) });
    let (status, body) = app
        .admin_post(
            "/send?wait=true",
            &json!({"tenant": 7, "channel": "telegram", "to": "5001", "text": "Диван — 45 000 ₽", "meta": {"reply_to": "41"}}),
        )
        .await;
    assert_eq!((status, body["ok"].clone()), (200, json!(true)), "{body}");
    let (peer, message, _) = script.sent.lock().unwrap().last().cloned().unwrap();
    assert_eq!(peer.id, 5001);
    assert_eq!(message.text, "Диван — 45 000 ₽");

    // FLOOD_WAIT delays the job; it is neither failed nor dead-lettered.
    script.send_results.lock().unwrap().push_back(TgError::FloodWait(3600));
    let response = app
        .http
        .post(app.url("/send"))
        .header("X-Admin-Token", ADMIN_TOKEN)
        .json(&json!({"tenant": 7, "channel": "telegram", "to": "me", "text": "later"}))
        .send()
        .await
        .unwrap();
    let (status, queued) = common::split(response).await;
    assert_eq!(status, 202, "{queued}");
    let job = queued["job_id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(10), || async { script.send_results.lock().unwrap().is_empty().then_some(()) })
        .await;
    let (_, job_status) = app.admin_get(&format!("/send/{job}")).await;
    assert_ne!(job_status["status"], "failed", "{job_status}");
    assert_ne!(job_status["status"], "sent", "{job_status}");

    // Postponed by the wait Telegram asked for, not by a retry backoff, and not
    // counted as a failed attempt: a 2 s FLOOD_WAIT is tried again after 2 s.
    let tried = script.send_attempts.lock().unwrap().len();
    script.send_results.lock().unwrap().push_back(TgError::FloodWait(2));
    let (status, queued) =
        app.admin_post("/send", &json!({"tenant": 7, "channel": "telegram", "to": "me", "text": "soon"})).await;
    assert_eq!(status, 202, "{queued}");
    let job = queued["job_id"].as_str().unwrap().to_string();
    let done = eventually(Duration::from_secs(15), || async {
        let (_, body) = app.admin_get(&format!("/send/{job}")).await;
        (body["status"] == "sent").then_some(body)
    })
    .await;
    assert_eq!(done["attempts"], 1, "{done}");
    let attempts = script.send_attempts.lock().unwrap()[tried..].to_vec();
    assert_eq!(attempts.len(), 2, "one refused try, one after the wait");
    let waited = attempts[1] - attempts[0];
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(6), "{waited:?}");
    app.stop().await;
}

async fn avioctl(app: &TestApp, args: &[&str]) -> std::process::Output {
    let (url, args): (String, Vec<String>) = (app.base.clone(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_avioctl"))
            .env_clear()
            .env("AVIO_URL", url)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("DATA_DIR", "/nonexistent-avio-test-dir")
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn avioctl_tg_status_and_logout_talk_to_the_daemon() {
    let script = Script::new();
    let (app, _dir) = tg_app(&script).await;
    app.tenant_with_key(7).await;
    *script.probe.lock().unwrap() = Ok(Probe::Authorized(script.me.clone()));
    app.state.telegram.session(tenant(7)).start_login().await.unwrap_err();

    let out = avioctl(&app, &["tg", "status", "--tenant", "7"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("authorized") && stdout.contains("@shop"), "{stdout}");

    let out = avioctl(&app, &["tg", "logout", "--tenant", "7"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(script.calls().contains(&"logout".to_string()));
    let out = avioctl(&app, &["--json", "tg", "status", "--tenant", "7"]).await;
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["state"], "need_qr");

    // A failed session makes `tg status` exit non-zero with the reason.
    script.send_results.lock().unwrap().push_back(TgError::SessionGone("SESSION_REVOKED".into()));
    *script.probe.lock().unwrap() = Ok(Probe::Authorized(script.me.clone()));
    let session = app.state.telegram.session(tenant(7));
    session.start_login().await.unwrap_err();
    session.send(&outbound("me", "x")).await.unwrap_err();
    let out = avioctl(&app, &["tg", "status", "--tenant", "7"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("session_revoked"));
    app.stop().await;
}

#[tokio::test]
async fn a_failed_session_still_says_failed_and_why_after_the_daemon_restarts() {
    let script = Script::new();
    let dir = tempfile::tempdir().unwrap();
    let app = tg_app_in(dir.path(), &script, &[]).await;
    app.tenant_with_key(7).await;
    *script.probe.lock().unwrap() = Ok(Probe::Authorized(script.me.clone()));
    let session = app.state.telegram.session(tenant(7));
    session.start_login().await.unwrap_err();
    script.send_results.lock().unwrap().push_back(TgError::SessionGone("AUTH_KEY_UNREGISTERED".into()));
    session.send(&outbound("me", "x")).await.unwrap_err();
    assert_eq!(session.status().state, LoginState::Failed);
    drop(session);
    app.stop().await;

    let app = tg_app_in(dir.path(), &script, &[]).await;
    let (_, body) = app.admin_get("/admin/key/get?tenant=7").await;
    let q = format!("tenant=7&k={}", body["key"].as_str().unwrap());
    let status = eventually(Duration::from_secs(10), || async {
        let (_, body) = app.get(&format!("/pub/tg/status?{q}")).await;
        (body["state"] == "failed").then_some(body)
    })
    .await;
    assert_eq!(status["reason"], "auth_key_unregistered", "{status}");
    assert!(status["failed_at"].is_i64(), "{status}");
    assert!(status["action"].as_str().unwrap().contains("log in again by QR"), "{status}");
    let (code, admin) = app.admin_get("/admin/tg/status?tenant=7").await;
    assert_eq!(
        (code, admin["state"].clone(), admin["reason"].clone()),
        (200, json!("failed"), json!("auth_key_unregistered"))
    );
    assert_eq!(health(&app, 7).await, 503);
    let out = avioctl(&app, &["tg", "status", "--tenant", "7"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("auth_key_unregistered") && stdout.contains("log in again by QR"), "{stdout}");

    // A new login by QR ends it.
    *script.probe.lock().unwrap() = Ok(Probe::LoggedOut);
    let (code, start) = app.get(&format!("/pub/tg/start?{q}")).await;
    assert_eq!((code, start["state"].clone()), (200, json!("need_qr")), "{start}");
    script.then_export(Ok(LoginStep::Success(script.me.clone())));
    *script.probe.lock().unwrap() = Ok(Probe::Authorized(script.me.clone()));
    script.scan();
    let done = eventually(Duration::from_secs(10), || async {
        let (_, body) = app.get(&format!("/pub/tg/status?{q}")).await;
        (body["state"] == "authorized").then_some(body)
    })
    .await;
    assert_eq!(
        (done["reason"].clone(), done["failed_at"].clone(), done["action"].clone()),
        (Value::Null, Value::Null, Value::Null)
    );
    assert!(!files::alerts_path(&sessions_dir(dir.path()), tenant(7)).exists());
    app.stop().await;
}

/// Collects every log line the current thread emits, at every level.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// The runtime is single-threaded, so the app's tasks log on this thread's subscriber.
#[tokio::test]
async fn the_2fa_password_is_never_logged_or_stored() {
    const RIGHT: &str = "Zebra-Quartz-7731-пароль";
    const WRONG: &str = "Wrong-Kumquat-4410-пароль";
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let script = Script::with_password(RIGHT);
    let dir = tempfile::tempdir().unwrap();
    let app = tg_app_in(dir.path(), &script, &[]).await;
    let key = app.tenant_with_key(7).await;
    let q = format!("tenant=7&k={key}");
    let early = app.post(&format!("/pub/tg/2fa?{q}"), &json!({"password": RIGHT})).await;
    assert_eq!(early.0, 409);
    app.get(&format!("/pub/tg/start?{q}")).await;
    script.then_export(Err(TgError::PasswordNeeded));
    script.scan();
    eventually(Duration::from_secs(10), || async {
        let (_, body) = app.get(&format!("/pub/tg/status?{q}")).await;
        (body["needs_2fa"] == true).then_some(())
    })
    .await;
    let wrong = app.post(&format!("/pub/tg/2fa?{q}"), &json!({"password": WRONG})).await;
    assert_eq!(wrong.0, 401);
    let right = app.post(&format!("/pub/tg/2fa?k={key}"), &json!({"tenant": 7, "password": RIGHT})).await;
    assert_eq!((right.0, right.1["state"].clone()), (200, json!("authorized")));
    app.stop().await;

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("tg_bad_password") && logs.contains("tg_authorized"), "the logs were captured");
    for password in [RIGHT, WRONG] {
        assert!(!logs.contains(password), "a 2FA password was logged");
        let files = files_under(dir.path());
        assert!(files.iter().any(|f| f.ends_with("avio.db")), "{files:?}");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            assert!(!contains(&bytes, password.as_bytes()), "a 2FA password is stored in {}", file.display());
        }
    }
}

#[tokio::test]
async fn a_message_the_account_sent_from_another_app_pauses_the_bot_in_that_dialog() {
    let script = Script::new();
    let dir = tempfile::tempdir().unwrap();
    let app = tg_app_in(dir.path(), &script, &[("BOT_DEBOUNCE_MS", "100")]).await;
    let key = app.tenant_with_key(7).await;
    *script.probe.lock().unwrap() = Ok(Probe::Authorized(script.me.clone()));
    app.state.telegram.session(tenant(7)).start_login().await.unwrap_err();
    for id in [5001, 5002] {
        let peer = TgPeer { kind: TgPeerKind::User, id, access_hash: Some(9) };
        script.peers.lock().unwrap().insert(Target::PeerId(id), peer);
    }
    let sent_to = |id: i64| script.sent.lock().unwrap().iter().filter(|(peer, _, _)| peer.id == id).count();

    // The bot is on: another lead gets an answer.
    let mut other = lead_message(10, "Здравствуйте");
    other.chat_user_id = 5002;
    other.username = Some("petr".into());
    script.push(other);
    eventually(Duration::from_secs(20), || async { (sent_to(5002) == 1).then_some(()) }).await;

    // The manager answers lead 5001 from the phone: an outgoing message Avio did not send.
    let mut from_phone = lead_message(900, "Здравствуйте, это менеджер Ольга");
    from_phone.outgoing = true;
    script.push(from_phone);
    let conn = common::db(&app.data_dir);
    let author = || {
        conn.query_row(
            "SELECT author FROM messages WHERE channel = 'telegram' AND provider_message_id = '900'",
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
    };
    let stored = eventually(Duration::from_secs(10), || async { author() }).await;
    assert_eq!(stored, "operator");
    let (_, dialogs) = app.get(&format!("/pub/dialogs?tenant=7&k={key}")).await;
    let dialog = dialogs["dialogs"].as_array().unwrap().iter().find(|d| d["peer"] == "5001").cloned().unwrap();
    assert_eq!(dialog["bot_paused"], true, "{dialog}");

    // The lead writes: stored, but the bot stays out of the operator's dialog.
    script.push(lead_message(901, "Спасибо, жду"));
    eventually(Duration::from_secs(10), || async {
        (common::count(&conn, "SELECT COUNT(*) FROM messages WHERE provider_message_id = '901' AND author = 'lead'")
            == 1)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sent_to(5001), 0, "no bot reply to 5001");
    assert_eq!(common::count(&conn, "SELECT COUNT(*) FROM messages WHERE peer = '5001' AND author = 'bot'"), 0);
    app.stop().await;
}
