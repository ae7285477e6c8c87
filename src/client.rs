//! A typed client for the daemon's admin API, used by `avioctl` and the tests.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the daemon at {url}: is it running? (systemctl status avio, or `avio serve`); set AVIO_URL if it listens elsewhere"
    )]
    Unreachable { url: String },
    #[error("the daemon refused the admin token: check ADMIN_TOKEN (environment, --env-file or /etc/avio/avio.env)")]
    BadToken,
    #[error("the daemon answered {status}: {body}")]
    Api { status: StatusCode, body: Value },
    #[error("unexpected answer from the daemon: {0}")]
    Decode(String),
}

#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base_url: &str, admin_token: &str) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap_or_default();
        Self { base: base_url.trim_end_matches('/').to_string(), token: admin_token.to_string(), http }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns the JSON body of a 2xx answer.
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method, &url).header("X-Admin-Token", &self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() || e.is_timeout() {
                ClientError::Unreachable { url: self.base.clone() }
            } else {
                ClientError::Decode(e.to_string())
            }
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| ClientError::Decode(e.to_string()))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status == StatusCode::UNAUTHORIZED
            && body.get("detail").and_then(Value::as_str) == Some("invalid_admin_token")
        {
            return Err(ClientError::BadToken);
        }
        if !status.is_success() {
            return Err(ClientError::Api { status, body });
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.request(Method::DELETE, path, None).await
    }

    pub async fn health(&self) -> Result<Value, ClientError> {
        self.get("/health").await
    }

    pub async fn tenants(&self) -> Result<Value, ClientError> {
        self.get("/admin/tenants").await
    }

    pub async fn tenant(&self, id: i64) -> Result<Value, ClientError> {
        self.get(&format!("/admin/tenants/{id}")).await
    }

    pub async fn create_tenant(&self, body: &Value) -> Result<Value, ClientError> {
        self.post("/admin/tenants", body).await
    }

    pub async fn key_get(&self, tenant: i64) -> Result<Value, ClientError> {
        self.get(&format!("/admin/key/get?tenant={tenant}")).await
    }

    pub async fn key_delete(&self, tenant: i64) -> Result<Value, ClientError> {
        self.delete(&format!("/admin/key?tenant={tenant}")).await
    }

    pub async fn provider_token(&self, tenant: i64) -> Result<Value, ClientError> {
        self.get(&format!("/admin/provider-token/{tenant}")).await
    }
}
