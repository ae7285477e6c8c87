//! The production [`TelegramAccount`]: grammers-client 0.11 (pinned) over a
//! [`FileSession`]. The only code in Avio that touches grammers types.
//!
//! grammers has no QR login helper, so the login runs the raw calls
//! (`auth.exportLoginToken`, `auth.importLoginToken` after a DC switch,
//! `account.getPassword` + SRP) and repeats the bookkeeping grammers does after a
//! normal login (self user cached, update state saved).

pub mod convert;
pub mod storage;

use std::io::Cursor;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use grammers_client::client::{ClientConfiguration, PasswordToken, UpdateStream};
use grammers_client::message::InputMessage;
use grammers_client::peer::Peer;
use grammers_client::sender::{AutoSleep, ConnectionParams, SenderPoolFatHandle, UpdatesConfiguration};
use grammers_client::session::Session as _;
use grammers_client::session::types::{PeerAuth, PeerId, PeerInfo, PeerKind, PeerRef, UpdateState, UpdatesState};
use grammers_client::session::updates::UpdatesLike;
use grammers_client::update::Update;
use grammers_client::{Client, SenderPool, SignInError, tl};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use self::convert::{RawLoginStep, map_invocation_error};
use self::storage::{FileSession, SessionFileError};
use super::account::{
    AccountFactory, LoginStep, Probe, SelfUser, Target, TelegramAccount, TgError, TgOutgoing, TgPeer, TgPeerKind,
    TgUpdate,
};
use super::files;
use crate::config::TelegramApp;
use crate::domain::{TenantId, now_s};

/// Media above this is not downloaded (the attachment is still recorded).
const MAX_MEDIA_BYTES: u64 = 20 * 1024 * 1024;
/// Flood waits up to this are slept inside grammers; longer ones reach the outbox,
/// which postpones the job instead of holding a worker.
const AUTO_SLEEP_THRESHOLD: Duration = Duration::from_secs(10);

/// Opens grammers accounts with the app's `TELEGRAM_API_ID`/`TELEGRAM_API_HASH`.
pub struct GrammersFactory {
    app: TelegramApp,
}

impl GrammersFactory {
    pub fn new(app: TelegramApp) -> Self {
        GrammersFactory { app }
    }
}

impl AccountFactory for GrammersFactory {
    fn open<'a>(
        &'a self,
        tenant: TenantId,
        session_file: &'a Path,
    ) -> BoxFuture<'a, Result<Arc<dyn TelegramAccount>, TgError>> {
        async move {
            let session = load_session(tenant, session_file).await?;
            let account: Arc<dyn TelegramAccount> = Arc::new(GrammersAccount::start(tenant, &self.app, session));
            Ok(account)
        }
        .boxed()
    }
}

/// Loads the session file; a corrupt one is moved aside and a fresh login starts.
async fn load_session(tenant: TenantId, path: &Path) -> Result<Arc<FileSession>, TgError> {
    let owned = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || FileSession::load(&owned))
        .await
        .map_err(|e| TgError::Other(e.to_string()))?;
    match loaded {
        Ok(session) => Ok(Arc::new(session)),
        Err(SessionFileError::Corrupt(why)) => {
            tracing::error!(event = "tg_session_corrupt", tenant = %tenant, error = %why);
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            let owned = path.to_path_buf();
            tokio::task::spawn_blocking(move || {
                files::archive(&dir, tenant, "corrupt", now_s())?;
                FileSession::load(&owned).map_err(|e| std::io::Error::other(e.to_string()))
            })
            .await
            .map_err(|e| TgError::Other(e.to_string()))?
            .map(Arc::new)
            .map_err(|e| TgError::Other(format!("session file: {e}")))
        }
        Err(e) => Err(TgError::Other(e.to_string())),
    }
}

pub struct GrammersAccount {
    tenant: TenantId,
    api_id: i32,
    api_hash: crate::config::Secret,
    session: Arc<FileSession>,
    client: Client,
    handle: SenderPoolFatHandle,
    runner: Mutex<Option<JoinHandle<()>>>,
    /// Raw updates until login; then handed to the update stream.
    raw_updates: tokio::sync::Mutex<Option<mpsc::Receiver<UpdatesLike>>>,
    stream: tokio::sync::Mutex<Option<UpdateStream>>,
}

