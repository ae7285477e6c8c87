//! Tenants: creation, listing and updates, keeping the database row, the in-memory
//! access list and `tenant.json` in step.

use serde_json::{Map, Value};

use crate::access::Access;
use crate::domain::{TenantId, now_rfc3339};
use crate::store::{Store, StoreError, TenantDoc, TenantFiles};

/// A request to create a tenant, validated.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: Option<TenantId>,
    pub name: String,
    pub passport: Map<String, Value>,
    pub settings: Map<String, Value>,
    pub behavior: Map<String, Value>,
}

/// Changes to a tenant: sections merge key by key, and a `null` value removes a key.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub passport: Option<Map<String, Value>>,
    pub settings: Option<Map<String, Value>>,
    pub behavior: Option<Map<String, Value>>,
}

/// Why a tenant body was refused; the text becomes the 422 `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

const MAX_NAME_CHARS: usize = 200;

fn section(body: &Map<String, Value>, key: &str) -> Result<Option<Map<String, Value>>, Invalid> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(_) => Err(Invalid(format!("{key}_must_be_object"))),
    }
}

fn name(body: &Map<String, Value>, required: bool) -> Result<Option<String>, Invalid> {
    match body.get("name") {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_NAME_CHARS => {
            Ok(Some(s.trim().to_string()))
        }
        _ => Err(Invalid("name_required".into())),
    }
}

impl NewTenant {
    pub fn parse(body: &Value) -> Result<NewTenant, Invalid> {
        let body = body.as_object().ok_or_else(|| Invalid("expected_object".into()))?;
        let id = match body.get("id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(TenantId::from_json(v).ok_or_else(|| Invalid("invalid_tenant".into()))?),
        };
        Ok(NewTenant {
            id,
            name: name(body, true)?.unwrap_or_default(),
            passport: section(body, "passport")?.unwrap_or_default(),
            settings: section(body, "settings")?.unwrap_or_default(),
            behavior: section(body, "behavior")?.unwrap_or_default(),
        })
    }
}

impl TenantPatch {
    /// `allow_name`: the cabinet may edit sections but not rename the tenant.
    pub fn parse(body: &Value, allow_name: bool) -> Result<TenantPatch, Invalid> {
        let body = body.as_object().ok_or_else(|| Invalid("expected_object".into()))?;
        Ok(TenantPatch {
            name: if allow_name { name(body, false)? } else { None },
            passport: section(body, "passport")?,
            settings: section(body, "settings")?,
            behavior: section(body, "behavior")?,
        })
    }

    fn apply(self, doc: &mut TenantDoc) {
        if let Some(name) = self.name {
            doc.name = name;
        }
        for (patch, target) in
            [(self.passport, &mut doc.passport), (self.settings, &mut doc.settings), (self.behavior, &mut doc.behavior)]
        {
            for (key, value) in patch.into_iter().flatten() {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    target.insert(key, value);
                }
            }
        }
    }
}

#[derive(Clone)]
pub struct Tenants {
    store: Store,
    files: TenantFiles,
    access: Access,
}

impl Tenants {
    pub fn new(store: Store, files: TenantFiles, access: Access) -> Self {
        Self { store, files, access }
    }

    pub async fn create(&self, new: NewTenant) -> Result<TenantDoc, StoreError> {
        let row = self.store.create_tenant(new.id, new.name.clone()).await?;
        let now = now_rfc3339();
        let mut behavior = new.behavior;
        behavior.entry("auto_reply_enabled").or_insert(Value::Bool(true));
        let doc = TenantDoc {
            id: row.id,
            name: new.name,
            passport: new.passport,
            settings: new.settings,
            behavior,
            integrations: Map::new(),
            created_at: now.clone(),
            updated_at: now,
            extra: Map::new(),
        };
        self.files.write(doc.clone()).await?;
        self.access.add_tenant(row.id);
        tracing::info!(event = "tenant_created", tenant = %row.id);
        Ok(doc)
    }

    /// The tenant's document; a row whose file went missing gets a fresh file.
    pub async fn get(&self, id: TenantId) -> Result<TenantDoc, StoreError> {
        if let Some(doc) = self.files.read(id).await? {
            return Ok(doc);
        }
        let row = self.store.tenant(id).await?.ok_or(StoreError::TenantNotFound)?;
        let doc = TenantDoc {
            id: row.id,
            name: row.name,
            passport: Map::new(),
            settings: Map::new(),
            behavior: Map::new(),
            integrations: Map::new(),
            created_at: row.created_at.clone(),
            updated_at: row.created_at,
            extra: Map::new(),
        };
        self.files.write(doc.clone()).await?;
        Ok(doc)
    }

    pub async fn list(&self) -> Result<Vec<TenantDoc>, StoreError> {
        let mut docs = Vec::new();
        for row in self.store.list_tenants().await? {
            docs.push(self.get(row.id).await?);
        }
        Ok(docs)
    }

    pub async fn update(&self, id: TenantId, patch: TenantPatch) -> Result<TenantDoc, StoreError> {
        if !self.access.tenant_exists(id) {
            return Err(StoreError::TenantNotFound);
        }
        self.get(id).await?; // recreates a missing file before the update
        if let Some(name) = &patch.name {
            self.store.rename_tenant(id, name.clone()).await?;
        }
        self.files.update(id, move |doc| patch.apply(doc)).await
    }

    pub fn files(&self) -> &TenantFiles {
        &self.files
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_tenant_requires_a_name_and_a_valid_id() {
        assert_eq!(NewTenant::parse(&json!({})).unwrap_err().0, "name_required");
        assert_eq!(NewTenant::parse(&json!({"name": "  "})).unwrap_err().0, "name_required");
        assert_eq!(NewTenant::parse(&json!({"name": "a", "id": "x"})).unwrap_err().0, "invalid_tenant");
        assert_eq!(NewTenant::parse(&json!({"name": "a", "id": 0})).unwrap_err().0, "invalid_tenant");
        assert_eq!(NewTenant::parse(&json!({"name": "a", "passport": []})).unwrap_err().0, "passport_must_be_object");
        let ok = NewTenant::parse(&json!({"name": "Shop", "id": 7, "passport": {"brand": "B"}})).unwrap();
        assert_eq!(ok.id.map(TenantId::get), Some(7));
        assert_eq!(ok.passport["brand"], "B");
    }

    #[test]
    fn patch_merges_and_null_removes() {
        let mut doc: TenantDoc = serde_json::from_value(json!({
            "id": 1, "name": "A", "passport": {"brand": "B", "city": "C"}
        }))
        .unwrap();
        TenantPatch::parse(&json!({"name": "Z", "passport": {"city": null, "agent_name": "Аня"}}), true)
            .unwrap()
            .apply(&mut doc);
        assert_eq!(doc.name, "Z");
        assert_eq!(Value::Object(doc.passport), json!({"brand": "B", "agent_name": "Аня"}));
    }
}
