//! The bot against a local fake OpenAI-compatible server that records requests:
//! parameters, persona, history, catalog rows, the price guard, debounce, silence,
//! offline replies, persona hot reload, dialogs, and `avioctl chat`.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use avio::domain::TenantId;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::*;
use serde_json::{Value, json};

/// What the fake answers next: a reply text, or an HTTP error status.
#[derive(Clone)]
enum Scripted {
    Text(&'static str),
    Status(u16),
}

#[derive(Default)]
struct FakeLlm {
    requests: Mutex<Vec<Value>>,
    script: Mutex<VecDeque<Scripted>>,
}

impl FakeLlm {
    fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
    fn push(&self, answer: Scripted) {
        self.script.lock().unwrap().push_back(answer);
    }
}

async fn completions(State(fake): State<Arc<FakeLlm>>, Json(body): Json<Value>) -> Response {
    fake.requests.lock().unwrap().push(body);
    let next = fake.script.lock().unwrap().pop_front().unwrap_or(Scripted::Text("Здравствуйте! Чем могу помочь?"));
    match next {
        Scripted::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Scripted::Text(text) => Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
        }))
        .into_response(),
    }
}

async fn fake_llm() -> (Arc<FakeLlm>, String) {
    let fake = Arc::new(FakeLlm::default());
    let app =
        axum::Router::new().route("/v1/chat/completions", axum::routing::post(completions)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, url)
}

const CATALOG: &str = "sku,name,category,price,currency,unit,stock,url,description\n\
D-101,\"Диван угловой «Милан» 2×1,6 м\",Диваны,45990,RUB,шт,3,,Велюр\n\
D-102,Диван-кровать «Лофт»,Диваны,32990,RUB,шт,0,,\n\
K-201,Кресло «Уют» рогожка,Кресла,12990.5,RUB,шт,5,,\n";