impl GrammersAccount {
    fn start(tenant: TenantId, app: &TelegramApp, session: Arc<FileSession>) -> GrammersAccount {
        let params = ConnectionParams {
            device_model: "Avio".into(),
            app_version: env!("CARGO_PKG_VERSION").into(),
            retry_policy: Box::new(AutoSleep {
                tries: NonZeroU32::MIN.saturating_add(1),
                threshold: AUTO_SLEEP_THRESHOLD,
                io_errors_as_flood_of: Some(Duration::from_secs(1)),
            }),
            // Dropped updates are lost messages: give the consumer room.
            updates_channel_capacity: NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN),
            ..Default::default()
        };
        let SenderPool { runner, handle, updates } =
            SenderPool::with_configuration(Arc::clone(&session), app.api_id, params);
        let runner = tokio::spawn(runner.run());
        let client = Client::with_configuration(handle.clone(), ClientConfiguration { auto_cache_peers: true });
        GrammersAccount {
            tenant,
            api_id: app.api_id,
            api_hash: app.api_hash.clone(),
            session,
            client,
            handle,
            runner: Mutex::new(Some(runner)),
            raw_updates: tokio::sync::Mutex::new(Some(updates)),
            stream: tokio::sync::Mutex::new(None),
        }
    }

    async fn invoke<R: tl::RemoteCall>(&self, request: &R) -> Result<R::Return, TgError> {
        self.client.invoke(request).await.map_err(|e| map_invocation_error(&e))
    }

    async fn fetch_me(&self) -> Result<tl::enums::User, TgError> {
        let mut users =
            self.invoke(&tl::functions::users::GetUsers { id: vec![tl::enums::InputUser::UserSelf] }).await?;
        users.pop().ok_or_else(|| TgError::Other("getUsers returned no self user".into()))
    }

    /// What grammers' private `complete_login` does: cache the self user (with its
    /// access hash) and save the update state, so updates start from now.
    async fn finish_login(&self, user: tl::enums::User) -> Result<SelfUser, TgError> {
        let me = convert::self_user(&user);
        let state = self.invoke(&tl::functions::updates::GetState {}).await.ok();
        let info = match PeerInfo::from(&user) {
            PeerInfo::User { id, auth, bot, .. } => PeerInfo::User { id, auth, bot, is_self: Some(true) },
            other => other,
        };
        self.session.cache_peer(info).await.map_err(|e| TgError::Other(e.to_string()))?;
        if let Some(tl::enums::updates::State::State(state)) = state {
            self.session
                .set_update_state(UpdateState::All(UpdatesState {
                    pts: state.pts,
                    qts: state.qts,
                    date: state.date,
                    seq: state.seq,
                    channels: Vec::new(),
                }))
                .await
                .map_err(|e| TgError::Other(e.to_string()))?;
        }
        self.session.flush(true).await.map_err(|e| TgError::Other(e.to_string()))?;
        Ok(me)
    }

    async fn login_answer(&self, answer: tl::enums::auth::LoginToken) -> Result<LoginStep, TgError> {
        match convert::login_step(answer) {
            RawLoginStep::Token { token, expires } => Ok(LoginStep::Token { token, expires }),
            RawLoginStep::MigrateTo { dc_id, token } => Ok(LoginStep::MigrateTo { dc_id, token }),
            RawLoginStep::Success(user) => self.finish_login(*user).await.map(LoginStep::Success),
            RawLoginStep::SignUpRequired => Err(TgError::Other("sign_up_required".into())),
        }
    }

    async fn get_password(&self) -> Result<tl::types::account::Password, TgError> {
        Ok(self.invoke(&tl::functions::account::GetPassword {}).await?.into())
    }

    /// Makes sure the lead's access hash is in the session: a private message that
    /// came as `updateShortMessage` carries none, and without it no reply is possible.
    async fn ensure_peer_known(&self, message: &mut super::account::TgMessage) {
        let Some(peer) = PeerId::user(message.chat_user_id) else { return };
        if matches!(self.session.peer_ref(peer).await, Ok(Some(_))) && message.username.is_some() {
            return;
        }
        let request = tl::functions::messages::GetMessages {
            id: vec![tl::enums::InputMessage::Id(tl::types::InputMessageId { id: message.id })],
        };
        let users = match self.invoke(&request).await {
            Ok(tl::enums::messages::Messages::Messages(m)) => m.users,
            Ok(tl::enums::messages::Messages::Slice(m)) => m.users,
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(event = "tg_peer_fetch_failed", tenant = %self.tenant, error = %e);
                return;
            }
        };
        for user in &users {
            convert::apply_user(message, user);
        }
        let infos: Vec<PeerInfo> = users.iter().map(PeerInfo::from).collect();
        if let Err(e) = self.session.cache_peers(infos).await {
            tracing::warn!(event = "tg_peer_cache_failed", tenant = %self.tenant, error = %e);
        }
    }

    async fn download(&self, media: &grammers_client::media::Media) -> Option<bytes::Bytes> {
        let mut download = self.client.iter_download(media);
        let mut out = Vec::new();
        loop {
            match download.next().await {
                Ok(Some(chunk)) => {
                    out.extend_from_slice(&chunk);
                    if out.len() as u64 > MAX_MEDIA_BYTES {
                        return None;
                    }
                }
                Ok(None) => return Some(out.into()),
                Err(e) => {
                    tracing::warn!(event = "tg_media_download_failed", tenant = %self.tenant, error = %e);
                    return None;
                }
            }
        }
    }

    async fn self_peer(&self) -> Result<TgPeer, TgError> {
        if let Ok(Some(PeerInfo::User { id, auth, .. })) = self.session.peer(PeerId::self_user()).await {
            return Ok(TgPeer { kind: TgPeerKind::User, id, access_hash: auth.map(|a| a.hash()) });
        }
        let user = self.fetch_me().await?;
        let info = PeerInfo::from(&user);
        let _ = self.session.cache_peer(info.clone()).await;
        Ok(TgPeer {
            kind: TgPeerKind::User,
            id: info.id().bare_id_unchecked(),
            access_hash: info.auth().map(|a| a.hash()),
        })
    }
}

