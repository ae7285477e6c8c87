//! Per-tenant files under `DATA_DIR/tenants/<ID>/`: `tenant.json` (brand passport,
//! settings, behavior, integrations) and `provider_token.json`. Files are 0600, their
//! directories 0700, and every write is atomic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{StoreError, fsutil};
use crate::domain::TenantId;

/// `tenant.json`. Unknown top-level keys are kept, so older or hand-edited files
/// survive a round trip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantDoc {
    pub id: TenantId,
    pub name: String,
    #[serde(default)]
    pub passport: Map<String, Value>,
    #[serde(default)]
    pub settings: Map<String, Value>,
    #[serde(default)]
    pub behavior: Map<String, Value>,
    #[serde(default)]
    pub integrations: Map<String, Value>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TenantDoc {
    /// `behavior.auto_reply_enabled` (or the older `auto_reply`), on by default.
    pub fn auto_reply_enabled(&self) -> bool {
        ["auto_reply_enabled", "auto_reply"]
            .iter()
            .find_map(|k| self.behavior.get(*k).and_then(Value::as_bool))
            .unwrap_or(true)
    }

    /// The document as the front sees it: every secret removed (SPEC 4, `/pub/settings/get`).
    pub fn public_view(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        strip_secrets(&mut value);
        value
    }
}

/// Names that hold credentials or session data anywhere in a tenant document.
pub fn is_secret_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("token")
        || n.contains("secret")
        || n.contains("password")
        || n.contains("session")
        || n == "key"
        || n.ends_with("_key")
        || n == "code_verifier"
}

/// Removes secret-named keys recursively.
pub fn strip_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !is_secret_key(k));
            map.values_mut().for_each(strip_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderTokenFile {
    pub tenant: TenantId,
    pub provider_token: String,
    pub created_at: String,
}

/// A cheap handle to the tenant folders.
#[derive(Clone)]
pub struct TenantFiles {
    root: Arc<PathBuf>,
    // Serializes read-modify-write of tenant.json across handlers and jobs.
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

impl TenantFiles {
    pub fn new(data_dir: &Path) -> Self {
        Self { root: Arc::new(data_dir.join("tenants")), write_lock: Arc::new(tokio::sync::Mutex::new(())) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, tenant: TenantId) -> PathBuf {
        self.root.join(tenant.to_string())
    }

    pub fn tenant_json(&self, tenant: TenantId) -> PathBuf {
        self.dir(tenant).join("tenant.json")
    }

    pub fn provider_token_json(&self, tenant: TenantId) -> PathBuf {
        self.dir(tenant).join("provider_token.json")
    }

    pub async fn read(&self, tenant: TenantId) -> Result<Option<TenantDoc>, StoreError> {
        let path = self.tenant_json(tenant);
        blocking(move || read_json::<TenantDoc>(&path)).await
    }

    /// Writes a whole document (creation).
    pub async fn write(&self, doc: TenantDoc) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        let path = self.tenant_json(doc.id);
        blocking(move || write_json(&path, &doc)).await
    }

    /// Read-modify-write under the lock; `TenantNotFound` when the file is missing.
    pub async fn update<F>(&self, tenant: TenantId, f: F) -> Result<TenantDoc, StoreError>
    where
        F: FnOnce(&mut TenantDoc) + Send + 'static,
    {
        let _guard = self.write_lock.lock().await;
        let path = self.tenant_json(tenant);
        blocking(move || {
            let mut doc = read_json::<TenantDoc>(&path)?.ok_or(StoreError::TenantNotFound)?;
            f(&mut doc);
            doc.updated_at = crate::domain::now_rfc3339();
            write_json(&path, &doc)?;
            Ok(doc)
        })
        .await
    }

    pub async fn read_provider_token(&self, tenant: TenantId) -> Result<Option<ProviderTokenFile>, StoreError> {
        let path = self.provider_token_json(tenant);
        blocking(move || read_json::<ProviderTokenFile>(&path)).await
    }

    pub async fn write_provider_token(&self, file: ProviderTokenFile) -> Result<(), StoreError> {
        let path = self.provider_token_json(file.tenant);
        blocking(move || write_json(&path, &file)).await
    }

    /// Every `provider_token.json` on disk (to recreate missing database rows).
    pub async fn all_provider_tokens(&self) -> Result<Vec<ProviderTokenFile>, StoreError> {
        let root = self.root.clone();
        blocking(move || {
            let mut found = Vec::new();
            let entries = match std::fs::read_dir(root.as_path()) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
                Err(e) => return Err(e.into()),
            };
            for entry in entries.flatten() {
                if let Some(file) = read_json::<ProviderTokenFile>(&entry.path().join("provider_token.json"))? {
                    found.push(file);
                }
            }
            Ok(found)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Join(e.to_string()))?
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value)?;
    fsutil::write_private(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn public_view_removes_every_secret() {
        let doc: TenantDoc = serde_json::from_value(json!({
            "id": 1, "name": "Shop",
            "passport": {"brand": "Мебель"},
            "integrations": {"avito": {"access_token": "a", "refresh_token": "r", "client_secret": "s",
                                        "account_id": 5, "expires_at": 10},
                             "telegram": {"session": "x", "password": "p"}},
            "provider_token": "leak"
        }))
        .unwrap();
        let text = doc.public_view().to_string();
        for secret in ["\"a\"", "\"r\"", "\"s\"", "\"x\"", "\"p\"", "leak"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains("account_id"));
        assert!(text.contains("Мебель"));
    }
}
