//! The advisor's prompt: built from an allow-list of structured incident fields and the
//! candidate runbooks' ids, names and descriptions, never from raw journal text (the
//! incident's `message` and every other detail are left out). Every value passes through
//! [`scrub_field`] on its way in, so the prompt is metadata (DESIGN.md 4c).

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::incident::Incident;
use crate::runbook::model::Runbook;

/// Longest value of one prompt field, in characters (after scrubbing).
pub const MAX_FIELD_CHARS: usize = 200;

/// The incident details that may reach the prompt (the rest, notably `message`, never do).
pub const ALLOWED_DETAILS: [&str; 2] = ["rule", "exit_status"];

/// The fixed instructions. The answer format is also requested as a JSON schema; the
/// instructions repeat it for servers that ignore `response_format`.
pub const SYSTEM: &str = "You help a server maintenance agent choose a remediation runbook. \
You are given one incident (structured fields only) and the candidate runbooks that an operator \
approved. Choose the one candidate whose description fits the incident, or \"escalate\" when none \
fits or you are unsure. You cannot propose commands or runbooks outside the list. Answer with one \
JSON object and nothing else: {\"runbook_id\": \"<a candidate id or escalate>\", \"confidence\": \
<number from 0 to 1>, \"reasoning\": \"<one or two sentences>\"}.";

/// A runbook as the advisor sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub description: String,
}

impl Candidate {
    /// The allow-listed fields of `rb`, scrubbed and bounded.
    pub fn of(rb: &Runbook) -> Candidate {
        Candidate { id: rb.id.clone(), name: scrub_field(&rb.name), description: scrub_field(&rb.description) }
    }
}

/// The prompt as sent and recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prompt {
    /// The system message ([`SYSTEM`]).
    pub system: String,
    /// The user message: one JSON object of the allow-listed fields.
    pub user: String,
}

impl Prompt {
    /// SHA-256 (hex) of `system + "\n" + user`, so that
    /// `jq -j '.planner.advisor.prompt | .system + "\n" + .user' EB-….json | sha256sum`
    /// recomputes it from a bundle.
    pub fn sha256(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.system.as_bytes());
        h.update(b"\n");
        h.update(self.user.as_bytes());
        hex::encode(h.finalize())
    }
}

/// The prompt for `incident` with `candidates`.
pub fn build(incident: &Incident, candidates: &[Candidate]) -> Prompt {
    let mut fields = serde_json::Map::new();
    fields.insert("event_type".into(), json!(scrub_field(&incident.event_type)));
    fields.insert("severity".into(), json!(incident.severity.to_string()));
    fields.insert("unit".into(), incident.unit.as_deref().map(scrub_field).map_or(Value::Null, Value::String));
    for key in ALLOWED_DETAILS {
        let v = match incident.details.get(key) {
            Some(Value::String(s)) => Value::String(scrub_field(s)),
            Some(Value::Number(n)) => Value::String(n.to_string()),
            Some(Value::Bool(b)) => Value::String(b.to_string()),
            _ => Value::Null,
        };
        fields.insert(key.into(), v);
    }
    let user = json!({ "incident": Value::Object(fields), "candidates": candidates });
    Prompt { system: SYSTEM.to_string(), user: user.to_string() }
}

/// [`scrub_text`] bounded to [`MAX_FIELD_CHARS`]: what every prompt field passes through.
pub fn scrub_field(s: &str) -> String {
    scrub_text(s, MAX_FIELD_CHARS)
}

/// The PHI filter for everything the advisor sends or records (prompt fields, reasoning,
/// excerpts of what a server said): the scrubber (emails, phone, SSN- and MRN-like numbers),
/// control characters dropped, bounded to `max_chars`. The one place to change when the
/// filter changes.
pub fn scrub_text(s: &str, max_chars: usize) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(max_chars.saturating_mul(2)).collect();
    crate::scrub::scrub(&clean).chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{IncidentSource, Severity};

    fn incident() -> Incident {
        let mut details = std::collections::BTreeMap::new();
        details.insert("rule".to_string(), json!("systemd_main_process_exited"));
        details.insert("exit_status".to_string(), json!("1"));
        details.insert("message".to_string(), json!("nginx.service: patient Jane Roe 123-45-6789 exited"));
        details.insert("comm".to_string(), json!("bob@example.org"));
        Incident {
            incident_id: "INC-20261202-0001".into(),
            event_type: "service_crash".into(),
            severity: Severity::High,
            host: "srv".into(),
            detected_at: chrono::Utc::now(),
            source: IncidentSource::Manual,
            unit: Some("portal-555-123-4567.service\u{7}".into()),
            details,
        }
    }

    #[test]
    fn only_allow_listed_fields_reach_the_prompt_and_they_are_scrubbed() {
        let c = vec![Candidate { id: "RB-A-001".into(), name: "A".into(), description: "mail x@example.com".into() }];
        let c: Vec<Candidate> = c.into_iter().map(|c| Candidate { description: scrub_field(&c.description), ..c }).collect();
        let p = build(&incident(), &c);
        let v: Value = serde_json::from_str(&p.user).unwrap();
        let keys: Vec<&String> = v["incident"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["event_type", "exit_status", "rule", "severity", "unit"]);
        assert_eq!(v["incident"]["unit"], "portal-[phone×1].service");
        assert_eq!(v["candidates"][0]["description"], "mail [email×1]");
        for leaked in ["Jane", "6789", "bob@", "patient", "\u{7}"] {
            assert!(!p.user.contains(leaked), "{leaked} in {}", p.user);
        }
        assert_eq!(p.sha256().len(), 64);
        assert_ne!(p.sha256(), build(&Incident { event_type: "disk_full".into(), ..incident() }, &c).sha256());
    }

    #[test]
    fn fields_are_bounded() {
        let long = "a".repeat(10_000);
        assert_eq!(scrub_field(&long).chars().count(), MAX_FIELD_CHARS);
    }
}
