//! Keys and access (SPEC section 3): tenant keys, `PUBLIC_KEY`, compat mode, provider
//! tokens. Keeps an in-memory copy of every credential so each request is checked
//! without a database round trip, and every check is constant-time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::domain::{TenantId, now_rfc3339};
use crate::secrets::{self, ct_eq};
use crate::store::tenant_files::ProviderTokenFile;
use crate::store::{ProviderTokenRow, Store, StoreError, TenantFiles, TenantKeyRow};

/// Length of generated tenant keys and provider tokens.
pub const TOKEN_LEN: usize = 40;
const COMPAT_WARNING_EVERY: Duration = Duration::from_secs(3600);

/// Which credential opened a `/pub/*` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubAccess {
    TenantKey,
    PublicKey,
    /// `ADMIN_TOKEN` as `?k=` while `PUBLIC_KEY` is unset.
    Compat,
}

#[derive(Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    store: Store,
    files: TenantFiles,
    tenants: RwLock<HashSet<TenantId>>,
    keys: RwLock<HashMap<TenantId, String>>,
    provider_tokens: RwLock<HashMap<TenantId, String>>,
    last_compat_warning: Mutex<Option<Instant>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Access {
    /// Loads credentials and makes the provider-token table and files agree: a row
    /// without its file rewrites the file, a file without its row recreates the row.
    pub async fn load(config: Arc<Config>, store: Store, files: TenantFiles) -> Result<Access, StoreError> {
        let tenants = store.list_tenants().await?.into_iter().map(|t| t.id).collect();
        let keys = store.all_tenant_keys().await?.into_iter().map(|k| (k.tenant, k.key)).collect();
        for file in files.all_provider_tokens().await? {
            store
                .upsert_provider_token(ProviderTokenRow {
                    tenant: file.tenant,
                    token: file.provider_token,
                    created_at: file.created_at,
                })
                .await?;
        }
        let mut provider_tokens = HashMap::new();
        for row in store.all_provider_tokens().await? {
            let on_disk = files.read_provider_token(row.tenant).await.ok().flatten();
            if on_disk.as_ref().map(|f| f.provider_token.as_str()) != Some(row.token.as_str()) {
                files.write_provider_token(token_file(&row)).await?;
            }
            provider_tokens.insert(row.tenant, row.token);
        }
        Ok(Access {
            inner: Arc::new(Inner {
                config,
                store,
                files,
                tenants: RwLock::new(tenants),
                keys: RwLock::new(keys),
                provider_tokens: RwLock::new(provider_tokens),
                last_compat_warning: Mutex::new(None),
            }),
        })
    }

    pub fn tenant_exists(&self, tenant: TenantId) -> bool {
        read(&self.inner.tenants).contains(&tenant)
    }

    /// Records a tenant created through the store.
    pub fn add_tenant(&self, tenant: TenantId) {
        write(&self.inner.tenants).insert(tenant);
    }

    pub fn tenant_ids(&self) -> Vec<TenantId> {
        let mut ids: Vec<_> = read(&self.inner.tenants).iter().copied().collect();
        ids.sort();
        ids
    }

    /// The admin token, from `X-Admin-Token` or `Authorization: Bearer`.
    pub fn is_admin(&self, presented: &str) -> bool {
        self.inner.config.admin_token.matches(presented)
    }

    /// Checks `?k=` for `tenant`; `None` means 401 `invalid_key` (an unknown tenant
    /// answers the same, so keys cannot be used to probe which tenants exist).
    pub fn check_pub(&self, tenant: TenantId, presented: &str) -> Option<PubAccess> {
        if !self.tenant_exists(tenant) {
            return None;
        }
        let tenant_key_ok = read(&self.inner.keys).get(&tenant).is_some_and(|key| ct_eq(key, presented));
        if tenant_key_ok {
            return Some(PubAccess::TenantKey);
        }
        match &self.inner.config.public_key {
            Some(public_key) => public_key.matches(presented).then_some(PubAccess::PublicKey),
            None if self.inner.config.admin_token.matches(presented) => {
                self.warn_compat();
                Some(PubAccess::Compat)
            }
            None => None,
        }
    }

    /// Compat mode works, but each use would flood the log: one warning an hour.
    fn warn_compat(&self) {
        let mut last = self.inner.last_compat_warning.lock().unwrap_or_else(|p| p.into_inner());
        if compat_warning_due(&mut last, Instant::now()) {
            tracing::warn!(
                event = "compat_admin_token_as_public_key",
                hint = "set PUBLIC_KEY so the admin token never travels in URLs"
            );
        }
    }

    /// Tokens accepted on `/internal/*`: `ADMIN_TOKEN`, `WA_WEB_TOKEN`, `WEBHOOK_SECRET`.
    pub fn is_internal(&self, presented: &str) -> bool {
        let config = &self.inner.config;
        // Evaluate all three so timing does not reveal which one matched.
        let admin = config.admin_token.matches(presented);
        let wa = config.wa_web_token.as_ref().is_some_and(|s| s.matches(presented));
        let secret = config.webhook_secret.as_ref().is_some_and(|s| s.matches(presented));
        admin | wa | secret
    }

    pub async fn key(&self, tenant: TenantId) -> Result<Option<TenantKeyRow>, StoreError> {
        self.inner.store.tenant_key(tenant).await
    }

    /// Returns the tenant's key, creating it when there is none.
    pub async fn get_or_create_key(&self, tenant: TenantId) -> Result<TenantKeyRow, StoreError> {
        if let Some(row) = self.inner.store.tenant_key(tenant).await? {
            return Ok(row);
        }
        match self.create_key(tenant, None).await {
            // Another request created it between our read and insert.
            Err(StoreError::KeyAlreadyExists) => {
                self.inner.store.tenant_key(tenant).await?.ok_or(StoreError::KeyAlreadyExists)
            }
            other => other,
        }
    }

    /// Creates (or saves a given) key; `KeyAlreadyExists` while the tenant has one.
    pub async fn create_key(&self, tenant: TenantId, key: Option<String>) -> Result<TenantKeyRow, StoreError> {
        let key = key.unwrap_or_else(|| secrets::token(TOKEN_LEN));
        let row = self.inner.store.create_tenant_key(tenant, key).await?;
        write(&self.inner.keys).insert(tenant, row.key.clone());
        Ok(row)
    }

    pub async fn delete_key(&self, tenant: TenantId) -> Result<bool, StoreError> {
        let deleted = self.inner.store.delete_tenant_key(tenant).await?;
        write(&self.inner.keys).remove(&tenant);
        Ok(deleted)
    }

    /// The tenant's provider token, created (row and file) on first use.
    pub async fn ensure_provider_token(&self, tenant: TenantId) -> Result<ProviderTokenRow, StoreError> {
        let row = self
            .inner
            .store
            .upsert_provider_token(ProviderTokenRow {
                tenant,
                token: secrets::token(TOKEN_LEN),
                created_at: now_rfc3339(),
            })
            .await?;
        let on_disk = self.inner.files.read_provider_token(tenant).await.ok().flatten();
        if on_disk.as_ref().map(|f| f.provider_token.as_str()) != Some(row.token.as_str()) {
            self.inner.files.write_provider_token(token_file(&row)).await?;
        }
        write(&self.inner.provider_tokens).insert(tenant, row.token.clone());
        Ok(row)
    }

    pub fn provider_token(&self, tenant: TenantId) -> Option<String> {
        read(&self.inner.provider_tokens).get(&tenant).cloned()
    }

    /// Checks a provider token presented for `tenant`.
    pub fn check_provider_token(&self, tenant: TenantId, presented: &str) -> bool {
        read(&self.inner.provider_tokens).get(&tenant).is_some_and(|token| ct_eq(token, presented))
    }

    /// The tenant a provider token belongs to (Avito's webhook carries only the token).
    /// Compares against every token so the time does not depend on which one matched.
    pub fn tenant_for_provider_token(&self, presented: &str) -> Option<TenantId> {
        let tokens = read(&self.inner.provider_tokens);
        let mut found = None;
        for (tenant, token) in tokens.iter() {
            if ct_eq(token, presented) {
                found = Some(*tenant);
            }
        }
        found
    }
}

fn token_file(row: &ProviderTokenRow) -> ProviderTokenFile {
    ProviderTokenFile { tenant: row.tenant, provider_token: row.token.clone(), created_at: row.created_at.clone() }
}

/// Whether the compat warning is due at `now`; records it when it is.
fn compat_warning_due(last: &mut Option<Instant>, now: Instant) -> bool {
    if last.is_none_or(|at| now.duration_since(at) >= COMPAT_WARNING_EVERY) {
        *last = Some(now);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn the_compat_warning_is_logged_at_most_once_an_hour() {
        let start = Instant::now();
        let mut last = None;
        assert!(super::compat_warning_due(&mut last, start));
        assert!(!super::compat_warning_due(&mut last, start + Duration::from_secs(1)));
        assert!(!super::compat_warning_due(&mut last, start + Duration::from_secs(3599)));
        assert!(super::compat_warning_due(&mut last, start + Duration::from_secs(3600)));
        assert!(!super::compat_warning_due(&mut last, start + Duration::from_secs(3700)));
    }
}
