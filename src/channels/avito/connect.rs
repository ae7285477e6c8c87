//! Connecting an Avito account (OAuth with the agency app, or the tenant's own
//! `client_credentials`), the webhook registration that follows, the status the
//! cabinet shows, logout, and the admin's view of subscriptions.

use std::time::Duration;

use serde_json::{Value, json};

use super::api::{ApiFailure, TokenGrant};
use super::inbound::id_text;
use super::tokens::{DEFAULT_TOKEN_TTL_S, REFRESH_MARGIN_S, Refresh};
use super::{
    Avito, AvitoError, AvitoIntegration, MODE_CLIENT_CREDENTIALS, MODE_OAUTH, STATE_CONNECTED, STATE_UNAUTHORIZED,
    WebhookStatus, last_chat_key,
};
use crate::domain::{TenantId, now_rfc3339, now_s, rfc3339};
use crate::secrets;

/// What Avio asks the account for (SPEC 6.3).
pub const OAUTH_SCOPE: &str = "messenger:read,messenger:write,user:read";
/// An OAuth `state` is good for this long, and once.
const STATE_TTL: Duration = Duration::from_secs(600);
const STATE_LEN: usize = 40;

fn state_key(state: &str) -> String {
    format!("avito:oauth_state:{state}")
}

/// A failed `/token/` call while connecting: a 4xx means the code or credentials are bad.
fn grant_failure(failure: ApiFailure) -> AvitoError {
    match failure {
        ApiFailure::Status { status, .. } if status < 500 && status != 429 => {
            AvitoError::InvalidCredentials(format!("the token endpoint answered HTTP {status}"))
        }
        other => AvitoError::from_call(other),
    }
}

impl Avito {
    /// Whether the agency app is configured, so the OAuth button can work.
    pub fn oauth_configured(&self) -> bool {
        self.app_credentials().is_some()
    }

