//! The LLM advisor: consulted only when the deterministic planner ([`crate::plan`]) is unsure
//! (no runbook matches, or several), it may choose only among the candidate runbooks or
//! `escalate`. It never sees or writes a command: the prompt carries ids, names and
//! descriptions ([`prompt`]), and the answer is an id that is checked here (in the candidate
//! set, confidence in [0, 1], reasoning bounded) and then goes through the guard like any
//! plan. JSON-schema constrained output is requested and never trusted.
//!
//! What the advisor said, and whether and why it was used, is an [`AdvisorRecord`] in the
//! bundle's `planner` section ([`planner_section`]), signed with the rest.

pub mod client;
pub mod prompt;

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{AdvisorConfig, AdvisorPolicy};
use crate::incident::Incident;
use client::{ApiKey, ChatClient, ChatError};
use prompt::{Candidate, Prompt};

/// The answer that hands the incident to a person.
pub const ESCALATE: &str = "escalate";
/// Longest reasoning accepted, in characters (a longer one is a malformed answer).
pub const MAX_REASONING_CHARS: usize = 1000;

/// A checked answer: `runbook_id` is a candidate's id or [`ESCALATE`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub runbook_id: String,
    pub confidence: f64,
    /// Scrubbed.
    pub reasoning: String,
}

/// The answer object as the schema asks for it; anything else is malformed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer {
    runbook_id: String,
    confidence: f64,
    reasoning: String,
}

/// Why an answer was not used (`rejected` in the record), or `None` when it was valid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// `timeout`, `http_error`, `transport_error`, `refusal`, `malformed`, `unknown_id`.
    pub kind: String,
    /// One line, bounded and scrubbed.
    pub detail: String,
}

/// Check the model's text against the schema and the candidates, on our side.
pub fn check_answer(content: &str, candidates: &[Candidate]) -> Result<Answer, Rejection> {
    let reject = |kind: &str, detail: String| Rejection { kind: kind.into(), detail };
    let raw: RawAnswer = serde_json::from_str(content).map_err(|e| {
        reject("malformed", format!("the answer is not exactly the requested JSON object ({e}): {}", client::excerpt(content.as_bytes())))
    })?;
    if !(raw.confidence.is_finite() && (0.0..=1.0).contains(&raw.confidence)) {
        return Err(reject("malformed", format!("confidence {} is not in [0, 1]", raw.confidence)));
    }
    if raw.reasoning.chars().count() > MAX_REASONING_CHARS {
        return Err(reject("malformed", format!("reasoning longer than {MAX_REASONING_CHARS} characters")));
    }
    if raw.runbook_id != ESCALATE && !candidates.iter().any(|c| c.id == raw.runbook_id) {
        return Err(reject(
            "unknown_id",
            format!("{} is not one of the candidates ({})", prompt::scrub_field(&raw.runbook_id), ids(candidates).join(", ")),
        ));
    }
    Ok(Answer { runbook_id: raw.runbook_id, confidence: raw.confidence, reasoning: prompt::scrub_text(&raw.reasoning, MAX_REASONING_CHARS) })
}

fn ids(candidates: &[Candidate]) -> Vec<String> {
    candidates.iter().map(|c| c.id.clone()).collect()
}

/// The request parameters, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parameters {
    pub temperature: f64,
    pub max_tokens: u32,
    pub timeout_seconds: u64,
    pub retries: u32,
    pub confidence_threshold: f64,
    pub response_format: &'static str,
}

/// What the planner does with a consultation.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `auto`, a valid answer at or above the threshold: run this candidate (guard next).
    Run(String),
    /// `suggest`, a valid answer: escalate, naming this candidate for the person.
    Suggest(String),
    /// Deterministic behaviour: escalate.
    Escalate,
}

