//! `msp-evidence`: the evidence contract shared by the agent (`msp-agent`), its monthly packet
//! and the fleet view (`msp-fleet`).
//!
//! What is here is what two programs must agree on byte for byte: the bundle format
//! ([`bundle`]), the store's layout and writer ([`store`]), signing keys and their public forms
//! ([`keys`], [`keyring`]), verification ([`verify`], with batched signatures in [`batch`],
//! heartbeat gaps in [`heartbeat`], store heads in [`storecheck`], prune records in
//! [`pruned`]), the packet manifest ([`manifest`]), the bucket's object keys ([`layout`]) and
//! S3 client ([`s3`]), what counts as a control's evidence ([`controls`]) and the event type
//! names ([`event_type`]) and the alert webhook's body ([`webhook`]). It links no daemon, journald reader or runbook executor: a program
//! that only reads evidence depends on this crate alone.

pub mod batch;
pub mod bundle;
pub mod controls;
pub mod event_type;
pub mod fsutil;
pub mod heartbeat;
pub mod keyring;
pub mod keys;
pub mod layout;
pub mod manifest;
pub mod pruned;
pub mod s3;
pub mod store;
pub mod storecheck;
pub mod verify;
pub mod webhook;
pub mod yamlutil;

/// The workspace version; bundles record `msp-agent <version>` as their generator.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// RFC 3339 UTC with milliseconds, the form evidence uses for action times.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
