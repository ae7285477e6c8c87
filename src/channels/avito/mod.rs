//! Avito Messenger (SPEC 6.3): the channel driver, token management, connecting
//! (OAuth and the tenant's own credentials), webhook registration, inbound parsing and
//! the backstop poller. Only this module knows Avito's API and JSON.
//!
//! The tenant's connection lives in `tenant.json` under `integrations.avito`
//! ([`AvitoIntegration`]); secret fields are named so `TenantDoc::public_view` strips
//! them. [`Avito`] is the cheap handle the driver, the HTTP handlers and the poller share.

pub mod api;
mod connect;
pub mod inbound;
pub mod poller;
mod send;
pub mod text;
mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::api::{ApiFailure, AvitoApi};
use super::{ChannelDriver, DriverFactory, EventSink, OutboundMessage, SendError, SendReceipt};
use crate::access::Access;
use crate::config::Config;
use crate::domain::TenantId;
use crate::queue::{QueueError, Queues};
use crate::store::StoreError;
use crate::tenants::Tenants;

pub use connect::OAUTH_SCOPE;

/// `integrations.avito.mode` for the agency app's OAuth connection.
pub const MODE_OAUTH: &str = "oauth";
/// `integrations.avito.mode` for the tenant's own `client_id`/`client_secret`.
pub const MODE_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const STATE_CONNECTED: &str = "connected";
/// A refresh failed: the tenant must reconnect (or fix its credentials).
pub const STATE_UNAUTHORIZED: &str = "unauthorized";

/// The tenant's Avito connection as stored in `tenant.json → integrations.avito`.
/// Fields holding secrets have `token`/`secret` in their names, which keeps them out
/// of `/pub/settings/get`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AvitoIntegration {
    #[serde(default)]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token stops working, epoch seconds.
    #[serde(default)]
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The tenant's own app id (own-credentials mode); an identifier, not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Avito's `user_id` of the account: the `{id}` in every messenger path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// [`STATE_CONNECTED`] or [`STATE_UNAUTHORIZED`].
    #[serde(default)]
    pub state: String,
    /// The last failure, for the cabinet; never holds a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub connected_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<String>,
    #[serde(default)]
    pub webhook: WebhookStatus,
}

/// What happened the last time Avio (un)registered its webhook at Avito. The URL is
/// not kept here: it carries the provider token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookStatus {
    /// `registered`, `failed`, `unsubscribed`, or empty before the first attempt.
    #[serde(default)]
    pub state: String,
    /// Avito's HTTP status on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

impl AvitoIntegration {
    pub fn is_connected(&self) -> bool {
        self.access_token.is_some() && self.account_id.is_some() && self.state != STATE_UNAUTHORIZED
    }
}

/// What an Avito operation can end in; callers branch on these.
#[derive(Debug, thiserror::Error)]
pub enum AvitoError {
    /// `AVITO_CLIENT_ID`/`AVITO_CLIENT_SECRET` are unset (needed for OAuth).
    #[error("the Avito app credentials are not configured")]
    NotConfigured,
    #[error("Avito is not connected for this tenant")]
    NotConnected,
    /// The tokens no longer work and refreshing failed: reconnect.
    #[error("Avito authorization failed: {0}")]
    Unauthorized(String),
    /// Avito refused the credentials or the code while connecting.
    #[error("Avito refused the credentials: {0}")]
    InvalidCredentials(String),
    /// Avito answered 4xx (after a refresh, for 401/403).
    #[error("Avito refused the call: HTTP {status}: {detail}")]
    Rejected { status: u16, detail: String },
    #[error("Avito rate limit: retry after {0:?}")]
    RateLimited(Duration),
    /// No answer, a 5xx, or an answer that is not Avito's documented shape.
    #[error("Avito is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl AvitoError {
    /// A call's failure, after any refresh-and-retry.
    fn from_call(failure: ApiFailure) -> Self {
        match failure {
            ApiFailure::Status { status: 429, retry_after, .. } => {
                AvitoError::RateLimited(retry_after.unwrap_or(Duration::from_secs(60)))
            }
            ApiFailure::Status { status, detail, .. } if status < 500 => AvitoError::Rejected { status, detail },
            other => AvitoError::Unavailable(other.to_string()),
        }
    }

    /// The upstream HTTP status, or a word for the log's `status=` field.
    pub fn status_text(&self) -> String {
        match self {
            AvitoError::Rejected { status, .. } => status.to_string(),
            AvitoError::RateLimited(_) => "429".into(),
            AvitoError::Unauthorized(_) => "unauthorized".into(),
            AvitoError::NotConnected => "not_connected".into(),
            AvitoError::NotConfigured => "not_configured".into(),
            AvitoError::InvalidCredentials(_) => "invalid_credentials".into(),
            AvitoError::Unavailable(_) => "unavailable".into(),
            AvitoError::Store(_) | AvitoError::Queue(_) => "internal".into(),
        }
    }