/// Everything recorded about one consultation (`planner.advisor` in the bundle).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisorRecord {
    pub policy: AdvisorPolicy,
    /// The configured model, and the one the server said answered.
    pub model: String,
    pub model_reported: Option<String>,
    /// The endpoint without credentials or query.
    pub endpoint: String,
    pub parameters: Parameters,
    pub authenticated: bool,
    pub candidates: Vec<String>,
    pub prompt_sha256: String,
    pub prompt: Prompt,
    pub attempts: u32,
    pub latency_ms: u64,
    /// The checked answer, when there is one.
    pub answer: Option<Answer>,
    /// Why there is no usable answer.
    pub rejected: Option<Rejection>,
    /// `used` (auto ran it), `suggested`, or `not_used`.
    pub decision: String,
    /// Why the answer was not used, for a person.
    pub reason: String,
}

impl AdvisorRecord {
    /// What the planner does with it.
    pub fn action(&self) -> Action {
        match (self.decision.as_str(), &self.answer) {
            ("used", Some(a)) => Action::Run(a.runbook_id.clone()),
            ("suggested", Some(a)) => Action::Suggest(a.runbook_id.clone()),
            _ => Action::Escalate,
        }
    }
}

/// The `planner` section of a bundle for which the advisor was consulted. `decided_by` is
/// `advisor` when its choice runs, else `deterministic` (the escalation stands).
pub fn planner_section(record: &AdvisorRecord, deterministic_reason: &str) -> Value {
    let decided_by = if record.decision == "used" { "advisor" } else { "deterministic" };
    json!({
        "decided_by": decided_by,
        "deterministic_reason": deterministic_reason,
        "advisor": record,
    })
}

/// A configured advisor (policy `suggest` or `auto`).
#[derive(Debug)]
pub struct Advisor {
    cfg: AdvisorConfig,
    client: ChatClient,
    authenticated: bool,
}

impl Advisor {
    /// The advisor `cfg` describes; `None` when the policy is `off`.
    pub fn from_config(cfg: &AdvisorConfig) -> Result<Option<Advisor>> {
        if cfg.policy == AdvisorPolicy::Off {
            return Ok(None);
        }
        let Some(url) = cfg.url.as_deref() else { anyhow::bail!("advisor.url is required when advisor.policy is not off") };
        let key = cfg.effective_api_key_file().map(|p| ApiKey::read(&p)).transpose()?;
        let authenticated = key.is_some();
        let client = ChatClient::new(url, key, Duration::from_secs(cfg.timeout_seconds), cfg.retries)?;
        Ok(Some(Advisor { cfg: cfg.clone(), client, authenticated }))
    }

    /// The request body for `prompt`: the messages, the parameters, and the answer schema
    /// (the candidates' ids and `escalate` as an enum).
    pub fn request_body(&self, prompt: &Prompt, candidates: &[Candidate]) -> Value {
        let mut allowed = ids(candidates);
        allowed.push(ESCALATE.into());
        json!({
            "model": self.cfg.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
            "stream": false,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "runbook_choice",
                    "strict": true,
                    "schema": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["runbook_id", "confidence", "reasoning"],
                        "properties": {
                            "runbook_id": {"type": "string", "enum": allowed},
                            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                            "reasoning": {"type": "string", "maxLength": MAX_REASONING_CHARS},
                        },
                    },
                },
            },
        })
    }

    /// Ask about `incident` with `candidates` (never empty when the planner calls) and decide
    /// what the policy does with the answer. Total: every failure is a record, not an error.
    pub fn consult(&self, incident: &Incident, candidates: &[Candidate]) -> AdvisorRecord {
        let prompt = prompt::build(incident, candidates);
        let body = self.request_body(&prompt, candidates);
        let completion = self.client.complete(&body);
        let (answer, rejected, model_reported) = match completion.result {
            Ok(reply) => match check_answer(&reply.content, candidates) {
                Ok(a) => (Some(a), None, reply.model),
                Err(r) => (None, Some(r), reply.model),
            },
            Err(e) => (None, Some(rejection_of(&e)), None),
        };
        let (decision, reason) = self.judge(answer.as_ref(), rejected.as_ref());
        AdvisorRecord {
            policy: self.cfg.policy,
            model: self.cfg.model.clone(),
            model_reported: model_reported.map(|m| prompt::scrub_field(&m)),
            endpoint: client::redact_url(self.cfg.url.as_deref().unwrap_or_default()),
            parameters: Parameters {
                temperature: self.cfg.temperature,
                max_tokens: self.cfg.max_tokens,
                timeout_seconds: self.cfg.timeout_seconds,
                retries: self.cfg.retries,
                confidence_threshold: self.cfg.confidence_threshold,
                response_format: "json_schema",
            },
            authenticated: self.authenticated,
            candidates: ids(candidates),
            prompt_sha256: prompt.sha256(),
            prompt,
            attempts: completion.attempts,
            latency_ms: completion.elapsed.as_millis() as u64,
            answer,
            rejected,
            decision: decision.into(),
            reason,
        }
    }

    /// The policy applied to a checked answer.
    fn judge(&self, answer: Option<&Answer>, rejected: Option<&Rejection>) -> (&'static str, String) {
        let Some(a) = answer else {
            let r = rejected.map(|r| format!("{}: {}", r.kind, r.detail)).unwrap_or_default();
            return ("not_used", format!("advisor answer not used ({r}); deterministic escalation"));
        };
        if a.runbook_id == ESCALATE {
            return ("not_used", format!("the advisor also escalates (confidence {:.2})", a.confidence));
        }
        match self.cfg.policy {
            AdvisorPolicy::Suggest => ("suggested", format!("advisor suggests {} (confidence {:.2}); a person decides", a.runbook_id, a.confidence)),
            AdvisorPolicy::Auto if a.confidence >= self.cfg.confidence_threshold => (
                "used",
                format!("advisor chose {} (confidence {:.2} >= threshold {:.2})", a.runbook_id, a.confidence, self.cfg.confidence_threshold),
            ),
            AdvisorPolicy::Auto => (
                "not_used",
                format!(
                    "advisor chose {} with confidence {:.2}, below the threshold {:.2}; deterministic escalation",
                    a.runbook_id, a.confidence, self.cfg.confidence_threshold
                ),
            ),
            AdvisorPolicy::Off => ("not_used", "advisor policy is off".into()),
        }
    }
}

