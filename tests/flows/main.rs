//! Flows across services, each through the public gRPC APIs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cloned_ref_to_slice_refs)]

mod disputes_cite_measures;
mod launcher;
mod observability;
mod security;
mod tour;
