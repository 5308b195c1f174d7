//! Etags (AIP-154): every resource row has a `version` that each write bumps;
//! the etag is that version, opaque to clients. A stale etag is ABORTED, and
//! writes guard with `WHERE version = ?` so that a race is ABORTED too.

use crate::error::{Error, Result};

/// The etag of a row at `version`.
pub fn of(version: i64) -> String {
    format!("{version}")
}

/// ABORTED when the caller sent an etag that is not the current one. An
/// empty etag means "whatever the current version is".
pub fn check(sent: &str, version: i64, resource: &'static str, id: impl std::fmt::Display) -> Result<()> {
    if sent.is_empty() || sent == of(version) { Ok(()) } else { Err(Error::etag_mismatch(resource, id)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_etags_are_aborted() {
        assert!(check("", 3, "measure", "x").is_ok());
        assert!(check(&of(3), 3, "measure", "x").is_ok());
        let err = check(&of(2), 3, "measure", "x").err();
        assert_eq!(err.map(|e| e.code()), Some(tonic::Code::Aborted));
        assert!(check(" 3", 3, "measure", "x").is_err(), "only the exact etag matches");
    }
}