fn rejection_of(e: &ChatError) -> Rejection {
    Rejection { kind: e.kind().into(), detail: prompt::scrub_field(&e.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands() -> Vec<Candidate> {
        ["RB-A-001", "RB-B-001"].iter().map(|id| Candidate { id: id.to_string(), name: "n".into(), description: "d".into() }).collect()
    }

    #[test]
    fn answers_are_checked_on_our_side() {
        let ok = check_answer(r#"{"runbook_id":"RB-B-001","confidence":0.9,"reasoning":"fits"}"#, &cands()).unwrap();
        assert_eq!(ok.runbook_id, "RB-B-001");
        assert!(check_answer(r#"{"runbook_id":"escalate","confidence":0.2,"reasoning":"?"}"#, &cands()).is_ok());
        let cases = [
            (r#"{"runbook_id":"RB-EVIL-001","confidence":0.9,"reasoning":"x"}"#, "unknown_id"),
            ("```json\n{\"runbook_id\":\"RB-A-001\",\"confidence\":0.9,\"reasoning\":\"x\"}\n```", "malformed"),
            (r#"{"choice":"RB-A-001","score":0.9}"#, "malformed"),
            (r#"{"runbook_id":"RB-A-001","confidence":"high","reasoning":"x"}"#, "malformed"),
            (r#"{"runbook_id":"RB-A-001","confidence":1.5,"reasoning":"x"}"#, "malformed"),
            (r#"{"runbook_id":"RB-A-001","confidence":0.9,"reasoning":"x","command":"rm -rf /"}"#, "malformed"),
        ];
        for (text, kind) in cases {
            assert_eq!(check_answer(text, &cands()).unwrap_err().kind, kind, "{text}");
        }
        let long = format!(r#"{{"runbook_id":"RB-A-001","confidence":0.9,"reasoning":"{}"}}"#, "a".repeat(MAX_REASONING_CHARS + 1));
        assert_eq!(check_answer(&long, &cands()).unwrap_err().kind, "malformed");
        let phi = check_answer(r#"{"runbook_id":"RB-A-001","confidence":0.9,"reasoning":"call 555-123-4567"}"#, &cands()).unwrap();
        assert_eq!(phi.reasoning, "call [phone×1]");
    }
}
