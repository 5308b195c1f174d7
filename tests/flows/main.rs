//! Flows across services, each through the public gRPC APIs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod disputes_cite_measures;
