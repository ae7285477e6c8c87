//! The web UI in real headless Chromium (driven with `headless_chrome`) against the
//! real daemon on a random port: the admin panel, the client cabinet, the connect
//! pages. Every page is also saved as a screenshot at 1280 px and 390 px under
//! `target/ui-screenshots/` to be looked at.

mod common;
mod fake_avito;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use avio::app::Extensions;
use avio::channels::SendError;
use avio::channels::telegram::account::TgError;
use avio::domain::{Channel, TenantId};
use headless_chrome::protocol::cdp::{Emulation, Page};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::{Value, json};

use common::recording::{Recorder, RecordingFactory};
use common::tg_script::{Script, TG_VARS};
use common::*;
use fake_avito::{FakeAvito, OWN_ID, OWN_SECRET};

/// Chromium starts in about a second here; CI boxes are slower and shared.
const WAIT: Duration = Duration::from_secs(40);

/// Flags for a root-run browser in a network-restricted box (see
/// `channels/whatsapp/browser.rs` for the reasons).
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--lang=ru-RU",
    "--hide-scrollbars",
];

fn chromium_path() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM_PATH") {
        return PathBuf::from(path);
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("Chromium is needed for the UI tests: apt-get install chromium")
}

/// A browser of its own for each test (dropped, and so killed, at the test's end).
struct Ui {
    browser: Browser,
    _profile: tempfile::TempDir,
}

impl Ui {
    fn launch() -> Ui {
        let profile = tempfile::tempdir().unwrap();
        let flags: Vec<&std::ffi::OsStr> = FLAGS.iter().map(std::ffi::OsStr::new).collect();
        let options = LaunchOptions::default_builder()
            .path(Some(chromium_path()))
            .headless(false) // `--headless=new` is in FLAGS.
            .sandbox(false)
            .window_size(Some((1280, 900)))
            .user_data_dir(Some(profile.path().to_path_buf()))
            .args(flags)
            .idle_browser_timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        let browser = Browser::new(options).expect("launch chromium");
        Ui { browser, _profile: profile }
    }

    fn tab(&self) -> std::sync::Arc<Tab> {
        // The tab Chromium opens with: a new one can time out on a busy box. The crate
        // deprecates the waiting call in favour of new_tab(), which is what times out.
        #[allow(deprecated)]
        let tab = self.browser.wait_for_initial_tab().unwrap();
        tab.set_default_timeout(WAIT);
        viewport(&tab, 1280, 900, false);
        tab
    }
}

/// A full page load (via `about:blank`, so a change of `#section` alone still loads).
fn open(tab: &Tab, url: &str) {
    for target in ["about:blank", url] {
        tab.navigate_to(target).unwrap();
        tab.wait_until_navigated().unwrap();
    }
}

fn eval(tab: &Tab, expression: &str) -> Value {
    let result = tab.evaluate(expression, true).unwrap_or_else(|e| panic!("evaluate {expression}: {e}"));
    result.value.unwrap_or(Value::Null)
}

