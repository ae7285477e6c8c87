//! The LLM client: OpenAI-compatible chat completions (OpenAI, Ollama, llama.cpp's
//! server) at `OPENAI_BASE_URL`, with SPEC 7.2's sampling parameters, a timeout, and
//! retries with backoff on 429, 5xx and transport errors.
//!
//! The request and response are the few fields of the wire format we use, typed here:
//! client crates mark `max_tokens` deprecated in favour of `max_completion_tokens`,
//! which Ollama and llama.cpp ignore, and would add dozens of crates for two structs.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// SPEC 7.2.
pub const TEMPERATURE: f32 = 0.7;
pub const TOP_P: f32 = 0.9;
pub const FREQUENCY_PENALTY: f32 = 0.2;
pub const PRESENCE_PENALTY: f32 = 0.05;
pub const MAX_TOKENS: u32 = 260;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    temperature: f32,
    top_p: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
    max_tokens: u32,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency: Duration,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM answered HTTP {0}")]
    Status(u16),
    #[error("the LLM could not be reached: {0}")]
    Transport(String),
    #[error("the LLM answer could not be read: {0}")]
    Decode(String),
    #[error("the LLM answered with no text")]
    Empty,
}

impl LlmError {
    /// Worth another try: rate limits, server errors, network trouble.
    fn is_transient(&self) -> bool {
        match self {
            LlmError::Status(code) => *code == 429 || *code >= 500,
            LlmError::Transport(_) => true,
            LlmError::Decode(_) | LlmError::Empty => false,
        }
    }
}

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    base_url: String,
    api_key: Secret,
    model: String,
    retries: usize,
    retry_min_delay: Duration,
}

impl LlmClient {
    pub fn new(http: reqwest::Client, base_url: &str, api_key: Secret, model: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            model: model.to_string(),
            retries: 3,
            retry_min_delay: Duration::from_millis(500),
        }
    }

    /// Shorter backoff (tests against a local fake).
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_min_delay = delay;
        self
    }

    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let attempt = || self.complete_once(messages);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry_min_delay)
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.retries)
            .with_jitter();
        let mut completion = attempt
            .retry(backoff)
            .when(LlmError::is_transient)
            .notify(|e, delay| tracing::warn!(event = "llm_retry", error = %e, delay_ms = delay.as_millis() as u64))
            .await?;
        completion.latency = started.elapsed();
        Ok(completion)
    }

    async fn complete_once(&self, messages: &[ChatMessage]) -> Result<Completion, LlmError> {
        let body = ChatRequest {
            model: &self.model,
            messages,
            temperature: TEMPERATURE,
            top_p: TOP_P,
            frequency_penalty: FREQUENCY_PENALTY,
            presence_penalty: PRESENCE_PENALTY,
            max_tokens: MAX_TOKENS,
        };
        let response = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .bearer_auth(self.api_key.expose())
            .timeout(REQUEST_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| LlmError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(LlmError::Status(status.as_u16()));
        }
        let parsed: ChatResponse = response.json().await.map_err(|e| LlmError::Decode(e.without_url().to_string()))?;
        let usage = parsed.usage.unwrap_or_default();
        let text = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or(LlmError::Empty)?;
        Ok(Completion {
            text,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            latency: Duration::ZERO,
        })
    }
}