/// An app with tenant 1, its catalog indexed, and (optionally) the fake LLM.
async fn bot_app(llm_url: Option<&str>, extra: &[(&str, &str)]) -> (TestApp, String) {
    let mut vars: Vec<(&str, &str)> = vec![("BOT_DEBOUNCE_MS", "100")];
    if let Some(url) = llm_url {
        vars.push(("OPENAI_API_KEY", "sk-test-key"));
        vars.push(("OPENAI_BASE_URL", url));
    }
    vars.extend_from_slice(extra);
    let app = spawn_app_with(&vars).await;
    let key = app.tenant_with_key(1).await;
    let tenant = TenantId::new(1).unwrap();
    let csv = app.data_dir.join("tenants/1/catalogs/price.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    std::fs::write(&csv, CATALOG).unwrap();
    let csv_path = csv.display().to_string();
    app.state
        .files
        .update(tenant, move |doc| {
            doc.integrations.insert("uploaded_catalog".into(), json!({"csv_path": csv_path, "type": "csv"}));
        })
        .await
        .unwrap();
    app.state.bot.catalog_ready(&app.state, tenant).await;
    (app, key)
}

async fn say(app: &TestApp, peer: &str, text: &str) {
    let (status, body) =
        app.admin_post("/admin/simulator/message", &json!({"tenant": 1, "peer": peer, "text": text})).await;
    assert_eq!(status, 200, "{body}");
}

/// Waits for the bot's replies to `peer` (the first within 20 s, then any that follow).
async fn replies(app: &TestApp, peer: &str) -> Vec<String> {
    let (_, body) = app.admin_get(&format!("/admin/simulator/replies?tenant=1&peer={peer}&wait_ms=20000")).await;
    body["replies"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap_or("").to_string()).collect()
}

async fn no_reply(app: &TestApp, peer: &str) {
    let (_, body) = app.admin_get(&format!("/admin/simulator/replies?tenant=1&peer={peer}&wait_ms=1500")).await;
    assert_eq!(body["replies"], json!([]), "the bot should be silent");
}

fn system_prompt(request: &Value) -> String {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_llm_gets_the_parameters_persona_history_and_catalog_rows() {
    let (fake, url) = fake_llm().await;
    let (app, _) = bot_app(Some(&url), &[]).await;
    fake.push(Scripted::Text("Здравствуйте! Меня зовут Анна. Что вы ищете?"));
    say(&app, "lead1", "Здравствуйте").await;
    assert_eq!(replies(&app, "lead1").await, ["Здравствуйте! Меня зовут Анна. Что вы ищете?"]);
    fake.push(Scripted::Text("Диван угловой «Милан» стоит 45 990 ₽, есть в наличии."));
    say(&app, "lead1", "Сколько стоит угловой диван Милан?").await;
    assert_eq!(replies(&app, "lead1").await, ["Диван угловой «Милан» стоит 45 990 ₽, есть в наличии."]);

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let r = &requests[1];
    assert_eq!(r["model"], "gpt-4o-mini");
    assert_eq!(r["temperature"].as_f64().map(|v| (v * 100.0).round()), Some(70.0));
    assert_eq!(r["top_p"].as_f64().map(|v| (v * 100.0).round()), Some(90.0));
    assert_eq!(r["frequency_penalty"].as_f64().map(|v| (v * 100.0).round()), Some(20.0));
    assert_eq!(r["presence_penalty"].as_f64().map(|v| (v * 100.0).round()), Some(5.0));
    assert_eq!(r["max_tokens"], 260);
    let system = system_prompt(r);
    assert!(system.contains("Анна") && system.contains("«Уютный дом»") && system.contains("Казань"), "{system}");
    assert!(
        !system.contains("{AGENT_NAME}") && !system.contains("{BRAND}") && !system.contains("{CURRENCY}"),
        "raw placeholder left"
    );
    assert!(system.contains("[D-101] Диван угловой «Милан» 2×1,6 м — 45 990 ₽"), "catalog row missing: {system}");
    assert!(!system.contains("Кресло"), "irrelevant rows stay out: {system}");
    let turns: Vec<(String, String)> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| (m["role"].as_str().unwrap().into(), m["content"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        turns,
        [
            ("user".to_string(), "Здравствуйте".to_string()),
            ("assistant".to_string(), "Здравствуйте! Меня зовут Анна. Что вы ищете?".to_string()),
            ("user".to_string(), "Сколько стоит угловой диван Милан?".to_string()),
        ]
    );
    let auth = app.state.metrics.encode();
    assert!(auth.contains("llm_tokens_total{kind=\"prompt\"} 240"), "{auth}");
}

#[tokio::test]
async fn a_made_up_price_is_regenerated_once() {
    let (fake, url) = fake_llm().await;
    let (app, _) = bot_app(Some(&url), &[]).await;
    fake.push(Scripted::Text("Диван угловой «Милан» — всего 39 990 ₽!"));
    fake.push(Scripted::Text("Диван угловой «Милан» стоит 45 990 ₽."));
    say(&app, "p1", "Почём диван Милан?").await;
    assert_eq!(replies(&app, "p1").await, ["Диван угловой «Милан» стоит 45 990 ₽."]);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(system_prompt(&requests[1]).contains("39 990 ₽"), "the retry says which price was wrong");
}

#[tokio::test]
async fn a_price_wrong_twice_falls_back_to_the_catalog() {
    let (fake, url) = fake_llm().await;
    let (app, _) = bot_app(Some(&url), &[]).await;
    fake.push(Scripted::Text("Диван «Милан» угловой — 10 000 ₽"));
    fake.push(Scripted::Text("Диван «Милан» угловой — 20 000 ₽"));
    say(&app, "p2", "Почём диван Милан?").await;
    let got = replies(&app, "p2").await;
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("45 990 ₽") && !got[0].contains("10 000") && !got[0].contains("20 000"), "{got:?}");
    let tenant = TenantId::new(1).unwrap();
    let contact =
        app.state.store.contact_by_peer(tenant, avio::domain::Channel::Simulator, "p2".into()).await.unwrap().unwrap();
    assert!(app.state.dialogs.get(tenant, contact).await.unwrap().needs_human);
}

#[tokio::test]
async fn a_burst_is_answered_once() {
    let (fake, url) = fake_llm().await;
    let (app, _) = bot_app(Some(&url), &[("BOT_DEBOUNCE_MS", "1500")]).await;
    fake.push(Scripted::Text("Подберём! Какой размер нужен?"));
    say(&app, "burst", "Добрый день").await;
    say(&app, "burst", "ищу диван").await;
    say(&app, "burst", "угловой").await;
    assert_eq!(replies(&app, "burst").await, ["Подберём! Какой размер нужен?"]);
    no_reply(&app, "burst").await;
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one LLM call for the burst");
    let users: Vec<&str> = requests[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["Добрый день", "ищу диван", "угловой"]);
}

#[tokio::test]
async fn takeover_silences_the_bot_until_release() {
    let (fake, url) = fake_llm().await;
    let (app, key) = bot_app(Some(&url), &[]).await;
    say(&app, "t1", "Здравствуйте").await;
    assert_eq!(replies(&app, "t1").await.len(), 1);
    let (_, dialogs) = app.get(&format!("/pub/dialogs?tenant=1&k={key}")).await;
    let contact = dialogs["dialogs"][0]["contact_id"].as_i64().unwrap();
    let (status, _) = app.post(&format!("/pub/dialogs/{contact}/takeover?tenant=1&k={key}"), &json!({})).await;
    assert_eq!(status, 200);
    say(&app, "t1", "Вы тут?").await;
    no_reply(&app, "t1").await;
    assert_eq!(fake.requests().len(), 1);
    let (_, dialogs) = app.get(&format!("/pub/dialogs?tenant=1&k={key}")).await;
    assert_eq!(dialogs["dialogs"][0]["bot_paused"], true);
    app.post(&format!("/pub/dialogs/{contact}/release?tenant=1&k={key}"), &json!({})).await;
    say(&app, "t1", "Ау").await;
    assert_eq!(replies(&app, "t1").await.len(), 1);
}

#[tokio::test]
async fn auto_reply_off_keeps_the_bot_silent() {
    let (fake, url) = fake_llm().await;
    let (app, key) = bot_app(Some(&url), &[]).await;
    app.post(&format!("/pub/settings/save?tenant=1&k={key}"), &json!({"behavior": {"auto_reply_enabled": false}}))
        .await;
    say(&app, "off", "Здравствуйте").await;
    no_reply(&app, "off").await;
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn offline_mode_quotes_the_catalog_price() {
    let (app, _) = bot_app(None, &[]).await;
    say(&app, "o1", "Сколько стоит кресло Уют?").await;
    let got = replies(&app, "o1").await;
    assert!(got[0].contains("Кресло «Уют» рогожка — 12 990,50 ₽, в наличии"), "{got:?}");
    say(&app, "o2", "Здравствуйте, можно с вами поговорить?").await;
    let got = replies(&app, "o2").await;
    assert!(got[0].contains("Передаю ваш вопрос менеджеру"), "{got:?}");
}

#[tokio::test]
async fn a_failing_llm_falls_back_to_offline_replies() {
    let (fake, url) = fake_llm().await;
    let (app, _) = bot_app(Some(&url), &[]).await;
    for _ in 0..4 {
        fake.push(Scripted::Status(500));
    }
    say(&app, "f1", "Есть диван Лофт?").await;
    let got = replies(&app, "f1").await;
    assert!(got[0].contains("Диван-кровать «Лофт» — 32 990 ₽, под заказ"), "{got:?}");
    assert_eq!(fake.requests().len(), 4, "one try and three retries");
}

#[tokio::test]
async fn the_daily_token_budget_switches_to_offline() {
    let (fake, url) = fake_llm().await;
    let (app, _) = bot_app(Some(&url), &[("LLM_DAILY_TOKENS_PER_TENANT", "100")]).await;
    say(&app, "b1", "Здравствуйте").await;
    assert_eq!(replies(&app, "b1").await.len(), 1);
    say(&app, "b1", "Сколько стоит кресло Уют?").await;
    let got = replies(&app, "b1").await;
    assert!(got[0].contains("12 990,50 ₽"), "{got:?}");
    assert_eq!(fake.requests().len(), 1, "the budget (150 > 100 tokens) was spent by the first reply");
}

#[tokio::test]
async fn a_saved_persona_applies_to_the_next_message() {
    let (fake, url) = fake_llm().await;
    let (app, key) = bot_app(Some(&url), &[]).await;
    let (status, persona) = app.get(&format!("/pub/persona?tenant=1&k={key}")).await;
    assert_eq!(status, 200);
    assert_eq!(persona["is_default"], true);
    assert!(!persona["preview"].as_str().unwrap().contains('{'), "preview fills every placeholder");
    say(&app, "h1", "Привет").await;
    replies(&app, "h1").await;
    let (status, saved) = app
        .post(
            &format!("/pub/persona?tenant=1&k={key}"),
            &json!({"text": "Ты {AGENT_NAME} из {BRAND}. Отвечай стихами в {CHANNEL}, цены в {CURRENCY}."}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["preview"], "Ты Анна из Уютный дом. Отвечай стихами в WhatsApp, цены в ₽.");
    say(&app, "h1", "Ещё вопрос").await;
    replies(&app, "h1").await;
    let requests = fake.requests();
    assert!(
        system_prompt(&requests[1]).starts_with("Ты Анна из Уютный дом. Отвечай стихами в WhatsApp"),
        "{}",
        system_prompt(&requests[1])
    );
    assert_eq!(common::file_mode(&app.data_dir.join("tenants/1/persona.md")), 0o600);
    let (status, body) = app.post(&format!("/pub/persona?tenant=1&k={key}"), &json!({"text": "  "})).await;
    assert_eq!((status, body["reason"].clone()), (422, json!("text_required")));
    let (_, reset) = app.post(&format!("/pub/persona?tenant=1&k={key}"), &json!({"reset": true})).await;
    assert_eq!(reset["is_default"], true);
}

#[tokio::test]
async fn an_operator_message_from_the_phone_pauses_the_bot() {
    let (fake, url) = fake_llm().await;
    let (app, _) = bot_app(Some(&url), &[]).await;
    let token = app.provider_token(1).await;
    let hook = |body: Value| {
        let (app, token) = (&app, &token);
        async move { app.http.post(app.url(&format!("/webhook?token={token}"))).json(&body).send().await.unwrap().status() }
    };
    let phone_reply = json!({"tenant": 1, "channel": "whatsapp", "message_id": "op-1", "from_me": true,
                             "to": "79991234567", "from": "79990000000", "text": "Здравствуйте, это менеджер Ольга"});
    assert_eq!(hook(phone_reply).await, 200);
    let lead = json!({"tenant": 1, "channel": "whatsapp", "message_id": "lead-1", "from": "79991234567", "text": "Спасибо, жду"});
    assert_eq!(hook(lead).await, 200);
    let dir = app.data_dir.clone();
    eventually(Duration::from_secs(10), || {
        let dir = dir.clone();
        async move { (count(&db(&dir), "SELECT COUNT(*) FROM messages") == 2).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fake.requests().is_empty(), "the bot stays out while the operator talks");
    let author: String = db(&app.data_dir)
        .query_row("SELECT author FROM messages WHERE provider_message_id = 'op-1'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(author, "operator");
}

#[tokio::test]
async fn dialogs_show_lead_bot_and_operator_messages_and_operators_reply_through_the_outbox() {
    let (app, key) = bot_app(None, &[]).await;
    say(&app, "d1", "Сколько стоит кресло Уют?").await;
    replies(&app, "d1").await;
    let (status, list) = app.get(&format!("/pub/dialogs?tenant=1&k={key}")).await;
    assert_eq!(status, 200);
    let contact = list["dialogs"][0]["contact_id"].as_i64().unwrap();
    assert_eq!(list["dialogs"][0]["channel"], "simulator");
    let (status, answer) = app
        .post(&format!("/pub/dialogs/{contact}/reply?tenant=1&k={key}"), &json!({"text": "Добрый день, это Ольга"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(replies(&app, "d1").await, ["Добрый день, это Ольга"]);
    let (status, dialog) = app.get(&format!("/pub/dialogs/{contact}?tenant=1&k={key}")).await;
    assert_eq!(status, 200);
    let authors: Vec<&str> =
        dialog["messages"].as_array().unwrap().iter().map(|m| m["author"].as_str().unwrap()).collect();
    assert_eq!(authors, ["lead", "bot", "operator"]);
    assert_eq!(dialog["messages"][1]["status"], "sent");
    assert_eq!(dialog["state"]["facts"]["interest"], "Кресло «Уют» рогожка");
    let (status, body) = app.get(&format!("/pub/dialogs/99999?tenant=1&k={key}")).await;
    assert_eq!((status, body["error"].clone()), (404, json!("contact_not_found")));
}

#[tokio::test(flavor = "multi_thread")]
async fn avioctl_chat_answers_a_product_question_with_the_catalog_price() {
    use std::io::Write;
    let (app, _) = bot_app(None, &[]).await;
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_avioctl"))
            .env_clear()
            .env("AVIO_URL", &base)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["chat", "--tenant", "1", "--contact", "cli-lead", "--reset", "--show-messages"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.as_mut().unwrap().write_all("Сколько стоит диван Милан?\nreset\nexit\n".as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("bot> ") && text.contains("45 990 ₽"), "{text}");
    assert!(text.contains("lead: Сколько стоит диван Милан?"), "{text}");
    assert!(text.contains("(state reset)"), "{text}");
}

/// Uploads a 1C-style price list through the cabinet route and waits for its job.
async fn upload_catalog(app: &TestApp, key: &str) {
    let csv = "Артикул;Номенклатура;Цена;Остаток\nD-101;Диван угловой «Милан» 2×1,6 м;45 990,00;3\nK-201;Кресло «Уют» рогожка;12 990,50;5\n";
    let boundary = "avio-bot-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"price.csv\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    );
    let r = app
        .http
        .post(app.url(&format!("/pub/catalog/upload?tenant=1&k={key}")))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, answer) = split(r).await;
    assert_eq!(status, 200, "{answer}");
    let job = answer["job_id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), || {
        let (app, job, key) = (app, job.clone(), key.to_string());
        async move {
            let (_, status) = app.get(&format!("/pub/catalog/job?tenant=1&k={key}&job_id={job}")).await;
            (status["state"] == "done").then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn an_uploaded_catalog_grounds_replies_through_the_llm_and_offline() {
    let (fake, url) = fake_llm().await;
    let app =
        spawn_app_with(&[("BOT_DEBOUNCE_MS", "100"), ("OPENAI_API_KEY", "sk-test"), ("OPENAI_BASE_URL", &url)]).await;
    let key = app.tenant_with_key(1).await;
    upload_catalog(&app, &key).await;
    let (_, settings) = app.get(&format!("/pub/settings/get?tenant=1&k={key}")).await;
    let index = &settings["cfg"]["integrations"]["uploaded_catalog"]["index"];
    assert_eq!(index["rows"], 2, "the index is rebuilt when the job finishes: {settings}");
    assert!(index["built_at"].is_string());

    fake.push(Scripted::Text("Кресло «Уют» рогожка стоит 12 990,50 ₽, есть в наличии."));
    say(&app, "u1", "Сколько стоит кресло уют?").await;
    assert_eq!(replies(&app, "u1").await, ["Кресло «Уют» рогожка стоит 12 990,50 ₽, есть в наличии."]);
    assert!(system_prompt(&fake.requests()[0]).contains("[K-201] Кресло «Уют» рогожка — 12 990,50 ₽"));

    let offline = spawn_app_with(&[("BOT_DEBOUNCE_MS", "100")]).await;
    let key = offline.tenant_with_key(1).await;
    upload_catalog(&offline, &key).await;
    say(&offline, "u2", "Почём диван Милан?").await;
    let got = replies(&offline, "u2").await;
    assert!(got[0].contains("Диван угловой «Милан» 2×1,6 м — 45 990 ₽, в наличии"), "{got:?}");
}
