//! An OpenAI-compatible chat-completions client (llama.cpp's `llama-server`, Ollama, vLLM,
//! a hosted model under a BAA): one blocking POST to `URL/chat/completions` per attempt, a
//! per-attempt timeout, bounded retries on timeouts, connection errors, 429 and 5xx, TLS by
//! rustls. The API key is read from a credential file and kept in [`ApiKey`], whose `Debug`
//! prints no secret; it is sent only in the `Authorization` header.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The credential name the NixOS module passes with `LoadCredential=` (read from
/// `$CREDENTIALS_DIRECTORY`).
pub const CREDENTIAL_NAME: &str = "advisor-api-key";

/// Longest answer body read (a chat completion for a few hundred tokens is far smaller).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// An API key. Never printed: `Debug` shows `ApiKey(<redacted>)`.
#[derive(Clone)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// Read the key from `path` (surrounding whitespace trimmed). An empty file, or one with
    /// characters that cannot go into an HTTP header, is an error naming the file (never
    /// the content).
    pub fn read(path: &Path) -> Result<ApiKey> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the advisor API key {}", path.display()))?;
        let key = text.trim();
        if key.is_empty() {
            bail!("the advisor API key file {} is empty", path.display());
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the advisor API key in {} holds characters that are not printable ASCII", path.display());
        }
        Ok(ApiKey(key.to_string()))
    }
}

/// Why a request got no usable reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatError {
    /// No answer within the timeout (after every attempt).
    Timeout(String),
    /// The server answered with a non-success status.
    Status { status: u16, body_excerpt: String },
    /// Connection refused, reset, TLS failure, ...
    Transport(String),
    /// The model refused (`message.refusal`, or `finish_reason: content_filter`).
    Refusal(String),
    /// The body is not a chat completion with a text answer.
    Malformed(String),
}

impl ChatError {
    /// The record's short name for the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            ChatError::Timeout(_) => "timeout",
            ChatError::Status { .. } => "http_error",
            ChatError::Transport(_) => "transport_error",
            ChatError::Refusal(_) => "refusal",
            ChatError::Malformed(_) => "malformed",
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ChatError::Timeout(_) | ChatError::Transport(_) => true,
            ChatError::Status { status, .. } => *status == 429 || *status >= 500,
            ChatError::Refusal(_) | ChatError::Malformed(_) => false,
        }
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatError::Timeout(s) => write!(f, "no answer in time: {s}"),
            ChatError::Status { status, body_excerpt } => write!(f, "HTTP {status}: {body_excerpt}"),
            ChatError::Transport(s) => write!(f, "request failed: {s}"),
            ChatError::Refusal(s) => write!(f, "the model refused: {s}"),
            ChatError::Malformed(s) => write!(f, "not a chat completion: {s}"),
        }
    }
}

/// A text answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `choices[0].message.content`.
    pub content: String,
    /// The `model` the server says answered, if it says.
    pub model: Option<String>,
}

/// The outcome of [`ChatClient::complete`], with how many attempts and how long it took.
#[derive(Debug, Clone)]
pub struct Completion {
    pub result: Result<Reply, ChatError>,
    pub attempts: u32,
    pub elapsed: Duration,
}

/// The client for one endpoint.
#[derive(Debug)]
pub struct ChatClient {
    http: reqwest::blocking::Client,
    url: String,
    key: Option<ApiKey>,
    retries: u32,
}

