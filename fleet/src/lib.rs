//! `msp-fleet`: the MSP's central view of every clinic, built on the signed evidence the agents
//! upload to S3 Object Lock.
//!
//! Data flow (ARCHITECTURE.md, "The fleet view"): the bucket (or a local mirror of it) →
//! `source` (incremental listing per host prefix) → `index` (verify each bundle against the
//! host's registered keys and its chain, then record metadata in SQLite) → [`model`] views →
//! the web pages, the JSON API, `msp-fleet status`, silence alerts and the per-client packet.
//! The index is disposable: deleting it and indexing the bucket again gives the same answers.

pub mod alert;
pub mod cli;
pub mod config;
pub mod index;
pub mod inventory;
pub mod model;
pub mod packet;
pub mod silence;
pub mod source;
pub mod status;
pub mod web;