/// Polls a JS expression until it is truthy; returns its value.
fn wait_js(tab: &Tab, expression: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = tab.evaluate(expression, true).ok().and_then(|r| r.value).unwrap_or(Value::Null);
        let truthy = match &value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
            _ => true,
        };
        if truthy {
            return value;
        }
        if Instant::now() > deadline {
            let text = eval(tab, "document.body ? document.body.innerText : ''");
            panic!("not true within {WAIT:?}: {expression}\npage text:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text_of(tab: &Tab, selector: &str) -> String {
    let js = format!("(document.querySelector({selector:?}) || {{}}).innerText || ''");
    eval(tab, &js).as_str().unwrap_or("").to_string()
}

fn body_text(tab: &Tab) -> String {
    eval(tab, "document.body.innerText").as_str().unwrap_or("").to_string()
}

/// Sets a field's value as typing would (input and change events).
fn fill(tab: &Tab, selector: &str, value: &str) {
    let js = format!(
        "(() => {{ const el = document.querySelector({selector:?}); el.focus(); el.value = {value:?}; \
         el.dispatchEvent(new Event('input', {{bubbles: true}})); \
         el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()"
    );
    assert_eq!(eval(tab, &js), Value::Bool(true), "fill {selector}");
}

fn click(tab: &Tab, selector: &str) {
    tab.wait_for_element(selector).unwrap_or_else(|e| panic!("{selector}: {e}")).click().unwrap();
}

fn viewport(tab: &Tab, width: u32, height: u32, mobile: bool) {
    tab.call_method(Emulation::SetDeviceMetricsOverride {
        width,
        height,
        device_scale_factor: 1.0,
        mobile,
        scale: None,
        screen_width: None,
        screen_height: None,
        position_x: None,
        position_y: None,
        dont_set_visible_size: None,
        screen_orientation: None,
        viewport: None,
        display_feature: None,
        device_posture: None,
    })
    .unwrap();
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Full-page screenshots at 1280 px and at 390 px (a phone), then back to desktop.
fn screenshots(tab: &Tab, name: &str) {
    for (width, height, mobile) in [(1280u32, 900u32, false), (390, 844, true)] {
        viewport(tab, width, height, mobile);
        std::thread::sleep(Duration::from_millis(300));
        let full = eval(tab, "Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
            .as_f64()
            .unwrap_or(f64::from(height)) as u32;
        viewport(tab, width, full.clamp(height, 4000), mobile);
        // Toasts come and go; the page is what is looked at.
        eval(tab, "document.querySelectorAll('.toasts').forEach(t => t.replaceChildren())");
        std::thread::sleep(Duration::from_millis(200));
        let png = tab.capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
        std::fs::write(screenshot_dir().join(format!("{name}-{width}.png")), png).unwrap();
    }
    viewport(tab, 1280, 900, false);
}

async fn hook(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    let r = app.http.post(app.url("/webhook")).header("X-Provider-Token", token).json(body).send().await.unwrap();
    split(r).await
}

/// An SVG that looks like a QR code (finder squares and a deterministic pattern).
fn fake_qr_svg(seed: u32) -> String {
    const N: u32 = 29;
    let mut rects = String::new();
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let finder = |x: u32, y: u32| {
        [(0, 0), (N - 7, 0), (0, N - 7)].iter().any(|(fx, fy)| x >= *fx && x < fx + 7 && y >= *fy && y < fy + 7)
    };
    for y in 0..N {
        for x in 0..N {
            let on = if finder(x, y) {
                let (fx, fy) = if x >= N - 7 {
                    (N - 7, 0)
                } else if y >= N - 7 {
                    (0, N - 7)
                } else {
                    (0, 0)
                };
                let (dx, dy) = (x - fx, y - fy);
                let ring = dx.min(dy).min(6 - dx).min(6 - dy);
                ring != 1
            } else {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.is_multiple_of(2)
            };
            if on {
                rects.push_str(&format!("<rect x=\"{x}\" y=\"{y}\" width=\"1\" height=\"1\"/>"));
            }
        }
    }
    format!(
        "<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"-2 -2 {s} {s}\" \
         shape-rendering=\"crispEdges\"><rect x=\"-2\" y=\"-2\" width=\"{s}\" height=\"{s}\" fill=\"#fff\"/>\
         <g fill=\"#000\">{rects}</g></svg>",
        s = N + 4
    )
}

const CATALOG: &str = "sku,name,category,price,currency,unit,stock,url,description\n\
D-101,\"Диван угловой «Милан» 2×1,6 м\",Диваны,45990,RUB,шт,3,,Велюр\n\
D-102,Диван-кровать «Лофт»,Диваны,32990,RUB,шт,0,,\n\
K-201,Кресло «Уют» рогожка,Кресла,12990.5,RUB,шт,5,,\n";

/// Puts a converted catalog in place for tenant 1, as `tests/bot.rs` does.
async fn with_catalog(app: &TestApp) {
    let tenant = TenantId::new(1).unwrap();
    let csv = app.data_dir.join("tenants/1/catalogs/price.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    std::fs::write(&csv, CATALOG).unwrap();
    let csv_path = csv.display().to_string();
    app.state
        .files
        .update(tenant, move |doc| {
            doc.integrations.insert(
                "uploaded_catalog".into(),
                json!({"csv_path": csv_path, "type": "csv", "original": "price.csv", "uploaded_at": "2025-03-01T10:00:00Z"}),
            );
        })
        .await
        .unwrap();
    app.state.bot.catalog_ready(&app.state, tenant).await;
}

fn cabinet_url(app: &TestApp, key: &str, section: &str) -> String {
    app.url(&format!("/cabinet?tenant=1&k={key}#{section}"))
}

/// The admin panel at `#section`, signed in as the sign-in form leaves it.
fn open_admin(tab: &Tab, app: &TestApp, section: &str) {
    open(tab, &app.url("/admin"));
    eval(tab, &format!("sessionStorage.setItem('avio.admin.token', {ADMIN_TOKEN:?})"));
    open(tab, &app.url(&format!("/admin#{section}")));
    wait_js(tab, "!document.querySelector('#panel').hidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_strict_csp_and_versioned_cached_compressed_assets() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    for path in ["/admin".to_string(), format!("/cabinet?tenant=1&k={key}"), format!("/connect/wa?tenant=1&k={key}")] {
        let r = app.http.get(app.url(&path)).header("Accept-Encoding", "br, gzip").send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers().clone();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers["content-encoding"], "br", "{path}");
    }
    // The page names versioned asset URLs; those are cached for a year.
    let html = app.http.get(app.url("/admin")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("onclick="), "no inline script");
    let css = html.split('"').find(|s| s.starts_with("/assets/") && s.ends_with("app.css")).unwrap().to_string();
    let js = html.split('"').find(|s| s.starts_with("/assets/") && s.ends_with("admin.js")).unwrap().to_string();
    let r = app.http.get(app.url(&css)).header("Accept-Encoding", "gzip").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = app.http.get(app.url(&js)).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 200, "another file's etag does not match");
    assert_eq!(r.headers()["content-type"], "text/javascript; charset=utf-8");
    let r = app.http.get(app.url(&css)).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    // An older version's URL still answers, uncached; unknown files are 404.
    let old = format!("/assets/0ld/{}", css.splitn(4, '/').nth(3).unwrap());
    let r = app.http.get(app.url(&old)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["cache-control"].to_str().unwrap()), (200, "no-cache"), "{old}");
    let r = app.http.get(app.url("/assets/x/nope.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = app.http.get(app.url("/assets/x/admin/index.html")).send().await.unwrap();
    assert_eq!(r.status(), 404, "pages are served only through their routes");
    // A wrong key never gets the cabinet's page.
    let r = app.http.get(app.url("/cabinet?tenant=1&k=wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let text = r.text().await.unwrap();
    assert!(text.contains("Ссылка недействительна") && !text.contains("cabinet.js"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_signs_in_with_the_token_and_creates_a_tenant() {
    let app = spawn_app().await;
    let ui = Ui::launch();
    let tab = ui.tab();
    open(&tab, &app.url("/admin"));
    wait_js(&tab, "!document.querySelector('#signin').hidden");
    screenshots(&tab, "admin-signin");

    fill(&tab, "#signin-token", "not-the-token");
    click(&tab, "#signin-form button[type=submit]");
    wait_js(&tab, "document.querySelector('#signin-error').innerText.includes('Неверный токен')");

    fill(&tab, "#signin-token", ADMIN_TOKEN);
    click(&tab, "#signin-form button[type=submit]");
    wait_js(&tab, "!document.querySelector('#panel').hidden && !!document.querySelector('#new-tenant-form')");
    assert_eq!(eval(&tab, "sessionStorage.getItem('avio.admin.token')"), json!(ADMIN_TOKEN));

    fill(&tab, "#new-tenant-form input[name=name]", "ООО «Уютный дом»");
    fill(&tab, "#new-tenant-form input[name=id]", "7");
    fill(&tab, "#new-tenant-form input[name=brand]", "Уютный дом");
    fill(&tab, "#new-tenant-form input[name=agent_name]", "Анна");
    fill(&tab, "#new-tenant-form input[name=city]", "Казань");
    click(&tab, "#new-tenant-form button[type=submit]");
    wait_js(&tab, "location.hash === '#tenant/7' && !!document.querySelector('#key-create')");

    let (status, body) = app.admin_get("/admin/tenants/7").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"]["name"], "ООО «Уютный дом»");
    assert_eq!(body["tenant"]["passport"]["city"], "Казань");

    // The key: created from the panel, then its client links are shown.
    click(&tab, "#key-create");
    let link = wait_js(&tab, "document.querySelector('#key-card .stack').dataset.cabinetLink");
    let (_, key) = app.admin_get("/admin/key/get?tenant=7").await;
    let key = key["key"].as_str().unwrap().to_string();
    assert_eq!(link, json!(format!("{}/cabinet?tenant=7&k={key}", app.base)));
    assert!(text_of(&tab, "#key-card").contains("/connect/wa?tenant=7"));
    wait_js(&tab, "document.querySelector('#provider-card code') !== null");
    wait_js(&tab, "document.querySelector('#admin-avito .pill') !== null");
    // Without Telegram credentials the agency gets the technical hint (the client does not).
    let note = wait_js(&tab, "(document.querySelector('#admin-tg-note') || {}).innerText");
    assert!(note.as_str().unwrap().contains("TELEGRAM_API_ID"), "{note}");
    screenshots(&tab, "admin-tenant");

    // Editing the passport goes through PATCH.
    fill(&tab, "#tenant-form input[name=city]", "Самара");
    click(&tab, "#tenant-form button[type=submit]");
    eventually(WAIT, || async {
        let (_, body) = app.admin_get("/admin/tenants/7").await;
        (body["tenant"]["passport"]["city"] == "Самара").then_some(())
    })
    .await;

    open(&tab, &app.url("/admin#tenants"));
    wait_js(&tab, "document.querySelectorAll('#tenants-table tbody tr').length === 1");
    screenshots(&tab, "admin-tenants");
    open(&tab, &app.url("/admin#queues"));
    wait_js(&tab, "document.querySelectorAll('#queues-card tbody tr').length >= 2");
    screenshots(&tab, "admin-queues");
    open(&tab, &app.url("/admin#guardrails"));
    wait_js(&tab, "document.querySelectorAll('#guardrails-table tbody tr').length >= 4");
    screenshots(&tab, "admin-guardrails");
    open(&tab, &app.url("/admin#failures"));
    wait_js(&tab, "document.querySelector('#main .empty strong') !== null");
    screenshots(&tab, "admin-failures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_link_opens_the_cabinet_with_its_channels() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let ui = Ui::launch();
    let tab = ui.tab();
    open(&tab, &cabinet_url(&app, &key, "connect"));
    wait_js(&tab, "document.querySelector('#brand-name').innerText === 'Уютный дом'");
    wait_js(&tab, "!!document.querySelector('#wa-card') && !!document.querySelector('#avito-card .pill')");
    let text = body_text(&tab);
    for part in ["Подключения", "WhatsApp", "Telegram", "Авито", "Каталог", "Персона", "Диалоги"]
    {
        assert!(text.contains(part), "{part} missing:\n{text}");
    }
    // Telegram without credentials on the server says so in plain words.
    wait_js(&tab, "!document.querySelector('#tg-card').innerText.includes('Проверяем')");
    let tg = text_of(&tab, "#tg-card");
    assert!(tg.contains("напишите вашему агентству") && !tg.contains("TELEGRAM_API"), "{tg}");
    screenshots(&tab, "cabinet-connect");

    // Brand passport and settings are saved from the cabinet.
    open(&tab, &cabinet_url(&app, &key, "brand"));
    wait_js(&tab, "!!document.querySelector('#brand-form')");
    fill(&tab, "#brand-form input[name=city]", "Нижний Новгород");
    fill(&tab, "#brand-form input[name=catalog_url]", "https://uyut.example/catalog");
    click(&tab, "#brand-form button[type=submit]");
    eventually(WAIT, || async {
        let (_, body) = app.get(&format!("/pub/settings/get?tenant=1&k={key}")).await;
        (body["cfg"]["passport"]["city"] == "Нижний Новгород"
            && body["cfg"]["settings"]["catalog_url"] == "https://uyut.example/catalog")
            .then_some(())
    })
    .await;
    screenshots(&tab, "cabinet-brand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_shows_an_invalid_link_page_and_nothing_of_the_tenant() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let ui = Ui::launch();
    let tab = ui.tab();
    for url in [
        app.url("/cabinet?tenant=1&k=wrong-key"),
        app.url("/cabinet?tenant=99&k=wrong-key"),
        app.url("/connect/wa?tenant=1&k=wrong-key"),
        app.url("/cabinet"),
    ] {
        open(&tab, &url);
        wait_js(&tab, "!!document.querySelector('#invalid-link')");
        let text = body_text(&tab);
        assert!(text.contains("Ссылка недействительна"), "{url}: {text}");
        assert!(!text.contains("Уютный дом") && !text.contains("Tenant 1"), "{url} shows the tenant: {text}");
    }
    screenshots(&tab, "invalid-link");

    // A key deleted while the page is open: the next load shows the same page.
    open(&tab, &cabinet_url(&app, &key, "connect"));
    wait_js(&tab, "document.querySelector('#brand-name').innerText === 'Уютный дом'");
    let (status, _) = app.admin_delete("/admin/key?tenant=1").await;
    assert_eq!(status, 200);
    tab.reload(true, None).unwrap();
    wait_js(&tab, "!!document.querySelector('#invalid-link')");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_upload_shows_progress_then_the_rows_and_a_preview() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let ui = Ui::launch();
    let tab = ui.tab();
    open(&tab, &cabinet_url(&app, &key, "catalog"));
    wait_js(&tab, "document.querySelector('#catalog-preview').innerText.includes('не загружен')");
    screenshots(&tab, "cabinet-catalog-empty");

    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/catalog_corpus/fixtures/price_1c.csv");
    let fixture = fixture.display().to_string();
    tab.wait_for_element("#catalog-file").unwrap().set_input_files(&[&fixture]).unwrap();
    wait_js(&tab, "document.querySelector('#catalog-result').innerText.includes('Готово')");
    let result = text_of(&tab, "#catalog-result");
    assert!(result.contains("товар"), "{result}");
    // The progress bar went all the way (the upload's own progress events).
    assert_eq!(eval(&tab, "document.querySelector('#upload-progress').getAttribute('aria-valuenow')"), json!("100"));
    let rows = wait_js(&tab, "document.querySelectorAll('#catalog-table tbody tr').length");
    assert!(rows.as_u64().unwrap() > 0, "{rows}");
    let header = text_of(&tab, "#catalog-table thead").to_lowercase();
    assert!(header.contains("название") && header.contains("цена"), "{header}");

    let (_, status) = app.get(&format!("/pub/catalog/preview?tenant=1&k={key}")).await;
    let total = status["total_rows"].as_u64().unwrap();
    let shown = text_of(&tab, "#catalog-preview");
    assert!(shown.contains(&format!("Всего {total}")), "{shown}");
    screenshots(&tab, "cabinet-catalog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_persona_updates_the_live_preview_and_saves() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let ui = Ui::launch();
    let tab = ui.tab();
    open(&tab, &cabinet_url(&app, &key, "persona"));
    wait_js(&tab, "document.querySelector('#persona-text').value.length > 20");
    // The default persona's preview has the placeholders filled from the passport.
    let preview = text_of(&tab, "#persona-preview");
    assert!(preview.contains("Уютный дом") && !preview.contains("{BRAND}"), "{preview}");
    assert_eq!(eval(&tab, "document.querySelectorAll('#persona-placeholders .chip').length"), json!(7));
    screenshots(&tab, "cabinet-persona");

    fill(
        &tab,
        "#persona-text",
        "Ты — {AGENT_NAME}, консультант магазина «{BRAND}» в городе {CITY}. Цены в {CURRENCY}.",
    );
    // Live, before saving.
    wait_js(
        &tab,
        "document.querySelector('#persona-preview').innerText.includes('Ты — Анна, консультант магазина «Уютный дом» в городе Казань. Цены в ₽.')",
    );
    click(&tab, "#persona-save");
    wait_js(
        &tab,
        "document.querySelector('#persona-save').disabled && document.querySelector('#section-persona') && document.body.innerText.includes('Своя')",
    );
    let (_, persona) = app.get(&format!("/pub/persona?tenant=1&k={key}")).await;
    assert_eq!(persona["is_default"], false);
    assert_eq!(
        persona["text"],
        "Ты — {AGENT_NAME}, консультант магазина «{BRAND}» в городе {CITY}. Цены в {CURRENCY}."
    );
    assert_eq!(
        text_of(&tab, "#persona-preview"),
        "Ты — Анна, консультант магазина «Уютный дом» в городе Казань. Цены в ₽."
    );
    // A placeholder chip inserts at the cursor.
    eval(
        &tab,
        "(() => { const t = document.querySelector('#persona-text'); t.setSelectionRange(t.value.length, t.value.length); })()",
    );
    eval(
        &tab,
        "[...document.querySelectorAll('#persona-placeholders .chip')].find(c => c.innerText.includes('{CHANNEL}')).click()",
    );
    wait_js(&tab, "document.querySelector('#persona-preview').innerText.endsWith('₽.WhatsApp')");
    screenshots(&tab, "cabinet-persona-edited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_try_the_bot_box_gets_the_bots_reply() {
    let app = spawn_app_with(&[("BOT_DEBOUNCE_MS", "100")]).await;
    let key = app.tenant_with_key(1).await;
    with_catalog(&app).await;
    let ui = Ui::launch();
    let tab = ui.tab();
    open(&tab, &cabinet_url(&app, &key, "bot"));
    wait_js(&tab, "!!document.querySelector('#bot-empty')");
    fill(&tab, "#bot-input", "Сколько стоит угловой диван Милан?");
    click(&tab, "#bot-send");
    wait_js(&tab, "document.querySelectorAll('#bot-chat .msg[data-author=me]').length === 1");
    let reply = wait_js(&tab, "(document.querySelector('#bot-chat .msg[data-author=bot] .bubble') || {}).innerText");
    let reply = reply.as_str().unwrap();
    // Offline mode answers from the catalog.
    assert!(reply.contains("Милан"), "{reply}");
    assert!(!reply.starts_with('⚠'), "{reply}");
    screenshots(&tab, "cabinet-bot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whatsapp_qr_appears_when_a_qr_event_arrives_and_follows_refreshes() {
    let app = spawn_app().await;
    let key = app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    let ui = Ui::launch();
    let tab = ui.tab();
    open(&tab, &app.url(&format!("/connect/wa?tenant=1&k={key}")));
    wait_js(&tab, "document.querySelector('#connect-brand').innerText === 'Уютный дом'");
    wait_js(
        &tab,
        "!!document.querySelector('#wa-body') && !document.querySelector('#wa-body').innerText.includes('Проверяем')",
    );
    assert_eq!(
        eval(&tab, "!!(document.querySelector('#wa-qr') && document.querySelector('#wa-qr').src)"),
        json!(false)
    );

    let (status, body) =
        hook(&app, &token, &json!({"event": "qr", "tenant": 1, "qr_id": "q1", "svg": fake_qr_svg(1)})).await;
    assert_eq!(status, 200, "{body}");
    wait_js(
        &tab,
        "(() => { const i = document.querySelector('#wa-body #wa-qr'); return !!i && i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0; })()",
    );
    let first = eval(&tab, "document.querySelector('#wa-qr').dataset.version");
    assert!(text_of(&tab, "#connect-pill").contains("Ждёт сканирования"));
    screenshots(&tab, "connect-wa");

    // The session refreshes its QR: the page follows without a reload.
    let (status, _) =
        hook(&app, &token, &json!({"event": "qr", "tenant": 1, "qr_id": "q2", "svg": fake_qr_svg(2)})).await;
    assert_eq!(status, 200);
    let js = format!("document.querySelector('#wa-qr').dataset.version !== {first}");
    wait_js(&tab, &js);

    // The cabinet shows the same QR in its WhatsApp card.
    open(&tab, &cabinet_url(&app, &key, "connect"));
    wait_js(
        &tab,
        "(() => { const i = document.querySelector('#wa-card #wa-qr'); return !!i && i.complete && i.naturalWidth > 0; })()",
    );
    screenshots(&tab, "cabinet-connect-qr");

    // The phone scanned it: the provider reports `ready` and the card says who is connected.
    let (status, body) =
        hook(&app, &token, &json!({"event": "ready", "tenant": 1, "state": "ready", "me": "79990001122"})).await;
    assert_eq!(status, 200, "{body}");
    wait_js(&tab, "document.querySelector('#wa-card [data-connected]') !== null");
    let card = text_of(&tab, "#wa-card");
    assert!(card.contains("Подключено как +7 999 000-11-22"), "{card}");
    assert!(eval(&tab, "document.querySelector('#wa-card #wa-qr') === null").as_bool().unwrap(), "the QR is gone");
    screenshots(&tab, "cabinet-connect-wa-ready");
    open(&tab, &app.url(&format!("/connect/wa?tenant=1&k={key}")));
    wait_js(&tab, "document.querySelector('#connect-body').innerText.includes('Подключено как +7 999 000-11-22')");
    assert!(text_of(&tab, "#connect-pill").contains("Подключено"));
    screenshots(&tab, "connect-wa-ready");

    // The Telegram connect page says plainly that Telegram is not available here, in
    // the client's words (the server settings are the agency's business).
    open(&tab, &app.url(&format!("/connect/tg?tenant=1&k={key}")));
    wait_js(
        &tab,
        "!!document.querySelector('#tg-body') && !document.querySelector('#tg-body').innerText.includes('Проверяем')",
    );
    let tg = text_of(&tab, "#tg-body");
    assert!(tg.contains("Подключение Telegram пока не включено") && !tg.contains("TELEGRAM_API"), "{tg}");
    screenshots(&tab, "connect-tg");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialogs_show_the_thread_and_the_operator_takes_over_and_replies() {
    let app =
        spawn_app_with(&[("BOT_DEBOUNCE_MS", "100"), ("OUTBOX_ENABLED", "true"), ("OUTBOX_WHITELIST", "*")]).await;
    let key = app.tenant_with_key(1).await;
    with_catalog(&app).await;
    let (status, body) = app
        .admin_post(
            "/admin/simulator/message",
            &json!({"tenant": 1, "peer": "79991234567", "name": "Мария", "text": "Здравствуйте! Есть кресло Уют?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, replies) = app.admin_get("/admin/simulator/replies?tenant=1&peer=79991234567&wait_ms=20000").await;
    assert!(!replies["replies"].as_array().unwrap().is_empty(), "{replies}");

    let ui = Ui::launch();
    let tab = ui.tab();
    open(&tab, &cabinet_url(&app, &key, "dialogs"));
    wait_js(&tab, "document.querySelectorAll('#dialog-list .dialog-item').length === 1");
    screenshots(&tab, "cabinet-dialogs");
    click(&tab, "#dialog-list .dialog-item");
    wait_js(&tab, "document.querySelectorAll('#dialog-messages .msg[data-author=lead]').length === 1");
    wait_js(&tab, "document.querySelectorAll('#dialog-messages .msg[data-author=bot]').length >= 1");

    click(&tab, "#dialog-takeover");
    wait_js(&tab, "!!document.querySelector('#dialog-release')");
    fill(&tab, "#dialog-reply-text", "Добрый день! Это Анна, кресло есть, могу отложить.");
    click(&tab, "#dialog-reply button[type=submit]");
    wait_js(
        &tab,
        "[...document.querySelectorAll('#dialog-messages .msg[data-author=operator]')].some(m => m.innerText.includes('могу отложить'))",
    );
    let (_, replies) = app.admin_get("/admin/simulator/replies?tenant=1&peer=79991234567&wait_ms=10000").await;
    let texts = replies["replies"].to_string();
    assert!(texts.contains("могу отложить"), "{texts}");
    wait_js(
        &tab,
        "[...document.querySelectorAll('#dialog-messages .msg[data-author=operator]')].some(m => m.dataset.status === 'sent' || m.dataset.status === 'delivered')",
    );
    screenshots(&tab, "cabinet-dialog-thread");

    click(&tab, "#dialog-release");
    wait_js(&tab, "!!document.querySelector('#dialog-takeover')");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_connects_with_a_live_qr_then_the_password_and_the_admin_sees_peer_flood() {
    let script = Script::new("верный пароль");
    let mut vars = TG_VARS.to_vec();
    vars.extend([("OUTBOX_ENABLED", "true"), ("OUTBOX_WHITELIST", "*")]);
    let extensions = Extensions { telegram_accounts: Some(script.factory()), ..Default::default() };
    let app = spawn_app_ext(&vars, extensions).await;
    let key = app.tenant_with_key(1).await;
    let ui = Ui::launch();
    let tab = ui.tab();
    open(&tab, &cabinet_url(&app, &key, "connect"));
    click(&tab, "#tg-card #tg-start");
    // The QR is a real PNG from the daemon, refreshed while the page polls.
    wait_js(
        &tab,
        "(() => { const i = document.querySelector('#tg-card #tg-qr'); return !!i && i.complete && i.naturalWidth > 0; })()",
    );
    assert!(text_of(&tab, "#tg-card .card-head").contains("Ждёт сканирования"));
    screenshots(&tab, "cabinet-tg-qr");

    // The phone scans it; the account has a cloud password.
    script.scan_needing_password();
    wait_js(&tab, "!!document.querySelector('#tg-card #tg-2fa input[name=password]')");
    let form = text_of(&tab, "#tg-2fa");
    assert!(form.contains("Облачный пароль") && form.contains("Подсказка: любимый сорт чая"), "{form}");
    assert!(text_of(&tab, "#tg-card .card-head").contains("Нужен пароль"));
    screenshots(&tab, "cabinet-tg-2fa");

    fill(&tab, "#tg-2fa input[name=password]", "неверный");
    click(&tab, "#tg-2fa button[type=submit]");
    let error = wait_js(&tab, "document.querySelector('#tg-2fa .form-error').innerText");
    assert!(error.as_str().unwrap().starts_with("Пароль не подошёл"), "{error}");
    screenshots(&tab, "cabinet-tg-2fa-wrong");

    fill(&tab, "#tg-2fa input[name=password]", "верный пароль");
    click(&tab, "#tg-2fa button[type=submit]");
    wait_js(&tab, "document.querySelector('#tg-card [data-connected]') !== null");
    assert!(text_of(&tab, "#tg-card").contains("Подключено как @shop"));
    let (_, status) = app.admin_get("/admin/tg/status?tenant=1").await;
    assert_eq!(status["state"], "authorized", "{status}");
    screenshots(&tab, "cabinet-tg-connected");

    // Telegram limits the account for writing to new people: the send fails and the
    // agency sees the alert in red, with what to do.
    script.fail_next_send(TgError::PeerFlood);
    let (_, answer) = app
        .admin_post(
            "/send?wait=true",
            &json!({"tenant": 1, "channel": "telegram", "to": "me", "text": "Здравствуйте!"}),
        )
        .await;
    assert_eq!(answer["error"], "provider_refused", "{answer}");
    open_admin(&tab, &app, "tenant/1");
    let alert = wait_js(&tab, "(document.querySelector('#admin-tg #admin-tg-peer-flood') || {}).innerText");
    let alert = alert.as_str().unwrap();
    assert!(alert.contains("PEER_FLOOD") && alert.contains("Что делать"), "{alert}");
    assert!(text_of(&tab, "#admin-tg").contains("Аккаунт @shop"));
    wait_js(&tab, "document.querySelectorAll('#tenant-page #failures-table tbody tr').length === 1");
    screenshots(&tab, "admin-tenant-telegram");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_sees_dead_letters_broken_guardrails_and_send_failures_and_retries() {
    let recorder = Recorder::new();
    let extensions = Extensions {
        drivers: vec![(Channel::Telegram, Arc::new(RecordingFactory(recorder.clone())))],
        ..Default::default()
    };
    let vars = [("OUTBOX_ENABLED", "true"), ("OUTBOX_WHITELIST", "*"), ("OUTBOX_MAX_ATTEMPTS", "1")];
    let app = spawn_app_ext(&vars, extensions).await;
    app.tenant_with_key(1).await;
    let token = app.provider_token(1).await;
    let send = |text: &str| json!({"tenant": 1, "channel": "telegram", "to": "me", "text": text});

    // A network error with one attempt allowed: the job fails and is dead-lettered.
    recorder.fail_next(SendError::Transient("connection reset".into()), 1);
    let (_, answer) = app.admin_post("/send?wait=true", &send("Ваш заказ готов к выдаче")).await;
    assert_eq!(answer["error"], "transient_error", "{answer}");
    // A refusal is final: failed, not dead-lettered.
    recorder.fail_next(SendError::Permanent("message too long".into()), 1);
    let (_, answer) = app.admin_post("/send?wait=true", &send("Скидка 10 % до пятницы")).await;
    assert_eq!(answer["error"], "provider_refused", "{answer}");
    // Webhooks that break their guardrails: a wrong token, a sender that is no number.
    let (status, _) = hook(&app, "wrong-token", &json!({"event": "messages.incoming", "tenant": 1})).await;
    assert_eq!(status, 401);
    let bad_sender = json!({"event": "messages.incoming", "tenant": 1, "channel": "whatsapp", "message_id": "m1",
                            "from": "not-a-number", "text": "Здравствуйте"});
    let (status, _) = hook(&app, &token, &bad_sender).await;
    assert_eq!(status, 422);

    let ui = Ui::launch();
    let tab = ui.tab();
    open_admin(&tab, &app, "failures");
    wait_js(&tab, "document.querySelectorAll('#failures-table tbody tr').length === 2");
    let failures = text_of(&tab, "#failures-table");
    assert!(failures.contains("provider_refused") && failures.contains("Скидка 10 % до пятницы"), "{failures}");
    assert!(failures.contains("transient_error"), "{failures}");
    screenshots(&tab, "admin-failures-list");

    open(&tab, &app.url("/admin#guardrails"));
    wait_js(&tab, "document.querySelectorAll('#guardrails-table tbody tr').length >= 4");
    assert!(body_text(&tab).contains("Превышен порог"));
    let broken = eval(
        &tab,
        "JSON.stringify([...document.querySelectorAll('#guardrails-table tr[data-ok=false] .mono')].map(e => e.innerText))",
    );
    let broken: Vec<String> = serde_json::from_str(broken.as_str().unwrap()).unwrap();
    assert!(broken.contains(&"webhook_non_2xx".to_string()), "{broken:?}");
    assert!(broken.contains(&"whatsapp_invalid_from".to_string()), "{broken:?}");
    assert_eq!(eval(&tab, "document.querySelectorAll('#guardrails-table .pill.err').length"), json!(broken.len()));
    screenshots(&tab, "admin-guardrails-broken");

    open(&tab, &app.url("/admin#queues"));
    wait_js(&tab, "document.querySelectorAll('#dead-list [data-dead-item]').length === 1");
    let dead = text_of(&tab, "#dead-list");
    assert!(dead.contains("Ваш заказ готов к выдаче") && dead.contains("transient_error"), "{dead}");
    let outbox_dead = text_of(&tab, "#queues-table tr[data-queue='outbox:send'] td:last-child");
    assert_eq!(outbox_dead.trim(), "1");
    screenshots(&tab, "admin-queues-dead");
    // Retried from the page: sent this time, and the list is empty.
    click(&tab, "#dead-list button[data-dead]");
    wait_js(&tab, "document.querySelector('#dead-card').innerText.includes('Всё обработано')");
    eventually(WAIT, || async {
        recorder.sent().iter().any(|m| m.text.as_deref() == Some("Ваш заказ готов к выдаче")).then_some(())
    })
    .await;
    let (_, queues) = app.admin_get("/admin/queues").await;
    assert_eq!(queues["dead"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avito_connects_with_own_keys_shows_the_webhook_and_refreshes_and_the_admin_lists_subscriptions() {
    const WEBHOOK_BASE: &str = "https://hooks.example.org/webhook/avito";
    let fake = FakeAvito::start().await;
    let auth_url = format!("{}/oauth", fake.base);
    let vars = [
        ("AVITO_API_BASE", fake.base.as_str()),
        ("AVITO_AUTH_URL", auth_url.as_str()),
        ("AVITO_WEBHOOK_URL", WEBHOOK_BASE),
    ];
    let app = spawn_app_with(&vars).await;
    let key = app.tenant_with_key(1).await;
    // Avito refuses the webhook at first.
    fake.world().webhook_status = Some(404);

    let ui = Ui::launch();
    let tab = ui.tab();
    open(&tab, &cabinet_url(&app, &key, "connect"));
    wait_js(&tab, "!!document.querySelector('#avito-credentials')");
    assert!(eval(&tab, "document.querySelector('#avito-oauth') === null").as_bool().unwrap(), "no agency app");
    fill(&tab, "#avito-credentials input[name=client_id]", OWN_ID);
    fill(&tab, "#avito-credentials input[name=client_secret]", OWN_SECRET);
    click(&tab, "#avito-credentials button[type=submit]");
    wait_js(&tab, "document.querySelector('#avito-card [data-connected]') !== null");
    let card = text_of(&tab, "#avito-card");
    assert!(card.contains("Подключено: Мебель Казань") && card.contains("Свои ключи Авито Pro"), "{card}");
    assert!(card.contains("Вебхук не подключён"), "{card}");
    screenshots(&tab, "cabinet-avito-webhook-failed");

    // Avito accepts it now: "refresh" registers the webhook.
    fake.world().webhook_status = None;
    click(&tab, "#avito-refresh");
    wait_js(&tab, "document.querySelector('#avito-card').innerText.includes('Вебхук подключён')");
    assert!(text_of(&tab, "#avito-card .card-head").contains("Подключено"));
    let token = app.provider_token(1).await;
    let subscription = format!("{WEBHOOK_BASE}?token={token}");
    assert_eq!(fake.world().webhooks, vec![subscription.clone()]);
    screenshots(&tab, "cabinet-avito-connected");

    open_admin(&tab, &app, "tenant/1");
    wait_js(&tab, "document.querySelectorAll('#avito-subscriptions code').length === 1");
    assert_eq!(text_of(&tab, "#avito-subscriptions code"), subscription);
    assert!(text_of(&tab, "#admin-avito").contains("вебхук подключён"));
    screenshots(&tab, "admin-tenant-avito");
}