    pub fn send_error(self, chat: &str) -> SendError {
        match self {
            AvitoError::NotConnected => SendError::NotConnected,
            AvitoError::NotConfigured | AvitoError::Unauthorized(_) | AvitoError::InvalidCredentials(_) => {
                SendError::SessionGone(self.to_string())
            }
            AvitoError::RateLimited(delay) => SendError::RateLimited(delay),
            AvitoError::Rejected { status: 404, .. } => SendError::RecipientNotFound(chat.to_string()),
            AvitoError::Rejected { .. } => SendError::Permanent(self.to_string()),
            AvitoError::Unavailable(_) | AvitoError::Store(_) | AvitoError::Queue(_) => {
                SendError::Transient(self.to_string())
            }
        }
    }
}

/// The Avito service: a cheap `Clone` handle shared by the driver, the HTTP handlers and
/// the poller.
#[derive(Clone)]
pub struct Avito {
    config: Arc<Config>,
    api: AvitoApi,
    tenants: Tenants,
    queues: Queues,
    access: Access,
    /// One lock per tenant around token refreshes: Avito issues a new refresh token on
    /// every refresh, so two concurrent refreshes would burn each other's token.
    refresh_locks: Arc<Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Avito {
    pub fn new(config: Arc<Config>, http: reqwest::Client, tenants: Tenants, queues: Queues, access: Access) -> Self {
        let api = AvitoApi::new(http, &config.avito_api_base);
        Self { config, api, tenants, queues, access, refresh_locks: Arc::default() }
    }

    pub fn api(&self) -> &AvitoApi {
        &self.api
    }

    /// The stored connection, if the tenant ever connected.
    pub async fn integration(&self, tenant: TenantId) -> Result<Option<AvitoIntegration>, AvitoError> {
        let Some(doc) = self.tenants.files().read(tenant).await? else { return Ok(None) };
        Ok(parse_integration(doc.integrations.get("avito")))
    }

    /// Read-modify-write of `integrations.avito` under the tenant-file lock.
    async fn update_integration<F>(&self, tenant: TenantId, f: F) -> Result<AvitoIntegration, AvitoError>
    where
        F: FnOnce(&mut AvitoIntegration) + Send + 'static,
    {
        let doc = self
            .tenants
            .files()
            .update(tenant, move |doc| {
                let mut integration = parse_integration(doc.integrations.get("avito")).unwrap_or_default();
                f(&mut integration);
                doc.integrations.insert("avito".into(), serde_json::to_value(&integration).unwrap_or(Value::Null));
            })
            .await?;
        Ok(parse_integration(doc.integrations.get("avito")).unwrap_or_default())
    }

    /// The tenant's last chat, for sends that name no chat (SPEC 5.4).
    pub async fn last_chat(&self, tenant: TenantId) -> Result<Option<String>, AvitoError> {
        let raw = self.queues.kv_get(&last_chat_key(tenant)).await?;
        Ok(raw.map(|b| String::from_utf8_lossy(&b).into_owned()).filter(|c| !c.is_empty()))
    }

    pub async fn remember_chat(&self, tenant: TenantId, chat_id: &str) -> Result<(), AvitoError> {
        self.queues.kv_set(&last_chat_key(tenant), chat_id.as_bytes(), Some(LAST_CHAT_TTL)).await?;
        Ok(())
    }
}

fn parse_integration(value: Option<&Value>) -> Option<AvitoIntegration> {
    value.and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// A chat idle this long is no longer "the last chat" worth replying into.
const LAST_CHAT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn last_chat_key(tenant: TenantId) -> String {
    format!("avito:last_chat:{tenant}")
}

/// One tenant's Avito "session": Avito needs no login session, so start and stop do
/// nothing; sending goes through the shared [`Avito`] handle.
pub struct AvitoChannel {
    tenant: TenantId,
    avito: Avito,
}

impl ChannelDriver for AvitoChannel {
    fn start(&self) -> BoxFuture<'_, Result<Value, SendError>> {
        async move { Ok(self.avito.status(self.tenant).await) }.boxed()
    }

    fn status(&self) -> BoxFuture<'_, Value> {
        async move { self.avito.status(self.tenant).await }.boxed()
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<SendReceipt, SendError>> {
        async move { self.avito.send(self.tenant, message).await }.boxed()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

/// Registered in the app's driver map for `Channel::Avito`.
pub struct AvitoFactory(pub Avito);

impl DriverFactory for AvitoFactory {
    fn create(&self, tenant: TenantId, _events: EventSink) -> Arc<dyn ChannelDriver> {
        Arc::new(AvitoChannel { tenant, avito: self.0.clone() })
    }
}
