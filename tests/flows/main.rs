//! Flows across services, each through the public gRPC APIs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cloned_ref_to_slice_refs)]

mod backup;
mod balancing;
mod disputes_cite_measures;
mod faults;
mod launcher;
mod observability;
mod replicas;
mod security;
mod tour;