fn peer_from_ref(peer: PeerRef) -> TgPeer {
    let kind = match peer.id.kind() {
        PeerKind::User => TgPeerKind::User,
        PeerKind::Chat => TgPeerKind::Chat,
        PeerKind::Channel => TgPeerKind::Channel,
    };
    let hash = peer.auth.hash();
    TgPeer { kind, id: peer.id.bare_id_unchecked(), access_hash: (hash != 0).then_some(hash) }
}

fn peer_to_ref(peer: &TgPeer) -> PeerRef {
    let id = match peer.kind {
        TgPeerKind::User => PeerId::user_unchecked(peer.id),
        TgPeerKind::Chat => PeerId::chat_unchecked(peer.id),
        TgPeerKind::Channel => PeerId::channel_unchecked(peer.id),
    };
    PeerRef { id, auth: peer.access_hash.map(PeerAuth::from_hash).unwrap_or_default() }
}

impl TelegramAccount for GrammersAccount {
    fn probe(&self) -> BoxFuture<'_, Result<Probe, TgError>> {
        async move {
            let had_user = self.session.self_user().is_some();
            match self.invoke(&tl::functions::updates::GetState {}).await {
                Ok(_) => {
                    let me = self.fetch_me().await?;
                    if !had_user {
                        // Authorized but self missing (a crash mid-login): do the bookkeeping now.
                        return self.finish_login(me).await.map(Probe::Authorized);
                    }
                    Ok(Probe::Authorized(convert::self_user(&me)))
                }
                Err(TgError::PasswordNeeded) => Ok(Probe::PasswordNeeded),
                Err(TgError::SessionGone(code)) if had_user => Ok(Probe::Revoked(code)),
                Err(TgError::SessionGone(_)) => Ok(Probe::LoggedOut),
                Err(TgError::Rpc { code: 401, name }) if had_user => Ok(Probe::Revoked(name)),
                Err(TgError::Rpc { code: 401, .. }) => Ok(Probe::LoggedOut),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn export_login_token(&self) -> BoxFuture<'_, Result<LoginStep, TgError>> {
        async move {
            let request = tl::functions::auth::ExportLoginToken {
                api_id: self.api_id,
                api_hash: self.api_hash.expose().to_string(),
                except_ids: Vec::new(),
            };
            let answer = self.invoke(&request).await?;
            self.login_answer(answer).await
        }
        .boxed()
    }

    fn import_login_token(&self, dc_id: i32, token: Vec<u8>) -> BoxFuture<'_, Result<LoginStep, TgError>> {
        async move {
            let old_dc = self.session.home_dc_id().map_err(|e| TgError::Other(e.to_string()))?;
            // The same switch grammers does on a 303 during a normal login.
            self.handle.disconnect_from_dc(old_dc);
            self.session.set_home_dc_id(dc_id).await.map_err(|e| TgError::Other(e.to_string()))?;
            let answer = self.invoke(&tl::functions::auth::ImportLoginToken { token }).await?;
            self.login_answer(answer).await
        }
        .boxed()
    }

