//! `/pub/catalog/*` (SPEC 8): upload, job status and the preview of the current catalog.
//! Thin: the multipart stream is handed chunk by chunk to `catalog::upload`.

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{PubTenant, query_map};
use crate::catalog::names::UploadName;
use crate::catalog::upload::{self, UploadError, UploadSink};
use crate::catalog::{self, jobs};

/// Room for the multipart framing and small form fields around the file itself.
const MULTIPART_SLACK: u64 = 64 * 1024;
const PREVIEW_DEFAULT_ROWS: usize = 20;
const PREVIEW_MAX_ROWS: usize = 500;

pub fn routes(state: &AppState) -> Router<AppState> {
    // The route's own cap, a little above the file limit: the file's own bytes are
    // counted exactly while streaming, this bounds everything else in the body.
    let body_cap = state.config.max_upload_size_bytes.saturating_add(MULTIPART_SLACK);
    Router::new()
        .route(
            "/pub/catalog/upload",
            post(upload).layer(DefaultBodyLimit::max(usize::try_from(body_cap).unwrap_or(usize::MAX))),
        )
        .route("/pub/catalog/job", get(job))
        .route("/pub/catalog/preview", get(preview))
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::MissingFile => ApiError::invalid("missing_file"),
            UploadError::EmptyFile => ApiError::code(StatusCode::BAD_REQUEST, "empty_file"),
            UploadError::UnsupportedType => ApiError::code(StatusCode::BAD_REQUEST, "unsupported_type"),
            UploadError::TooLarge { max_size_bytes } => {
                ApiError::code(StatusCode::BAD_REQUEST, "file_too_large").with("max_size_bytes", max_size_bytes)
            }
            UploadError::Malformed(_) => ApiError::invalid("malformed_multipart"),
            UploadError::Io(e) => ApiError::internal(e),
        }
    }
}

/// `POST /pub/catalog/upload?k=&tenant=`: multipart field `file` (or `catalog`).
pub async fn upload(
    State(state): State<AppState>,
    caller: PubTenant,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    match receive_upload(&state, &caller, &headers, multipart).await {
        Ok(job_id) => Json(json!({"ok": true, "job_id": job_id, "state": "queued"})).into_response(),
        Err(e) => {
            // A refusal can come before the body was read to its end; without this the
            // client may reuse a connection the server is about to drop.
            let mut response = e.into_response();
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn receive_upload(
    state: &AppState,
    caller: &PubTenant,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<String> {
    let max_size_bytes = state.config.max_upload_size_bytes;
    // A declared length far past the limit is refused before a byte is stored.
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_size_bytes.saturating_add(MULTIPART_SLACK)) {
        return Err(UploadError::TooLarge { max_size_bytes }.into());
    }
    let Ok(mut multipart) = multipart else { return Err(UploadError::MissingFile.into()) };
    loop {
        let field = multipart.next_field().await.map_err(|e| multipart_error(e, max_size_bytes))?;
        let Some(field) = field else { return Err(UploadError::MissingFile.into()) };
        // Other form fields are skipped unread; the route's body cap bounds them.
        if matches!(field.name(), Some("file" | "catalog")) {
            let job_id = receive(state, caller, field, max_size_bytes).await?;
            // Read the rest of the form (the closing boundary, stray fields) so the
            // connection stays reusable; the body cap bounds this too.
            while let Ok(Some(_)) = multipart.next_field().await {}
            return Ok(job_id);
        }
    }
}

async fn receive(state: &AppState, caller: &PubTenant, mut field: Field<'_>, max_size_bytes: u64) -> ApiResult<String> {
    let raw_name = field.file_name().unwrap_or("").to_string();
    if raw_name.trim().is_empty() {
        // A form submitted without choosing a file still sends the field, nameless.
        return Err(UploadError::MissingFile.into());
    }
    let name = UploadName::parse(&raw_name);
    if name.kind().is_none() {
        return Err(UploadError::UnsupportedType.into());
    }
    let mut sink = UploadSink::create(&state.files, caller.tenant, max_size_bytes).await?;
    let received = stream_into(&mut sink, &mut field, max_size_bytes).await;
    let size = sink.size();
    let refused = match received {
        Err(e) => Some(e),
        Ok(()) if size == 0 => Some(UploadError::EmptyFile.into()),
        Ok(()) => None,
    };
    if let Some(e) = refused {
        sink.discard().await;
        return Err(e);
    }
    let path = sink.finish(&name).await?;
    upload::accept(state, caller.tenant, &name, path, size).await.map_err(ApiError::internal)
}

async fn stream_into(sink: &mut UploadSink, field: &mut Field<'_>, max_size_bytes: u64) -> ApiResult<()> {
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, max_size_bytes))? {
        sink.write(&chunk).await?;
    }
    Ok(())
}

fn multipart_error(e: MultipartError, max_size_bytes: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        UploadError::TooLarge { max_size_bytes }.into()
    } else {
        UploadError::Malformed(e.body_text()).into()
    }
}

/// `GET /pub/catalog/job?job_id=`: the job's status.json; another tenant's job is not found.
pub async fn job(
    State(state): State<AppState>,
    caller: PubTenant,
    parts: axum::http::request::Parts,
) -> ApiResult<Json<Value>> {
    let query = query_map(&parts);
    let raw = query.get("job_id").map(|s| s.trim()).filter(|s| !s.is_empty());
    let Some(raw) = raw else { return Err(ApiError::invalid("missing_job_id")) };
    let not_found = || ApiError::code(StatusCode::NOT_FOUND, "job_not_found");
    // Only a UUID reaches the filesystem, in its canonical spelling.
    let job_id = uuid::Uuid::parse_str(raw).map_err(|_| not_found())?.hyphenated().to_string();
    let status = jobs::read_status(&state.files, caller.tenant, &job_id).await?.ok_or_else(not_found)?;
    let mut body = serde_json::to_value(status).map_err(ApiError::internal)?;
    if let Value::Object(map) = &mut body {
        map.insert("ok".into(), Value::Bool(true));
    }
    Ok(Json(body))
}

/// `GET /pub/catalog/preview?limit=20`: header, first rows and row count of the
/// current catalog CSV.
pub async fn preview(
    State(state): State<AppState>,
    caller: PubTenant,
    parts: axum::http::request::Parts,
) -> ApiResult<Json<Value>> {
    let limit = match query_map(&parts).get("limit").map(|s| s.trim()) {
        None | Some("") => PREVIEW_DEFAULT_ROWS,
        Some(text) => text.parse::<usize>().map_err(|_| ApiError::invalid("invalid_limit"))?.min(PREVIEW_MAX_ROWS),
    };
    let preview = catalog::preview(&state, caller.tenant, limit)
        .await?
        .ok_or_else(|| ApiError::code(StatusCode::NOT_FOUND, "catalog_not_found"))?;
    Ok(Json(json!({"ok": true, "header": preview.header, "rows": preview.rows, "total_rows": preview.total_rows})))
}
