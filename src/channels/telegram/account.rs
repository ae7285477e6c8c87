//! The Avio-owned seam around one tenant's Telegram account: the few operations the
//! session manager needs (login by QR, 2FA, updates, sending), in Avio types only.
//!
//! Production implements it on grammers (`super::grammers`); tests implement it with a
//! script, so the whole login state machine and the routes run without Telegram.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::domain::TenantId;

/// The logged-in user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelfUser {
    pub id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
}

/// What a session file holds, as far as Telegram is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Authorized(SelfUser),
    /// The key went through the QR scan but waits for the 2FA password.
    PasswordNeeded,
    /// No user bound to the key (a fresh or never-finished login).
    LoggedOut,
    /// A user was bound but Telegram refuses the key now (`SESSION_REVOKED`…).
    Revoked(String),
}

/// One answer of `auth.exportLoginToken` / `auth.importLoginToken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// Show this token as a QR until `expires` (server time, epoch seconds).
    Token { token: Vec<u8>, expires: i64 },
    /// The account lives on another DC: switch to it and import the token there.
    MigrateTo { dc_id: i32, token: Vec<u8> },
    /// Logged in (the self user and update state are saved in the session).
    Success(SelfUser),
}

/// Telegram errors, sorted by what Avio does about them. [`TgError::code`] is the
/// short reason shown in status and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TgError {
    /// `FLOOD_WAIT_X`, `SLOWMODE_WAIT_X`…: wait this many seconds.
    #[error("flood wait {0} s")]
    FloodWait(u32),
    /// `PEER_FLOOD`: the account may not contact new people for a while.
    #[error("peer flood")]
    PeerFlood,
    /// The key is dead (`AUTH_KEY_UNREGISTERED`, `SESSION_REVOKED`, `AUTH_KEY_DUPLICATED`…).
    #[error("session gone: {0}")]
    SessionGone(String),
    /// `SESSION_PASSWORD_NEEDED`.
    #[error("2fa password needed")]
    PasswordNeeded,
    /// `PASSWORD_HASH_INVALID`.
    #[error("wrong 2fa password")]
    PasswordInvalid,
    /// The recipient cannot be addressed (`PEER_ID_INVALID`, `USERNAME_NOT_OCCUPIED`…).
    #[error("peer invalid: {0}")]
    PeerInvalid(String),
    /// Another Avio process holds this session file.
    #[error("the session file is locked by another process")]
    SessionLocked,
    /// Telegram could not be reached, or the connection dropped.
    #[error("network: {0}")]
    Network(String),
    /// Any other RPC error (`code`, `name` as Telegram sent them).
    #[error("rpc error {code} {name}")]
    Rpc { code: i32, name: String },
    #[error("{0}")]
    Other(String),
}

impl TgError {
    /// Lowercase reason for status pages and logs (`flood_wait`, `session_revoked`…).
    pub fn code(&self) -> String {
        match self {
            TgError::FloodWait(_) => "flood_wait".into(),
            TgError::PeerFlood => "peer_flood".into(),
            TgError::SessionGone(name) => name.to_ascii_lowercase(),
            TgError::PasswordNeeded => "password_needed".into(),
            TgError::PasswordInvalid => "bad_password".into(),
            TgError::PeerInvalid(_) => "peer_invalid".into(),
            TgError::SessionLocked => "session_locked".into(),
            TgError::Network(_) => "network".into(),
            TgError::Rpc { name, .. } => name.to_ascii_lowercase(),
            TgError::Other(_) => "error".into(),
        }
    }
}

/// A media file of an incoming message, downloaded by the account when small enough.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TgMedia {
    /// `image`, `video`, `audio`, `voice`, `sticker` or `file`.
    pub kind: String,
    pub mime: Option<String>,
    pub file_name: Option<String>,
    pub size: Option<u64>,
    /// `None` when the file was too large or the download failed.
    pub bytes: Option<Bytes>,
}

/// A message in a private chat, mapped from Telegram's raw message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TgMessage {
    pub id: i32,
    /// The other side of the private chat (the lead), whoever wrote the message.
    pub chat_user_id: i64,
    /// Sent by this account (from Avio, the phone or another app).
    pub outgoing: bool,
    pub username: Option<String>,
    pub first_name: Option<String>,
    /// The other side is a bot.
    pub from_bot: bool,
    /// Epoch seconds.
    pub date: i64,
    pub text: String,
    pub reply_to: Option<i32>,
    pub media: Option<TgMedia>,
}

