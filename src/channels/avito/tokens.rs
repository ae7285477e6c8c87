//! Access tokens: refreshed before they expire, and once when Avito refuses one
//! (401/403), after which the call is retried once. A refused refresh turns the
//! tenant's state to `unauthorized`, which the cabinet shows.

use std::future::Future;

use super::api::ApiFailure;
use super::{Avito, AvitoError, AvitoIntegration, MODE_CLIENT_CREDENTIALS, STATE_CONNECTED, STATE_UNAUTHORIZED};
use crate::domain::{TenantId, now_rfc3339, now_s};

/// A token this close to its expiry (seconds) is refreshed before a call uses it.
pub const REFRESH_MARGIN_S: i64 = 300;
/// Avito documents 24 h; used when an answer lacks `expires_in`.
pub const DEFAULT_TOKEN_TTL_S: i64 = 24 * 3600;

/// Why a refresh is asked for.
#[derive(Debug, Clone, Copy)]
pub enum Refresh<'a> {
    /// The token expires within this many seconds.
    Expiring(i64),
    /// Avito refused this token.
    Refused(&'a str),
    /// Asked for by the tenant (`POST /pub/avito/refresh` after a failure).
    Forced,
}

impl Avito {
    /// The agency app's credentials (`AVITO_CLIENT_ID`/`AVITO_CLIENT_SECRET`).
    pub(super) fn app_credentials(&self) -> Option<(String, String)> {
        let id = self.config.avito_client_id.clone()?;
        let secret = self.config.avito_client_secret.as_ref()?.expose().to_string();
        Some((id, secret))
    }

    fn refresh_lock(&self, tenant: TenantId) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refresh_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(tenant).or_default().clone()
    }

    /// A usable `(access token, account id)`, refreshed first when it expires within
    /// `margin_s` seconds.
    pub async fn access_token_within(&self, tenant: TenantId, margin_s: i64) -> Result<(String, String), AvitoError> {
        let integration = self.integration(tenant).await?.ok_or(AvitoError::NotConnected)?;
        let (Some(token), Some(account)) = (integration.access_token.clone(), integration.account_id.clone()) else {
            return Err(AvitoError::NotConnected);
        };
        if integration.state == STATE_UNAUTHORIZED {
            return Err(AvitoError::Unauthorized(
                integration.last_error.unwrap_or_else(|| "reconnect Avito in the cabinet".into()),
            ));
        }
        if integration.expires_at > 0 && integration.expires_at - now_s() <= margin_s {
            let token = self.refresh(tenant, Refresh::Expiring(margin_s)).await?;
            return Ok((token, account));
        }
        Ok((token, account))
    }

    /// Runs an authorized call; on 401/403 refreshes the token once and retries once.
    pub async fn authed<T, F, Fut>(&self, tenant: TenantId, call: F) -> Result<T, AvitoError>
    where
        F: Fn(String, String) -> Fut,
        Fut: Future<Output = Result<T, ApiFailure>>,
    {
        let (token, account) = self.access_token_within(tenant, REFRESH_MARGIN_S).await?;
        match call(token.clone(), account.clone()).await {
            Err(failure) if failure.is_auth() => {
                tracing::info!(event = "avito_token_rejected", tenant = %tenant, status = failure.status().unwrap_or(0));
                let token = self.refresh(tenant, Refresh::Refused(&token)).await?;
                call(token, account).await.map_err(AvitoError::from_call)
            }
            other => other.map_err(AvitoError::from_call),
        }
    }

    /// Gets a new access token (and, for OAuth, the new refresh token Avito issues
    /// with it) under the tenant's lock. When another task refreshed while this one
    /// waited, its token is used instead of refreshing twice.
    pub async fn refresh(&self, tenant: TenantId, why: Refresh<'_>) -> Result<String, AvitoError> {
        let lock = self.refresh_lock(tenant);
        let _guard = lock.lock().await;
        let current = self.integration(tenant).await?.ok_or(AvitoError::NotConnected)?;
        if let Some(token) = &current.access_token
            && current.state != STATE_UNAUTHORIZED
        {
            let done_meanwhile = match why {
                Refresh::Refused(refused) => refused != token,
                Refresh::Expiring(margin_s) => current.expires_at - now_s() > margin_s,
                Refresh::Forced => false,
            };
            if done_meanwhile {
                return Ok(token.clone());
            }
        }
        self.refresh_locked(tenant, &current).await
    }

    async fn refresh_locked(&self, tenant: TenantId, current: &AvitoIntegration) -> Result<String, AvitoError> {
        let mut form: Vec<(&str, String)> = Vec::with_capacity(4);
        if current.mode == MODE_CLIENT_CREDENTIALS {
            // Own credentials have no refresh token: the grant itself is repeated.
            let (Some(id), Some(secret)) = (current.client_id.clone(), current.client_secret.clone()) else {
                return Err(self.mark_unauthorized(tenant, "own credentials are missing").await);
            };
            form.extend([("grant_type", "client_credentials".into()), ("client_id", id), ("client_secret", secret)]);
        } else {
            let Some((id, secret)) = self.app_credentials() else {
                return Err(self.mark_unauthorized(tenant, "AVITO_CLIENT_ID/AVITO_CLIENT_SECRET are not set").await);
            };
            let Some(refresh_token) = current.refresh_token.clone() else {
                return Err(self.mark_unauthorized(tenant, "no refresh token; reconnect").await);
            };
            form.extend([
                ("grant_type", "refresh_token".into()),
                ("client_id", id),
                ("client_secret", secret),
                ("refresh_token", refresh_token),
            ]);
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match self.api.token(&form).await {
            Ok(grant) => {
                let access_token = grant.access_token.clone();
                let expires_at = now_s() + grant.expires_in.unwrap_or(DEFAULT_TOKEN_TTL_S);
                self.update_integration(tenant, move |i| {
                    i.access_token = Some(grant.access_token);
                    // Avito invalidates the old refresh token: keep the new one.
                    if let Some(refresh_token) = grant.refresh_token {
                        i.refresh_token = Some(refresh_token);
                    }
                    if grant.scope.is_some() {
                        i.scope = grant.scope;
                    }
                    i.expires_at = expires_at;
                    i.state = STATE_CONNECTED.into();
                    i.last_error = None;
                    i.refreshed_at = Some(now_rfc3339());
                })
                .await?;
                tracing::info!(event = "avito_token_refreshed", tenant = %tenant, mode = %current.mode);
                Ok(access_token)
            }
            Err(ApiFailure::Status { status, .. }) if status < 500 && status != 429 => {
                tracing::warn!(event = "avito_token_refresh_failed", tenant = %tenant, status);
                Err(self.mark_unauthorized(tenant, &format!("token refresh refused: HTTP {status}")).await)
            }
            Err(failure) => {
                tracing::warn!(event = "avito_token_refresh_failed", tenant = %tenant, status = "unavailable",
                    error = %failure);
                Err(AvitoError::Unavailable(failure.to_string()))
            }
        }
    }

    /// Records that the tenant must reconnect; returns the error to hand back.
    async fn mark_unauthorized(&self, tenant: TenantId, reason: &str) -> AvitoError {
        let stored = reason.to_string();
        if let Err(e) = self
            .update_integration(tenant, move |i| {
                i.state = STATE_UNAUTHORIZED.into();
                i.last_error = Some(stored);
            })
            .await
        {
            return e;
        }
        tracing::warn!(event = "avito_unauthorized", tenant = %tenant, reason);
        AvitoError::Unauthorized(reason.to_string())
    }
}
