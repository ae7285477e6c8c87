//! Catalog upload and conversion through the real daemon (SPEC 8): every error body,
//! conversions of the committed corpus, the size limit, hostile names and files, the
//! job route, the preview, `/pub/settings/get`, and `avioctl catalog convert`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const JOB_TIMEOUT: Duration = Duration::from_secs(120);
const HEADER: &str = "sku,name,category,price,currency,unit,stock,url,description";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/catalog_corpus/fixtures").join(name)
}

/// One multipart part: field name, optional file name, bytes.
struct Part<'a> {
    name: &'a str,
    file_name: Option<&'a str>,
    bytes: Vec<u8>,
}

fn file_part<'a>(name: &'a str, file_name: &'a str, bytes: Vec<u8>) -> Part<'a> {
    Part { name, file_name: Some(file_name), bytes }
}

/// A multipart body written by hand, so file names reach the server exactly as a
/// browser would send them (raw UTF-8, a single backslash).
fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "avio-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for part in parts {
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"", part.name).unwrap();
        if let Some(file_name) = part.file_name {
            write!(body, "; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream").unwrap();
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(&part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_parts(app: &TestApp, query: &str, parts: &[Part<'_>]) -> (u16, Value) {
    let (content_type, body) = multipart(parts);
    let response = app
        .http
        .post(app.url(&format!("/pub/catalog/upload?{query}")))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    split(response).await
}

async fn upload(app: &TestApp, tenant: i64, key: &str, file_name: &str, bytes: Vec<u8>) -> (u16, Value) {
    post_parts(app, &format!("tenant={tenant}&k={key}"), &[file_part("file", file_name, bytes)]).await
}

/// Uploads and returns the job id, asserting SPEC's success body.
async fn upload_ok(app: &TestApp, tenant: i64, key: &str, file_name: &str, bytes: Vec<u8>) -> String {
    let (status, body) = upload(app, tenant, key, file_name, bytes).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["state"], "queued");
    let job_id = body["job_id"].as_str().unwrap().to_string();
    assert!(uuid_like(&job_id), "{job_id}");
    job_id
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.chars().filter(|c| *c == '-').count() == 4
}

/// Polls the job route until the job is done or failed.
async fn finished_job(app: &TestApp, tenant: i64, key: &str, job_id: &str) -> Value {
    let path = format!("/pub/catalog/job?tenant={tenant}&k={key}&job_id={job_id}");
    eventually(JOB_TIMEOUT, || async {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{body}");
        matches!(body["state"].as_str(), Some("done" | "failed")).then_some(body)
    })
    .await
}

fn tenant_dir(app: &TestApp, tenant: i64) -> PathBuf {
    app.data_dir.join("tenants").join(tenant.to_string())
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Names in `uploads/`, temp files included.
fn upload_names(app: &TestApp, tenant: i64) -> Vec<String> {
    match std::fs::read_dir(tenant_dir(app, tenant).join("uploads")) {
        Ok(entries) => {
            let mut names: Vec<String> =
                entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

/// Windows-1251 for the Cyrillic and ASCII this test writes.
fn cp1251(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            'А'..='я' => (c as u32 - 'А' as u32 + 0xC0) as u8,
            'Ё' => 0xA8,
            'ё' => 0xB8,
            c if c.is_ascii() => c as u8,
            other => panic!("no cp1251 byte for {other:?} in this helper"),
        })
        .collect()
}

fn small_price_list() -> Vec<u8> {
    cp1251(
        "Прайс-лист на сегодня\r\n\
         Артикул;Наименование;Цена;Ед.;Остаток\r\n\
         СТ-001;Стул дубовый;1 234,50;шт;5\r\n\
         СТ-002;Стол обеденный \"Ёлка\";12 990,00;шт;2\r\n\
         СТ-003;Полка настенная;499;шт;0\r\n",
    )
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
    reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect()
}

async fn assert_healthy(app: &TestApp) {
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_refuses_a_wrong_key_and_a_bad_tenant_with_spec_bodies() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let csv = small_price_list();

    let unknown_tenant = format!("tenant=99&k={key}");
    for query in ["tenant=1&k=wrong", "tenant=1", "tenant=99&k=", unknown_tenant.as_str()] {
        let (status, body) = post_parts(&app, query, &[file_part("file", "a.csv", csv.clone())]).await;
        assert_eq!((status, body), (401, json!({"detail": "invalid_key"})), "{query}");
    }
    for query in [format!("k={key}"), format!("tenant=abc&k={key}"), format!("tenant=-1&k={key}")] {
        let (status, body) = post_parts(&app, &query, &[file_part("file", "a.csv", csv.clone())]).await;
        assert_eq!(
            (status, body),
            (422, json!({"ok": false, "error": "invalid_payload", "reason": "invalid_tenant"})),
            "{query}"
        );
    }
    // The global PUBLIC_KEY opens any tenant's upload.
    upload_ok(&app, 1, PUBLIC_KEY, "a.csv", csv).await;
    assert!(upload_names(&app, 1).iter().all(|n| !n.ends_with(".part")));
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_without_a_file_answers_missing_file() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let query = format!("tenant=1&k={key}");
    let missing = json!({"ok": false, "error": "invalid_payload", "reason": "missing_file"});

    // Only unrelated fields.
    let parts = [Part { name: "comment", file_name: None, bytes: b"hello".to_vec() }];
    assert_eq!(post_parts(&app, &query, &parts).await, (422, missing.clone()));
    // The right field, but no file chosen (what a browser sends for an empty input).
    assert_eq!(post_parts(&app, &query, &[file_part("file", "", Vec::new())]).await, (422, missing.clone()));
    // A file under another field name.
    assert_eq!(
        post_parts(&app, &query, &[file_part("upload", "a.csv", small_price_list())]).await,
        (422, missing.clone())
    );
    // Not a multipart body at all.
    let (status, body) = app.post(&format!("/pub/catalog/upload?{query}"), &json!({"file": "a.csv"})).await;
    assert_eq!((status, body), (422, missing));

    // `catalog` is accepted as the field name, after other fields.
    let parts = [
        Part { name: "comment", file_name: None, bytes: b"hello".to_vec() },
        file_part("catalog", "price.csv", small_price_list()),
    ];
    let (status, body) = post_parts(&app, &query, &parts).await;
    assert_eq!(status, 200, "{body}");
    let job = finished_job(&app, 1, &key, body["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "done", "{job}");
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_and_unsupported_files_are_refused_and_not_kept() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;

    let (status, body) = upload(&app, 1, &key, "price.csv", Vec::new()).await;
    assert_eq!((status, body), (400, json!({"ok": false, "error": "empty_file"})));

    for name in ["price.exe", "price.txt", "price", "price.xlsm", "price.csv.sh", ".."] {
        let (status, body) = upload(&app, 1, &key, name, b"sku;name\n1;a\n".to_vec()).await;
        assert_eq!((status, body), (400, json!({"ok": false, "error": "unsupported_type"})), "{name}");
    }
    // Upper-case extensions are the same type.
    upload_ok(&app, 1, &key, "PRICE.CSV", small_price_list()).await;
    assert_eq!(upload_names(&app, 1), vec!["PRICE.csv".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_size_limit_is_enforced_while_streaming() {
    let app = spawn_app_with(&[("MAX_UPLOAD_SIZE_BYTES", "1000")]).await;
    let key = app.tenant_with_key(1).await;
    let too_large = json!({"ok": false, "error": "file_too_large", "max_size_bytes": 1000});

    // One byte over, with a Content-Length close to the limit: caught by counting.
    let (status, body) = upload(&app, 1, &key, "price.csv", vec![b'a'; 1001]).await;
    assert_eq!((status, body), (400, too_large.clone()));
    // Far over the limit: refused from the declared length.
    let (status, body) = upload(&app, 1, &key, "price.csv", vec![b'a'; 70_000]).await;
    assert_eq!((status, body), (400, too_large.clone()));

    // A chunked body has no declared length: the count while reading stops it.
    let (content_type, bytes) = multipart(&[file_part("file", "price.csv", vec![b'a'; 50_000])]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(4096).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .http
        .post(app.url(&format!("/pub/catalog/upload?tenant=1&k={key}")))
        .header("content-type", content_type)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(split(response).await, (400, too_large));
    assert!(upload_names(&app, 1).is_empty(), "{:?}", upload_names(&app, 1));

    // Exactly at the limit is accepted.
    let mut exact = small_price_list();
    exact.resize(1000, b' ');
    upload_ok(&app, 1, &key, "price.csv", exact).await;
    assert_eq!(upload_names(&app, 1), vec!["price.csv".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cp1251_csv_is_converted_recorded_and_shown_to_the_cabinet() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let job_id = upload_ok(&app, 1, &key, "Прайс 2024 (новый).csv", small_price_list()).await;

    let job = finished_job(&app, 1, &key, &job_id).await;
    assert_eq!(job["ok"], true);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["job_id"], job_id.as_str());
    assert_eq!(job["rows"], 3);
    assert_eq!(job["error"], Value::Null);
    assert_eq!(job["type"], "csv");
    assert_eq!(job["original"], "Прайс 2024 (новый).csv");
    assert_eq!(job["path"], "uploads/Прайс_2024_новый.csv");
    assert_eq!(job["csv_path"], "catalogs/Прайс_2024_новый.csv");
    assert_eq!(job["pipeline"], "csv");
    assert!(job["warnings"].is_array());
    for stamp in ["created_at", "started_at", "finished_at"] {
        assert!(job[stamp].as_str().is_some_and(|s| s.len() >= 20), "{stamp}: {job}");
    }

    // The files, private.
    let dir = tenant_dir(&app, 1);
    let upload_path = dir.join("uploads/Прайс_2024_новый.csv");
    assert_eq!(std::fs::read(&upload_path).unwrap(), small_price_list());
    assert_eq!(file_mode(&upload_path), 0o600);
    assert_eq!(file_mode(&dir.join("uploads")), 0o700);
    let status_path = dir.join("catalog_jobs").join(&job_id).join("status.json");
    assert_eq!(file_mode(&status_path), 0o600);
    let on_disk = read_json(&status_path);
    assert_eq!(on_disk["state"], "done");
    assert_eq!(on_disk["rows"], 3);

    let csv_path = dir.join("catalogs/Прайс_2024_новый.csv");
    assert_eq!(file_mode(&csv_path), 0o600);
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let rows = csv_rows(&text);
    assert_eq!(rows[0].join(","), HEADER);
    assert_eq!(
        rows[1..].to_vec(),
        vec![
            vec!["СТ-001", "Стул дубовый", "", "1234.5", "RUB", "шт", "5", "", ""],
            vec!["СТ-002", "Стол обеденный \"Ёлка\"", "", "12990", "RUB", "шт", "2", "", ""],
            vec!["СТ-003", "Полка настенная", "", "499", "RUB", "шт", "0", "", ""],
        ]
    );

    // tenant.json → integrations.uploaded_catalog, every SPEC field. The job hands the
    // CSV to the bot, whose search index then records itself there.
    let doc = eventually(Duration::from_secs(10), || {
        let doc = read_json(&dir.join("tenant.json"));
        async move { (doc["integrations"]["uploaded_catalog"]["index"]["rows"] == 3).then_some(doc) }
    })
    .await;
    let record = &doc["integrations"]["uploaded_catalog"];
    assert_eq!(record["path"], "uploads/Прайс_2024_новый.csv");
    assert_eq!(record["original"], "Прайс 2024 (новый).csv");
    assert_eq!(record["type"], "csv");
    assert_eq!(record["size"], small_price_list().len());
    assert_eq!(record["mime"], "text/csv");
    assert_eq!(record["csv_path"], "catalogs/Прайс_2024_новый.csv");
    assert_eq!(record["pipeline"], "csv");
    assert_eq!(record["index"]["source"].as_str().map(|s| s.ends_with("catalogs/Прайс_2024_новый.csv")), Some(true));
    assert!(record["uploaded_at"].as_str().is_some_and(|s| !s.is_empty()));

    // The same record reaches the cabinet through settings/get.
    let (status, body) = app.get(&format!("/pub/settings/get?tenant=1&k={key}")).await;
    assert_eq!(status, 200);
    assert_eq!(&body["cfg"]["integrations"]["uploaded_catalog"], record);

    // The preview reads the current CSV.
    let (status, body) = app.get(&format!("/pub/catalog/preview?tenant=1&k={key}&limit=2")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(
        body["header"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>().join(","),
        HEADER
    );
    assert_eq!(body["total_rows"], 3);
    assert_eq!(body["rows"].as_array().unwrap().len(), 2);
    assert_eq!(body["rows"][1][1], "Стол обеденный \"Ёлка\"");

    // The job counter.
    let response = app
        .http
        .get(app.url("/metrics"))
        .header("X-Admin-Token", ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(response.contains("catalog_jobs_total{status=\"done\"} 1"), "{response}");
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_get_shows_the_catalog_and_no_secret() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let job_id = upload_ok(&app, 1, &key, "price.xlsx", fixture("price.xlsx")).await;
    assert_eq!(finished_job(&app, 1, &key, &job_id).await["state"], "done");

    // Credentials another part of Avio keeps in the same document.
    let tenant = avio::domain::TenantId::new(1).unwrap();
    app.state
        .files
        .update(tenant, |doc| {
            doc.integrations.insert(
                "avito".into(),
                json!({"access_token": "SECRET-access", "refresh_token": "SECRET-refresh",
                       "client_secret": "SECRET-client", "account_id": 42}),
            );
            doc.integrations.insert("telegram".into(), json!({"session": "SECRET-session", "password": "SECRET-2fa"}));
        })
        .await
        .unwrap();

    let (status, body) = app.get(&format!("/pub/settings/get?tenant=1&k={key}")).await;
    assert_eq!(status, 200);
    let text = body.to_string();
    assert!(!text.contains("SECRET"), "{text}");
    assert!(!text.contains(&key), "the tenant key leaked: {text}");
    let record = &body["cfg"]["integrations"]["uploaded_catalog"];
    for field in ["path", "original", "uploaded_at", "type", "size", "mime", "csv_path", "pipeline", "index"] {
        assert!(record.get(field).is_some(), "{field} missing in {record}");
    }
    assert_eq!(record["type"], "xlsx");
    assert_eq!(record["mime"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert_eq!(record["pipeline"], "calamine");
    assert_eq!(body["cfg"]["integrations"]["avito"]["account_id"], 42);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_corpus_pdf_and_xlsx_convert_to_the_truth() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let truth = csv_rows(&String::from_utf8(fixture("truth.csv")).unwrap());
    let truth_skus: Vec<&str> = truth[1..].iter().map(|r| r[0].as_str()).collect();

    for (file, pipeline) in [("price.xlsx", "calamine"), ("price_reportlab.pdf", "pdf-text-layout")] {
        let job_id = upload_ok(&app, 1, &key, file, fixture(file)).await;
        let job = finished_job(&app, 1, &key, &job_id).await;
        assert_eq!(job["state"], "done", "{file}: {job}");
        assert_eq!(job["rows"], 240, "{file}");
        assert_eq!(job["pipeline"], pipeline, "{file}");

        let csv_path = tenant_dir(&app, 1).join(job["csv_path"].as_str().unwrap());
        let rows = csv_rows(&std::fs::read_to_string(csv_path).unwrap());
        assert_eq!(rows[0].join(","), HEADER);
        let skus: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
        assert_eq!(skus, truth_skus, "{file}");
        // Prices as the truth has them, on at least 99 % of rows (the corpus bar).
        let matching = rows[1..].iter().zip(&truth[1..]).filter(|(got, want)| got[3] == want[3]).count();
        assert!(matching * 100 >= 99 * 240, "{file}: {matching} prices match");
    }
    // The latest conversion is the tenant's catalog.
    let doc = read_json(&tenant_dir(&app, 1).join("tenant.json"));
    assert_eq!(doc["integrations"]["uploaded_catalog"]["csv_path"], "catalogs/price_reportlab.csv");
}

#[tokio::test(flavor = "multi_thread")]
async fn path_traversal_names_land_inside_uploads() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;

    for (raw, stored) in [
        ("../../x.csv", "x.csv"),
        ("..\\a.pdf", "a.pdf"),
        ("..\\..\\..\\tenant.csv", "tenant.csv"),
        ("/etc/cron.d/evil.csv", "evil.csv"),
        ("../.csv", "catalog.csv"),
    ] {
        let bytes = if raw.ends_with(".pdf") { fixture("price_reportlab.pdf") } else { small_price_list() };
        let job_id = upload_ok(&app, 1, &key, raw, bytes).await;
        let job = finished_job(&app, 1, &key, &job_id).await;
        assert_eq!(job["path"], format!("uploads/{stored}"), "{raw}");
        assert!(tenant_dir(&app, 1).join("uploads").join(stored).is_file(), "{raw}");
    }
    // Nothing escaped: the data dir and the tenant dir hold only what Avio puts there.
    let mut top: Vec<String> = std::fs::read_dir(&app.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert!(
        top.iter().all(|n| n == "tenants" || n == "tg_sessions" || n.starts_with("avio.db") || n == "queues.redb"),
        "{top:?}"
    );
    let expected = ["catalog_jobs", "catalogs", "tenant.json", "uploads", "provider_token.json", "persona.md"];
    for entry in std::fs::read_dir(tenant_dir(&app, 1)).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(expected.contains(&name.as_str()), "unexpected {name} in the tenant folder");
    }
    assert!(!app.data_dir.join("tenants/x.csv").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_route_hides_other_tenants_jobs() {
    let app = spawn_app().await;
    let key1 = app.tenant_with_key(1).await;
    let key2 = app.tenant_with_key(2).await;
    let job_id = upload_ok(&app, 1, &key1, "price.csv", small_price_list()).await;
    finished_job(&app, 1, &key1, &job_id).await;

    let not_found = json!({"ok": false, "error": "job_not_found"});
    assert_eq!(app.get(&format!("/pub/catalog/job?tenant=2&k={key2}&job_id={job_id}")).await, (404, not_found.clone()));
    // The global key still scopes the lookup to the tenant asked for.
    assert_eq!(
        app.get(&format!("/pub/catalog/job?tenant=2&k={PUBLIC_KEY}&job_id={job_id}")).await,
        (404, not_found.clone())
    );
    for bad in ["00000000-0000-0000-0000-000000000000", "..%2F..%2Ftenant.json", "x"] {
        assert_eq!(
            app.get(&format!("/pub/catalog/job?tenant=1&k={key1}&job_id={bad}")).await,
            (404, not_found.clone()),
            "{bad}"
        );
    }
    assert_eq!(
        app.get(&format!("/pub/catalog/job?tenant=1&k={key1}")).await,
        (422, json!({"ok": false, "error": "invalid_payload", "reason": "missing_job_id"}))
    );
    assert_eq!(
        app.get(&format!("/pub/catalog/job?tenant=1&k=wrong&job_id={job_id}")).await,
        (401, json!({"detail": "invalid_key"}))
    );
    // Another tenant's key cannot reach tenant 1 at all.
    assert_eq!(
        app.get(&format!("/pub/catalog/job?tenant=1&k={key2}&job_id={job_id}")).await,
        (401, json!({"detail": "invalid_key"}))
    );
    // Upper-case spelling of the same id finds it.
    let (status, body) = app.get(&format!("/pub/catalog/job?tenant=1&k={key1}&job_id={}", job_id.to_uppercase())).await;
    assert_eq!((status, body["job_id"].as_str()), (200, Some(job_id.as_str())));
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_without_a_catalog_is_not_found() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    assert_eq!(
        app.get(&format!("/pub/catalog/preview?tenant=1&k={key}")).await,
        (404, json!({"ok": false, "error": "catalog_not_found"}))
    );
    assert_eq!(
        app.get(&format!("/pub/catalog/preview?tenant=1&k={key}&limit=many")).await,
        (422, json!({"ok": false, "error": "invalid_payload", "reason": "invalid_limit"}))
    );
    assert_eq!(app.get("/pub/catalog/preview?tenant=1&k=nope").await, (401, json!({"detail": "invalid_key"})));
}

/// A real zip bomb inside an .xlsx: 64 MiB of zeros deflated to about 64 KiB.
fn zip_bomb_xlsx() -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("[Content_Types].xml", options).unwrap();
    writer.write_all(b"<Types/>").unwrap();
    writer.start_file("xl/worksheets/sheet1.xml", options).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        writer.write_all(&zeros).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_files_fail_their_job_and_the_daemon_keeps_serving() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let pdf = fixture("price_reportlab.pdf");
    let mut random_xlsx = b"PK\x03\x04".to_vec();
    random_xlsx.extend(random_bytes(256 * 1024, 0x9E37_79B9_7F4A_7C15));
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.pdf", pdf[..200].to_vec()),
        ("random.xlsx", random_xlsx),
        ("bomb.xlsx", zip_bomb_xlsx()),
        ("html.xls", b"<html><body><table><tr><td>x</td></tr></table></body></html>".to_vec()),
        ("noise.csv", random_bytes(64 * 1024, 42)),
        ("noise.ods", random_bytes(4096, 7)),
    ];
    let mut jobs = Vec::new();
    for (name, bytes) in hostile {
        jobs.push((name, upload_ok(&app, 1, &key, name, bytes).await));
        assert_healthy(&app).await;
    }
    for (name, job_id) in &jobs {
        let job = finished_job(&app, 1, &key, job_id).await;
        assert_eq!(job["state"], "failed", "{name}: {job}");
        let reason = job["error"].as_str().unwrap_or("");
        assert!(reason.len() > 10, "{name}: reason too terse: {job}");
        assert!(job["finished_at"].is_string(), "{name}");
        assert_healthy(&app).await;
    }
    let bomb = finished_job(&app, 1, &key, &jobs[2].1).await;
    assert!(bomb["error"].as_str().unwrap().contains("too large"), "{bomb}");
    // A failed job never became the catalog, and the worker still converts good files.
    let doc = read_json(&tenant_dir(&app, 1).join("tenant.json"));
    assert!(doc["integrations"].get("uploaded_catalog").is_none());
    let job_id = upload_ok(&app, 1, &key, "good.csv", small_price_list()).await;
    assert_eq!(finished_job(&app, 1, &key, &job_id).await["state"], "done");
    // Failed jobs are finished, not retried.
    assert_eq!(app.state.queues.depth(avio::queue::CATALOG).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_upload_vanished_fails_with_a_reason() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    // Deleting an upload before the worker gets to it would race the worker, so the
    // job is queued by hand for a file that was never stored.
    let tenant = avio::domain::TenantId::new(1).unwrap();
    let job = avio::catalog::jobs::CatalogJob {
        job_id: "6f1c1f0e-8d0b-4f4e-9a35-1b7c1f0e8d0b".into(),
        tenant,
        path: "uploads/gone.csv".into(),
        original: "gone.csv".into(),
        base_name: "gone".into(),
        kind: "csv".into(),
        size: 10,
        mime: "text/csv".into(),
        uploaded_at: avio::domain::now_rfc3339(),
    };
    avio::catalog::jobs::write_status(&app.state.files, avio::catalog::jobs::JobStatus::queued(&job)).await.unwrap();
    app.state
        .queues
        .enqueue(avio::queue::CATALOG, &job, avio::queue::EnqueueOptions { durable: true, ..Default::default() })
        .await
        .unwrap();
    let status = finished_job(&app, 1, &key, &job.job_id).await;
    assert_eq!(status["state"], "failed");
    assert!(status["error"].as_str().unwrap().contains("missing"), "{status}");
}

fn avioctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_avioctl"))
        .env_clear()
        .env("DATA_DIR", "/nonexistent-avio-test-dir")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn avioctl_catalog_convert_prints_the_normalized_csv_offline() {
    let truth = String::from_utf8(fixture("truth.csv")).unwrap();
    for file in ["price.xlsx", "price_1c.csv", "price_libreoffice.pdf"] {
        let path = fixture_path(file);
        let out = avioctl(&["catalog", "convert", path.to_str().unwrap()]);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let rows = csv_rows(&stdout);
        assert_eq!(rows[0].join(","), HEADER, "{file}");
        assert_eq!(rows.len(), 241, "{file}");
        assert_eq!(rows[1][0], csv_rows(&truth)[1][0], "{file}");
    }

    let out = avioctl(&["catalog", "convert", "/nonexistent-dir/price.xlsx"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("price.xlsx"), "{}", String::from_utf8_lossy(&out.stderr));

    let dir = tempfile::tempdir().unwrap();
    let unsupported = dir.path().join("price.docx");
    std::fs::write(&unsupported, b"x").unwrap();
    let out = avioctl(&["catalog", "convert", unsupported.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported file type"));
    assert!(out.stdout.is_empty());

    let broken = dir.path().join("broken.pdf");
    std::fs::write(&broken, &fixture("price_reportlab.pdf")[..200]).unwrap();
    let out = avioctl(&["catalog", "convert", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.pdf:"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
}
