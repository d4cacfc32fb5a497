//! The HIPAA Security Rule's standards and implementation specifications (45 CFR §164.308,
//! §164.310, §164.312, §164.316), as the regulation lists them. The controls map must contain
//! every one of these, with the same kind and requirement, so no control can go silently missing.

/// Whether a row is a standard or one of its implementation specifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// A standard (always mandatory).
    Standard,
    /// An implementation specification under a standard.
    ImplementationSpec,
}

/// Required, or addressable (implement if reasonable and appropriate, else document why and
/// what equivalent measure is used). Standards are always required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Required.
    Required,
    /// Addressable.
    Addressable,
}

/// One entry of the Security Rule.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    /// The citation as written in the controls map, e.g. `§164.308(a)(1)(ii)(A)`.
    pub id: &'static str,
    /// The regulation's title for it.
    pub title: &'static str,
    /// Standard or implementation specification.
    pub kind: ControlKind,
    /// Required or addressable.
    pub requirement: Requirement,
}

use ControlKind::{ImplementationSpec as I, Standard as S};
use Requirement::{Addressable as A, Required as R};

const fn c(
    id: &'static str,
    title: &'static str,
    kind: ControlKind,
    requirement: Requirement,
) -> Control {
    Control {
        id,
        title,
        kind,
        requirement,
    }
}

/// The four sections the map is grouped by, in order.
pub const SECTIONS: [&str; 4] = ["§164.308", "§164.310", "§164.312", "§164.316"];

/// Every standard and implementation specification, in regulation order.
pub const SECURITY_RULE: &[Control] = &[
    // §164.308 Administrative safeguards
    c("§164.308(a)(1)(i)", "Security management process", S, R),
    c("§164.308(a)(1)(ii)(A)", "Risk analysis", I, R),
    c("§164.308(a)(1)(ii)(B)", "Risk management", I, R),
    c("§164.308(a)(1)(ii)(C)", "Sanction policy", I, R),
    c(
        "§164.308(a)(1)(ii)(D)",
        "Information system activity review",
        I,
        R,
    ),
    c("§164.308(a)(2)", "Assigned security responsibility", S, R),
    c("§164.308(a)(3)(i)", "Workforce security", S, R),
    c(
        "§164.308(a)(3)(ii)(A)",
        "Authorization and/or supervision",
        I,
        A,
    ),
    c(
        "§164.308(a)(3)(ii)(B)",
        "Workforce clearance procedure",
        I,
        A,
    ),
    c("§164.308(a)(3)(ii)(C)", "Termination procedures", I, A),
    c("§164.308(a)(4)(i)", "Information access management", S, R),
    c(
        "§164.308(a)(4)(ii)(A)",
        "Isolating health care clearinghouse functions",
        I,
        R,
    ),
    c("§164.308(a)(4)(ii)(B)", "Access authorization", I, A),
    c(
        "§164.308(a)(4)(ii)(C)",
        "Access establishment and modification",
        I,
        A,
    ),
    c("§164.308(a)(5)(i)", "Security awareness and training", S, R),
    c("§164.308(a)(5)(ii)(A)", "Security reminders", I, A),
    c(
        "§164.308(a)(5)(ii)(B)",
        "Protection from malicious software",
        I,
        A,
    ),
    c("§164.308(a)(5)(ii)(C)", "Log-in monitoring", I, A),
    c("§164.308(a)(5)(ii)(D)", "Password management", I, A),
    c("§164.308(a)(6)(i)", "Security incident procedures", S, R),
    c("§164.308(a)(6)(ii)", "Response and reporting", I, R),
    c("§164.308(a)(7)(i)", "Contingency plan", S, R),
    c("§164.308(a)(7)(ii)(A)", "Data backup plan", I, R),
    c("§164.308(a)(7)(ii)(B)", "Disaster recovery plan", I, R),
    c(
        "§164.308(a)(7)(ii)(C)",
        "Emergency mode operation plan",
        I,
        R,
    ),
    c(
        "§164.308(a)(7)(ii)(D)",
        "Testing and revision procedures",
        I,
        A,
    ),
    c(
        "§164.308(a)(7)(ii)(E)",
        "Applications and data criticality analysis",
        I,
        A,
    ),
    c("§164.308(a)(8)", "Evaluation", S, R),
    c(
        "§164.308(b)(1)",
        "Business associate contracts and other arrangements",
        S,
        R,
    ),
    c(
        "§164.308(b)(3)",
        "Written contract or other arrangement",
        I,
        R,
    ),
    // §164.310 Physical safeguards
    c("§164.310(a)(1)", "Facility access controls", S, R),
    c("§164.310(a)(2)(i)", "Contingency operations", I, A),
    c("§164.310(a)(2)(ii)", "Facility security plan", I, A),
    c(
        "§164.310(a)(2)(iii)",
        "Access control and validation procedures",
        I,
        A,
    ),
    c("§164.310(a)(2)(iv)", "Maintenance records", I, A),
    c("§164.310(b)", "Workstation use", S, R),
    c("§164.310(c)", "Workstation security", S, R),
    c("§164.310(d)(1)", "Device and media controls", S, R),
    c("§164.310(d)(2)(i)", "Disposal", I, R),
    c("§164.310(d)(2)(ii)", "Media re-use", I, R),
    c("§164.310(d)(2)(iii)", "Accountability", I, A),
    c("§164.310(d)(2)(iv)", "Data backup and storage", I, A),
    // §164.312 Technical safeguards
    c("§164.312(a)(1)", "Access control", S, R),
    c("§164.312(a)(2)(i)", "Unique user identification", I, R),
    c("§164.312(a)(2)(ii)", "Emergency access procedure", I, R),
    c("§164.312(a)(2)(iii)", "Automatic logoff", I, A),
    c("§164.312(a)(2)(iv)", "Encryption and decryption", I, A),
    c("§164.312(b)", "Audit controls", S, R),
    c("§164.312(c)(1)", "Integrity", S, R),
    c(
        "§164.312(c)(2)",
        "Mechanism to authenticate electronic protected health information",
        I,
        A,
    ),
    c("§164.312(d)", "Person or entity authentication", S, R),
    c("§164.312(e)(1)", "Transmission security", S, R),
    c("§164.312(e)(2)(i)", "Integrity controls", I, A),
    c("§164.312(e)(2)(ii)", "Encryption", I, A),
    // §164.316 Policies and procedures and documentation requirements
    c("§164.316(a)", "Policies and procedures", S, R),
    c("§164.316(b)(1)", "Documentation", S, R),
    c("§164.316(b)(2)(i)", "Time limit", I, R),
    c("§164.316(b)(2)(ii)", "Availability", I, R),
    c("§164.316(b)(2)(iii)", "Updates", I, R),
];

/// Look a citation up.
pub fn find(id: &str) -> Option<&'static Control> {
    SECURITY_RULE.iter().find(|c| c.id == id)
}

/// The section (`§164.308` ...) a citation belongs to.
pub fn section_of(id: &str) -> Option<&'static str> {
    SECTIONS
        .iter()
        .copied()
        .find(|s| id.starts_with(s) && id[s.len()..].starts_with('('))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_complete_and_unique() {
        assert_eq!(SECURITY_RULE.len(), 59);
        let mut ids: Vec<_> = SECURITY_RULE.iter().map(|c| c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 59);
        assert!(SECURITY_RULE.iter().all(|c| section_of(c.id).is_some()));
        assert_eq!(
            SECURITY_RULE
                .iter()
                .filter(|c| c.requirement == Requirement::Addressable)
                .count(),
            22
        );
    }
}
