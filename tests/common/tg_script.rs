//! A scripted Telegram account for tests that go through the whole daemon (Telegram
//! itself is unreachable from here): the QR login with a scan and the 2FA password,
//! and sends that can be told to fail. `tests/telegram.rs` has the fuller script the
//! session manager's own tests use.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use avio::channels::telegram::account::{
    AccountFactory, LoginStep, Probe, SelfUser, Target, TelegramAccount, TgError, TgOutgoing, TgPeer, TgPeerKind,
    TgUpdate,
};
use avio::domain::{TenantId, now_s};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::Notify;

/// `TELEGRAM_API_ID`/`TELEGRAM_API_HASH`: without them the hub uses no accounts at all.
pub const TG_VARS: &[(&str, &str)] =
    &[("TELEGRAM_API_ID", "12345"), ("TELEGRAM_API_HASH", "0123456789abcdef0123456789abcdef")];

/// What the fake Telegram answers; shared by every account the factory opens.
pub struct Script {
    probe: Mutex<Probe>,
    /// Answers to `export_login_token`; when empty, a fresh token valid for 30 s.
    exports: Mutex<VecDeque<Result<LoginStep, TgError>>>,
    scanned: Notify,
    password: String,
    me: SelfUser,
    send_errors: Mutex<VecDeque<TgError>>,
    sent: Mutex<Vec<TgOutgoing>>,
    next_id: AtomicI32,
    tokens: AtomicI32,
}

impl Script {
    /// An account `@shop` whose cloud password is `password`.
    pub fn new(password: &str) -> Arc<Script> {
        Arc::new(Script {
            probe: Mutex::new(Probe::LoggedOut),
            exports: Mutex::new(VecDeque::new()),
            scanned: Notify::new(),
            password: password.into(),
            me: SelfUser { id: 1000, username: Some("shop".into()), first_name: Some("Shop".into()) },
            send_errors: Mutex::new(VecDeque::new()),
            sent: Mutex::new(Vec::new()),
            next_id: AtomicI32::new(500),
            tokens: AtomicI32::new(0),
        })
    }

    pub fn factory(self: &Arc<Self>) -> Arc<dyn AccountFactory> {
        Arc::new(ScriptFactory(self.clone()))
    }

    /// The phone scans the QR of an account with a 2FA password.
    pub fn scan_needing_password(&self) {
        self.exports.lock().unwrap().push_back(Err(TgError::PasswordNeeded));
        self.scanned.notify_one();
    }

    /// The next send fails with `error`.
    pub fn fail_next_send(&self, error: TgError) {
        self.send_errors.lock().unwrap().push_back(error);
    }

    pub fn sent(&self) -> Vec<TgOutgoing> {
        self.sent.lock().unwrap().clone()
    }
}

struct ScriptedAccount(Arc<Script>);

impl TelegramAccount for ScriptedAccount {
    fn probe(&self) -> BoxFuture<'_, Result<Probe, TgError>> {
        async move { Ok(self.0.probe.lock().unwrap().clone()) }.boxed()
    }

    fn export_login_token(&self) -> BoxFuture<'_, Result<LoginStep, TgError>> {
        async move {
            let next = self.0.exports.lock().unwrap().pop_front();
            next.unwrap_or_else(|| {
                let n = self.0.tokens.fetch_add(1, Ordering::SeqCst);
                Ok(LoginStep::Token { token: format!("token-{n}").into_bytes(), expires: now_s() + 30 })
            })
        }
        .boxed()
    }

    fn import_login_token(&self, _dc_id: i32, _token: Vec<u8>) -> BoxFuture<'_, Result<LoginStep, TgError>> {
        async move { Ok(LoginStep::Success(self.0.me.clone())) }.boxed()
    }

    fn login_event(&self) -> BoxFuture<'_, ()> {
        self.0.scanned.notified().boxed()
    }

    fn password_hint(&self) -> BoxFuture<'_, Result<Option<String>, TgError>> {
        async { Ok(Some("любимый сорт чая".into())) }.boxed()
    }

    fn check_password<'a>(&'a self, password: &'a str) -> BoxFuture<'a, Result<SelfUser, TgError>> {
        async move {
            if password != self.0.password {
                return Err(TgError::PasswordInvalid);
            }
            *self.0.probe.lock().unwrap() = Probe::Authorized(self.0.me.clone());
            Ok(self.0.me.clone())
        }
        .boxed()
    }

    fn next_update(&self) -> BoxFuture<'_, Result<TgUpdate, TgError>> {
        futures_util::future::pending().boxed()
    }

    fn save_state(&self) -> BoxFuture<'_, Result<(), TgError>> {
        async { Ok(()) }.boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), TgError>> {
        async { Ok(()) }.boxed()
    }

    fn resolve<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Option<TgPeer>, TgError>> {
        async move {
            Ok((*target == Target::Me).then(|| TgPeer {
                kind: TgPeerKind::User,
                id: self.0.me.id,
                access_hash: Some(1),
            }))
        }
        .boxed()
    }

    fn send<'a>(&'a self, _peer: &'a TgPeer, message: &'a TgOutgoing) -> BoxFuture<'a, Result<i32, TgError>> {
        async move {
            if let Some(error) = self.0.send_errors.lock().unwrap().pop_front() {
                return Err(error);
            }
            self.0.sent.lock().unwrap().push(message.clone());
            Ok(self.0.next_id.fetch_add(1, Ordering::SeqCst))
        }
        .boxed()
    }

    fn logout(&self) -> BoxFuture<'_, Result<(), TgError>> {
        async move {
            *self.0.probe.lock().unwrap() = Probe::LoggedOut;
            Ok(())
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

/// Opens scripted accounts; like the real one, it leaves a session file behind.
struct ScriptFactory(Arc<Script>);

impl AccountFactory for ScriptFactory {
    fn open<'a>(
        &'a self,
        _tenant: TenantId,
        session_file: &'a Path,
    ) -> BoxFuture<'a, Result<Arc<dyn TelegramAccount>, TgError>> {
        async move {
            if !session_file.exists() {
                avio::store::fsutil::write_private(session_file, b"scripted").unwrap();
            }
            let account: Arc<dyn TelegramAccount> = Arc::new(ScriptedAccount(self.0.clone()));
            Ok(account)
        }
        .boxed()
    }
}