/// What [`TelegramAccount::next_update`] hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TgUpdate {
    /// A new message in a private chat with a user.
    Message(Box<TgMessage>),
    /// Anything else (service messages, groups, edits): proof the connection lives.
    Other,
}

/// How an outbound `to` may name a recipient, in SPEC 5.4's resolution order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A Bot API style dialog id known to the session (`123`, `-100123`).
    PeerId(i64),
    /// A user id, with or without a cached access hash.
    UserId(i64),
    Username(String),
    /// Saved Messages.
    Me,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TgPeerKind {
    User,
    Chat,
    Channel,
}

/// A resolved recipient: what the account needs to address it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TgPeer {
    pub kind: TgPeerKind,
    /// The bare id (positive).
    pub id: i64,
    /// `None` when Telegram lets the account address the peer without one.
    pub access_hash: Option<i64>,
}

/// A file to upload from bytes Avio downloaded.
#[derive(Debug, Clone)]
pub struct TgFile {
    pub name: String,
    pub mime: String,
    pub bytes: Bytes,
    /// Send as a compressed photo rather than a document.
    pub as_photo: bool,
}

/// One message to send; the caption is `text` when a file is attached.
#[derive(Debug, Clone, Default)]
pub struct TgOutgoing {
    pub text: String,
    pub file: Option<TgFile>,
    pub reply_to: Option<i32>,
}

/// One tenant's Telegram account. Implementations must allow `next_update` to be
/// pending while other calls run, and `login_event` must not lose an event that
/// arrives while nobody waits.
pub trait TelegramAccount: Send + Sync {
    /// Whether the session is logged in; no side effects.
    fn probe(&self) -> BoxFuture<'_, Result<Probe, TgError>>;
    /// `auth.exportLoginToken`; `Err(PasswordNeeded)` once a scan needs the 2FA password.
    fn export_login_token(&self) -> BoxFuture<'_, Result<LoginStep, TgError>>;
    /// Switches the home DC to `dc_id` and runs `auth.importLoginToken` there.
    fn import_login_token(&self, dc_id: i32, token: Vec<u8>) -> BoxFuture<'_, Result<LoginStep, TgError>>;
    /// Resolves when `updateLoginToken` arrives (the QR was scanned).
    fn login_event(&self) -> BoxFuture<'_, ()>;
    /// `account.getPassword`'s hint.
    fn password_hint(&self) -> BoxFuture<'_, Result<Option<String>, TgError>>;
    /// SRP check of the 2FA password; on success the login bookkeeping is done.
    fn check_password<'a>(&'a self, password: &'a str) -> BoxFuture<'a, Result<SelfUser, TgError>>;
    /// The next update of an authorized session.
    fn next_update(&self) -> BoxFuture<'_, Result<TgUpdate, TgError>>;
    /// Persists the update state (pts/qts) so a restart catches up from there.
    fn save_state(&self) -> BoxFuture<'_, Result<(), TgError>>;
    /// A cheap round trip, for the watchdog.
    fn ping(&self) -> BoxFuture<'_, Result<(), TgError>>;
    /// `Ok(None)` when the target does not name anyone the account can reach.
    fn resolve<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Option<TgPeer>, TgError>>;
    /// Sends one message; returns its Telegram message id.
    fn send<'a>(&'a self, peer: &'a TgPeer, message: &'a TgOutgoing) -> BoxFuture<'a, Result<i32, TgError>>;
    /// `auth.logOut`.
    fn logout(&self) -> BoxFuture<'_, Result<(), TgError>>;
    /// Drops the connection; the session file stays as it is.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Opens a tenant's account over its session file. The manager holds the file's
/// lock while an account is open, so an implementation may assume it is alone.
pub trait AccountFactory: Send + Sync {
    fn open<'a>(
        &'a self,
        tenant: TenantId,
        session_file: &'a Path,
    ) -> BoxFuture<'a, Result<Arc<dyn TelegramAccount>, TgError>>;
}