impl ChatClient {
    /// A client for `base_url` (`…/v1`), each attempt bounded by `timeout`.
    pub fn new(base_url: &str, key: Option<ApiKey>, timeout: Duration, retries: u32) -> Result<ChatClient> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("msp-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the advisor HTTP client")?;
        let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        reqwest::Url::parse(&url).with_context(|| format!("advisor URL {}", redact_url(base_url)))?;
        Ok(ChatClient { http, url, key, retries })
    }

    /// POST `body`, retrying what may succeed on a second try (backoff 250 ms, doubling).
    pub fn complete(&self, body: &Value) -> Completion {
        let t0 = Instant::now();
        let mut delay = Duration::from_millis(250);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self.attempt(body);
            match &result {
                Err(e) if e.retryable() && attempts <= self.retries => {
                    tracing::warn!(attempt = attempts, error = %e, "advisor request failed; retrying");
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                _ => return Completion { result, attempts, elapsed: t0.elapsed() },
            }
        }
    }

    fn attempt(&self, body: &Value) -> Result<Reply, ChatError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ChatError::Malformed(format!("encoding the request: {e}")))?;
        let mut req = self.http.post(&self.url).header("content-type", "application/json").body(bytes);
        if let Some(k) = &self.key {
            req = req.bearer_auth(&k.0);
        }
        let resp = req.send().map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().map_err(transport)?;
        let bytes = &bytes[..bytes.len().min(MAX_BODY_BYTES)];
        if !status.is_success() {
            return Err(ChatError::Status { status: status.as_u16(), body_excerpt: excerpt(bytes) });
        }
        parse_reply(bytes)
    }
}

fn transport(e: reqwest::Error) -> ChatError {
    // reqwest's message names the URL; ours carries no credentials, but keep it short.
    let timeout = e.is_timeout();
    let text = format!("{}", e.without_url());
    if timeout {
        ChatError::Timeout(text)
    } else {
        ChatError::Transport(text)
    }
}

/// A chat-completion body → its first choice's text, or why not.
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, ChatError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ChatError::Malformed(format!("body is not JSON ({e}): {}", excerpt(bytes))))?;
    let choice = v.get("choices").and_then(|c| c.get(0)).ok_or_else(|| ChatError::Malformed(format!("no choices: {}", excerpt(bytes))))?;
    let message = choice.get("message").ok_or_else(|| ChatError::Malformed("choices[0] has no message".into()))?;
    if let Some(r) = message.get("refusal").and_then(Value::as_str).filter(|r| !r.trim().is_empty()) {
        return Err(ChatError::Refusal(excerpt(r.as_bytes())));
    }
    if choice.get("finish_reason").and_then(Value::as_str) == Some("content_filter") {
        return Err(ChatError::Refusal("finish_reason content_filter".into()));
    }
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| ChatError::Malformed("choices[0].message.content is not text".into()))?;
    Ok(Reply { content: content.to_string(), model: v.get("model").and_then(Value::as_str).map(str::to_string) })
}

/// A bounded, scrubbed excerpt of what a server sent (it goes into evidence).
pub fn excerpt(bytes: &[u8]) -> String {
    super::prompt::scrub_text(&String::from_utf8_lossy(bytes), 512)
}

/// `url` without user name, password, query or fragment (what the record and logs show).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_debug_is_redacted_and_empty_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "sk-secret-123\n").unwrap();
        let k = ApiKey::read(&p).unwrap();
        assert_eq!(format!("{k:?}"), "ApiKey(<redacted>)");
        let c = ChatClient::new("http://127.0.0.1:9/v1", Some(k), Duration::from_secs(1), 0).unwrap();
        assert!(!format!("{c:?}").contains("sk-secret"), "{c:?}");
        std::fs::write(&p, "  \n").unwrap();
        let e = format!("{:#}", ApiKey::read(&p).unwrap_err());
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn replies_refusals_and_garbage() {
        let ok = br#"{"model":"m","choices":[{"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}]}"#;
        assert_eq!(parse_reply(ok).unwrap(), Reply { content: "{}".into(), model: Some("m".into()) });
        let refused = br#"{"choices":[{"message":{"role":"assistant","content":null,"refusal":"I cannot help"}}]}"#;
        assert!(matches!(parse_reply(refused), Err(ChatError::Refusal(_))));
        assert!(matches!(parse_reply(b"<html>"), Err(ChatError::Malformed(_))));
        assert!(matches!(parse_reply(br#"{"choices":[]}"#), Err(ChatError::Malformed(_))));
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redact_url("https://user:pw@llm.example/v1?key=abc#x"), "https://llm.example/v1");
    }
}
