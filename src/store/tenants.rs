//! SQL for tenants, tenant keys and provider tokens.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::{TenantId, now_rfc3339};

#[derive(Debug, Clone, Serialize)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantKeyRow {
    pub tenant: TenantId,
    pub key: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderTokenRow {
    pub tenant: TenantId,
    pub token: String,
    pub created_at: String,
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn tenant_id(raw: i64) -> rusqlite::Result<TenantId> {
    TenantId::new(raw).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, raw))
}

impl Store {
    /// Inserts a tenant; `id: None` takes the next free id.
    pub async fn create_tenant(&self, id: Option<TenantId>, name: String) -> Result<TenantRow, StoreError> {
        self.run(move |conn| {
            let now = now_rfc3339();
            let tx = conn.transaction()?;
            let id = match id {
                Some(id) => id.get(),
                None => tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM tenants", [], |r| r.get(0))?,
            };
            match tx.execute(
                "INSERT INTO tenants (id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                params![id, name, now],
            ) {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::TenantExists),
                other => other?,
            };
            tx.commit()?;
            Ok(TenantRow { id: tenant_id(id)?, name, created_at: now })
        })
        .await
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        self.run(|conn| {
            let mut stmt = conn.prepare("SELECT id, name, created_at FROM tenants ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| Ok(TenantRow { id: tenant_id(r.get(0)?)?, name: r.get(1)?, created_at: r.get(2)? }))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn tenant(&self, id: TenantId) -> Result<Option<TenantRow>, StoreError> {
        self.run(move |conn| {
            Ok(conn
                .query_row("SELECT id, name, created_at FROM tenants WHERE id = ?1", [id.get()], |r| {
                    Ok(TenantRow { id: tenant_id(r.get(0)?)?, name: r.get(1)?, created_at: r.get(2)? })
                })
                .optional()?)
        })
        .await
    }

    pub async fn rename_tenant(&self, id: TenantId, name: String) -> Result<(), StoreError> {
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE tenants SET name = ?2, updated_at = ?3 WHERE id = ?1",
                params![id.get(), name, now_rfc3339()],
            )?;
            if n == 0 {
                return Err(StoreError::TenantNotFound);
            }
            Ok(())
        })
        .await
    }

    pub async fn tenant_key(&self, tenant: TenantId) -> Result<Option<TenantKeyRow>, StoreError> {
        self.run(move |conn| {
            Ok(conn
                .query_row("SELECT key, created_at FROM tenant_keys WHERE tenant = ?1", [tenant.get()], |r| {
                    Ok(TenantKeyRow { tenant, key: r.get(0)?, created_at: r.get(1)? })
                })
                .optional()?)
        })
        .await
    }

    /// Creates the tenant's one key; `KeyAlreadyExists` while one exists.
    pub async fn create_tenant_key(&self, tenant: TenantId, key: String) -> Result<TenantKeyRow, StoreError> {
        self.run(move |conn| {
            let now = now_rfc3339();
            match conn.execute(
                "INSERT INTO tenant_keys (tenant, key, created_at) VALUES (?1, ?2, ?3)",
                params![tenant.get(), key, now],
            ) {
                Err(e) if is_unique_violation(&e) => Err(StoreError::KeyAlreadyExists),
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                {
                    Err(StoreError::TenantNotFound)
                }
                Err(e) => Err(e.into()),
                Ok(_) => Ok(TenantKeyRow { tenant, key, created_at: now }),
            }
        })
        .await
    }

    /// Deletes the tenant's key; `false` when there was none.
    pub async fn delete_tenant_key(&self, tenant: TenantId) -> Result<bool, StoreError> {
        self.run(move |conn| Ok(conn.execute("DELETE FROM tenant_keys WHERE tenant = ?1", [tenant.get()])? > 0)).await
    }

    pub async fn all_tenant_keys(&self) -> Result<Vec<TenantKeyRow>, StoreError> {
        self.run(|conn| {
            let mut stmt = conn.prepare("SELECT tenant, key, created_at FROM tenant_keys")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(TenantKeyRow { tenant: tenant_id(r.get(0)?)?, key: r.get(1)?, created_at: r.get(2)? })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Inserts the row unless the tenant has one; returns the row that is stored.
    pub async fn upsert_provider_token(&self, row: ProviderTokenRow) -> Result<ProviderTokenRow, StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO provider_tokens (tenant, token, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(tenant) DO NOTHING",
                params![row.tenant.get(), row.token, row.created_at],
            )?;
            Ok(conn.query_row(
                "SELECT token, created_at FROM provider_tokens WHERE tenant = ?1",
                [row.tenant.get()],
                |r| Ok(ProviderTokenRow { tenant: row.tenant, token: r.get(0)?, created_at: r.get(1)? }),
            )?)
        })
        .await
    }

    pub async fn all_provider_tokens(&self) -> Result<Vec<ProviderTokenRow>, StoreError> {
        self.run(|conn| {
            let mut stmt = conn.prepare("SELECT tenant, token, created_at FROM provider_tokens")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(ProviderTokenRow { tenant: tenant_id(r.get(0)?)?, token: r.get(1)?, created_at: r.get(2)? })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