    /// The authorize link for `tenant`, with a fresh single-use `state` that maps back
    /// to the tenant for ten minutes. The state is random and kept server-side, so it
    /// cannot be forged or pointed at another tenant.
    pub async fn authorize_url(&self, tenant: TenantId) -> Result<String, AvitoError> {
        let (client_id, _) = self.app_credentials().ok_or(AvitoError::NotConfigured)?;
        let state = secrets::token(STATE_LEN);
        self.queues.kv_set(&state_key(&state), tenant.to_string().as_bytes(), Some(STATE_TTL)).await?;
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("pro_users_flow", "true"),
            ("client_id", client_id.as_str()),
            ("scope", OAUTH_SCOPE),
            ("state", state.as_str()),
        ])
        .map_err(|e| AvitoError::Unavailable(e.to_string()))?;
        let base = &self.config.avito_auth_url;
        let separator = if base.contains('?') { '&' } else { '?' };
        Ok(format!("{base}{separator}{query}"))
    }

    /// The tenant a callback's `state` was issued for; `None` for a forged, expired or
    /// already used one.
    pub async fn take_oauth_state(&self, state: &str) -> Result<Option<TenantId>, AvitoError> {
        if state.len() != STATE_LEN || !state.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let raw = self.queues.kv_take(&state_key(state)).await?;
        Ok(raw.and_then(|b| TenantId::parse(&String::from_utf8_lossy(&b))))
    }

    /// The OAuth callback: exchanges the code, then stores the connection.
    pub async fn connect_oauth(&self, tenant: TenantId, code: &str) -> Result<Value, AvitoError> {
        let (client_id, client_secret) = self.app_credentials().ok_or(AvitoError::NotConfigured)?;
        let grant = self
            .api
            .token(&[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("client_secret", &client_secret),
                ("code", code),
            ])
            .await
            .map_err(grant_failure)?;
        self.finish_connect(tenant, MODE_OAUTH, grant, None).await
    }

    /// The tenant's own Avito Pro app: the `client_credentials` grant.
    pub async fn connect_own_credentials(
        &self,
        tenant: TenantId,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Value, AvitoError> {
        let grant = self
            .api
            .token(&[("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", client_secret)])
            .await
            .map_err(grant_failure)?;
        let credentials = Some((client_id.to_string(), client_secret.to_string()));
        self.finish_connect(tenant, MODE_CLIENT_CREDENTIALS, grant, credentials).await
    }

    /// Reads the account, stores the connection (replacing any earlier one), switches
    /// auto-reply on, and registers the webhook.
    async fn finish_connect(
        &self,
        tenant: TenantId,
        mode: &'static str,
        grant: TokenGrant,
        credentials: Option<(String, String)>,
    ) -> Result<Value, AvitoError> {
        let account = self.api.account_self(&grant.access_token).await.map_err(|failure| match failure {
            ApiFailure::Status { status: 401 | 403, .. } => {
                AvitoError::InvalidCredentials("the token cannot read the account (scope user:read)".into())
            }
            other => AvitoError::from_call(other),
        })?;
        let account_id = id_text(account.get("id"))
            .ok_or_else(|| AvitoError::Unavailable("accounts/self answered without an id".into()))?;
        let text = |key: &str| account.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let account_login = text("email").or_else(|| text("profile_url")).or_else(|| text("name")).map(str::to_string);
        let account_name = text("name").map(str::to_string);
        let (client_id, client_secret) = credentials.unzip();
        let integration = AvitoIntegration {
            mode: mode.into(),
            access_token: Some(grant.access_token),
            refresh_token: grant.refresh_token,
            expires_at: now_s() + grant.expires_in.unwrap_or(DEFAULT_TOKEN_TTL_S),
            scope: grant.scope,
            client_id,
            client_secret,
            account_id: Some(account_id.clone()),
            account_login,
            account_name,
            state: STATE_CONNECTED.into(),
            last_error: None,
            connected_at: now_rfc3339(),
            refreshed_at: None,
            webhook: WebhookStatus::default(),
        };
        let stored = serde_json::to_value(&integration).unwrap_or(Value::Null);
        // Recreates a tenant.json that went missing before writing into it.
        self.tenants.get(tenant).await?;
        self.tenants
            .files()
            .update(tenant, move |doc| {
                doc.integrations.insert("avito".into(), stored);
                doc.behavior.insert("auto_reply".into(), Value::Bool(true));
                doc.behavior.insert("auto_reply_enabled".into(), Value::Bool(true));
            })
            .await?;
        tracing::info!(event = "avito_connected", tenant = %tenant, mode, account_id = %account_id);
        self.register_webhook(tenant).await?;
        Ok(self.status(tenant).await)
    }

    /// `AVITO_WEBHOOK_URL?token=<provider token>`: the token selects the tenant.
    async fn webhook_url(&self, tenant: TenantId) -> Result<(String, String), AvitoError> {
        let token = self.access.ensure_provider_token(tenant).await?.token;
        let base = &self.config.avito_webhook_url;
        let separator = if base.contains('?') { '&' } else { '?' };
        Ok((format!("{base}{separator}token={token}"), token))
    }

    /// Subscribes Avio's URL at Avito and records the outcome. An upstream failure is
    /// recorded and logged (`avito_webhook_set_failed status=…`), not returned: the
    /// connection itself stands, and the cabinet offers "refresh" to try again.
    pub async fn register_webhook(&self, tenant: TenantId) -> Result<WebhookStatus, AvitoError> {
        let (url, provider_token) = self.webhook_url(tenant).await?;
        let api = &self.api;
        let url_ref = url.as_str();
        let result = self.authed(tenant, |token, _| async move { api.set_webhook(&token, url_ref).await }).await;
        let status = match result {
            Ok(()) => {
                tracing::info!(event = "avito_webhook_set", tenant = %tenant);
                WebhookStatus { state: "registered".into(), status: None, error: None, at: Some(now_rfc3339()) }
            }
            Err(e @ (AvitoError::Store(_) | AvitoError::Queue(_))) => return Err(e),
            Err(e) => {
                // Avito may quote the URL back; the provider token must not reach logs.
                let error = e.to_string().replace(&provider_token, "***");
                let status_text = e.status_text();
                tracing::warn!(event = "avito_webhook_set_failed", status = %status_text, tenant = %tenant,
                    error = %error);
                let upstream = match &e {
                    AvitoError::Rejected { status, .. } => Some(*status),
                    AvitoError::RateLimited(_) => Some(429),
                    _ => None,
                };
                WebhookStatus { state: "failed".into(), status: upstream, error: Some(error), at: Some(now_rfc3339()) }
            }
        };
        let stored = status.clone();
        self.update_integration(tenant, move |i| i.webhook = stored).await?;
        Ok(status)
    }

    /// `POST /pub/avito/refresh`: a fresh token (retrying a refused one) and the
    /// webhook registered again.
    pub async fn refresh_connection(&self, tenant: TenantId) -> Result<Value, AvitoError> {
        let integration =
            self.integration(tenant).await?.filter(|i| i.access_token.is_some()).ok_or(AvitoError::NotConnected)?;
        if integration.state == STATE_UNAUTHORIZED {
            self.refresh(tenant, Refresh::Forced).await?;
        } else {
            self.access_token_within(tenant, REFRESH_MARGIN_S).await?;
        }
        self.register_webhook(tenant).await?;
        Ok(self.status(tenant).await)
    }

    /// Connection, account and webhook state for the cabinet; never a secret.
    pub async fn status(&self, tenant: TenantId) -> Value {
        let integration = match self.integration(tenant).await {
            Ok(integration) => integration,
            Err(e) => {
                tracing::warn!(event = "avito_status_failed", tenant = %tenant, error = %e);
                return json!({"state": "error", "connected": false, "ready": false});
            }
        };
        match integration.filter(|i| i.access_token.is_some()) {
            None => json!({
                "state": "not_connected", "connected": false, "ready": false,
                "oauth_available": self.oauth_configured(), "webhook": WebhookStatus::default(),
            }),
            Some(i) => {
                let state = if i.state == STATE_UNAUTHORIZED { STATE_UNAUTHORIZED } else { STATE_CONNECTED };
                json!({
                    "state": state,
                    "connected": i.is_connected(),
                    "ready": i.is_connected(),
                    "mode": i.mode,
                    "account_id": i.account_id,
                    "account_login": i.account_login,
                    "account_name": i.account_name,
                    "expires_at": (i.expires_at > 0).then(|| rfc3339(i.expires_at)),
                    "connected_at": i.connected_at,
                    "refreshed_at": i.refreshed_at,
                    "last_error": i.last_error,
                    "webhook": i.webhook,
                    "oauth_available": self.oauth_configured(),
                })
            }
        }
    }

    /// Forgets the tenant's Avito tokens. Avio's webhook is unsubscribed first (best
    /// effort), so Avito stops posting for a tenant that left.
    pub async fn logout(&self, tenant: TenantId) -> Result<(), AvitoError> {
        if self.integration(tenant).await?.is_some_and(|i| i.is_connected())
            && let Err(e) = self.unsubscribe(tenant, None).await
        {
            tracing::warn!(event = "avito_unsubscribe_failed", tenant = %tenant, status = %e.status_text());
        }
        self.tenants
            .files()
            .update(tenant, |doc| {
                doc.integrations.remove("avito");
            })
            .await?;
        self.queues.kv_delete(&last_chat_key(tenant)).await?;
        tracing::info!(event = "avito_logged_out", tenant = %tenant);
        Ok(())
    }

    /// The account's webhook subscriptions at Avito: `[{url, version}]`.
    pub async fn subscriptions(&self, tenant: TenantId) -> Result<Vec<Value>, AvitoError> {
        let api = &self.api;
        let value = self.authed(tenant, |token, _| async move { api.subscriptions(&token).await }).await?;
        Ok(value.get("subscriptions").and_then(Value::as_array).cloned().unwrap_or_default())
    }

    /// Unsubscribes `url` (Avio's own webhook when `None`).
    pub async fn unsubscribe(&self, tenant: TenantId, url: Option<String>) -> Result<(), AvitoError> {
        let (own_url, _) = self.webhook_url(tenant).await?;
        let url = url.unwrap_or_else(|| own_url.clone());
        let api = &self.api;
        let url_ref = url.as_str();
        self.authed(tenant, |token, _| async move { api.unsubscribe(&token, url_ref).await }).await?;
        tracing::info!(event = "avito_webhook_unsubscribed", tenant = %tenant, own = url == own_url);
        if url == own_url {
            let status = WebhookStatus { state: "unsubscribed".into(), at: Some(now_rfc3339()), ..Default::default() };
            self.update_integration(tenant, move |i| i.webhook = status).await?;
        }
        Ok(())
    }
}