    fn login_event(&self) -> BoxFuture<'_, ()> {
        async move {
            let mut raw = self.raw_updates.lock().await;
            let Some(rx) = raw.as_mut() else {
                return futures_util::future::pending().await;
            };
            loop {
                match rx.recv().await {
                    Some(UpdatesLike::Updates(updates)) if convert::has_login_token_update(&updates) => return,
                    Some(_) => {}
                    None => return futures_util::future::pending().await,
                }
            }
        }
        .boxed()
    }

    fn password_hint(&self) -> BoxFuture<'_, Result<Option<String>, TgError>> {
        async move { Ok(self.get_password().await?.hint) }.boxed()
    }

    fn check_password<'a>(&'a self, password: &'a str) -> BoxFuture<'a, Result<SelfUser, TgError>> {
        async move {
            // A fresh SRP challenge per attempt; grammers unwraps these, so check first.
            let info = self.get_password().await?;
            if info.current_algo.is_none() || info.srp_b.is_none() || info.srp_id.is_none() {
                return Err(TgError::Other("unsupported 2fa parameters".into()));
            }
            let client = self.client.clone();
            let password = password.as_bytes().to_vec();
            // In its own task: grammers panics on malformed parameters.
            let outcome =
                tokio::spawn(async move { client.check_password(PasswordToken::new(info), password).await }).await;
            match outcome {
                Ok(Ok(user)) => {
                    let me = convert::self_user(&user.raw);
                    let _ = self.session.flush(true).await;
                    Ok(me)
                }
                Ok(Err(SignInError::InvalidPassword(_))) => Err(TgError::PasswordInvalid),
                Ok(Err(SignInError::Other(e))) => Err(map_invocation_error(&e)),
                Ok(Err(other)) => Err(TgError::Other(other.to_string())),
                Err(_) => Err(TgError::Other("2fa check failed".into())),
            }
        }
        .boxed()
    }

    fn next_update(&self) -> BoxFuture<'_, Result<TgUpdate, TgError>> {
        async move {
            let mut guard = self.stream.lock().await;
            if guard.is_none() {
                let rx = self.raw_updates.lock().await.take().ok_or_else(|| TgError::Other("updates taken".into()))?;
                let stream = self
                    .client
                    .stream_updates(rx, UpdatesConfiguration { catch_up: true })
                    .await
                    .map_err(|e| TgError::Network(e.to_string()))?;
                *guard = Some(stream);
            }
            let Some(stream) = guard.as_mut() else {
                return Err(TgError::Other("no update stream".into()));
            };
            // The state of what was already handed out becomes saveable now.
            if let Err(e) = stream.sync_update_state().await {
                tracing::warn!(event = "tg_sync_state_failed", tenant = %self.tenant, error = %e);
            }
            let update = stream.next().await.map_err(|e| map_invocation_error(&e))?;
            let Update::NewMessage(message) = update else {
                return Ok(TgUpdate::Other);
            };
            let message = message.into_inner();
            let Some(mut mapped) = convert::map_message(&message.raw, self.session.self_user()) else {
                return Ok(TgUpdate::Other);
            };
            if let Some(Peer::User(user)) = message.peer() {
                convert::apply_user(&mut mapped, &user.raw);
            }
            self.ensure_peer_known(&mut mapped).await;
            if let Some(info) = mapped.media.as_mut()
                && info.size.is_none_or(|size| size <= MAX_MEDIA_BYTES)
                && let Some(media) = message.media()
            {
                info.bytes = self.download(&media).await;
            }
            Ok(TgUpdate::Message(Box::new(mapped)))
        }
        .boxed()
    }

    fn save_state(&self) -> BoxFuture<'_, Result<(), TgError>> {
        async move { self.session.flush(false).await.map_err(|e| TgError::Other(e.to_string())) }.boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), TgError>> {
        async move { self.invoke(&tl::functions::updates::GetState {}).await.map(|_| ()) }.boxed()
    }

    fn resolve<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Option<TgPeer>, TgError>> {
        async move {
            match target {
                Target::Me => self.self_peer().await.map(Some),
                Target::PeerId(id) => {
                    let Some(peer) = PeerId::from_bot_api_dialog_id(*id) else { return Ok(None) };
                    let cached = self.session.peer_ref(peer).await.map_err(|e| TgError::Other(e.to_string()))?;
                    Ok(cached.map(peer_from_ref))
                }
                Target::UserId(id) => {
                    let Some(peer) = PeerId::user(*id) else { return Ok(None) };
                    if let Some(cached) =
                        self.session.peer_ref(peer).await.map_err(|e| TgError::Other(e.to_string()))?
                    {
                        return Ok(Some(peer_from_ref(cached)));
                    }
                    // Without a cached hash, Telegram still answers for contacts.
                    let request = tl::functions::users::GetUsers {
                        id: vec![tl::enums::InputUser::User(tl::types::InputUser { user_id: *id, access_hash: 0 })],
                    };
                    let users = match self.invoke(&request).await {
                        Ok(users) => users,
                        Err(TgError::PeerInvalid(_)) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    let Some(user @ tl::enums::User::User(_)) = users.into_iter().next() else { return Ok(None) };
                    let info = PeerInfo::from(&user);
                    let _ = self.session.cache_peer(info.clone()).await;
                    Ok(info.auth().map(|auth| TgPeer {
                        kind: TgPeerKind::User,
                        id: *id,
                        access_hash: Some(auth.hash()),
                    }))
                }
                Target::Username(name) => {
                    let found = self.client.resolve_username(name).await.map_err(|e| map_invocation_error(&e))?;
                    let Some(peer) = found else { return Ok(None) };
                    let peer_ref = peer.to_ref().await.map_err(|e| TgError::Other(e.to_string()))?;
                    Ok(peer_ref.map(peer_from_ref))
                }
            }
        }
        .boxed()
    }

    fn send<'a>(&'a self, peer: &'a TgPeer, message: &'a TgOutgoing) -> BoxFuture<'a, Result<i32, TgError>> {
        async move {
            let mut input = InputMessage::new().text(message.text.clone()).reply_to(message.reply_to);
            if let Some(file) = &message.file {
                let mut reader = Cursor::new(file.bytes.clone());
                let uploaded = self
                    .client
                    .upload_stream(&mut reader, file.bytes.len(), file.name.clone())
                    .await
                    .map_err(|e| TgError::Network(e.to_string()))?;
                // The mime must be set before the media, which reads it.
                input = if file.as_photo { input.photo(uploaded) } else { input.mime_type(&file.mime).file(uploaded) };
            }
            let sent =
                self.client.send_message(peer_to_ref(peer), input).await.map_err(|e| map_invocation_error(&e))?;
            Ok(sent.id())
        }
        .boxed()
    }

    fn logout(&self) -> BoxFuture<'_, Result<(), TgError>> {
        async move {
            match self.invoke(&tl::functions::auth::LogOut {}).await {
                Ok(_) | Err(TgError::SessionGone(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            if let Err(e) = self.session.flush(false).await {
                tracing::warn!(event = "tg_session_flush_failed", tenant = %self.tenant, error = %e);
            }
            self.handle.quit();
            let runner = self.runner.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(runner) = runner {
                runner.abort();
            }
        }
        .boxed()
    }
}
