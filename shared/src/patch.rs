//! Updates as patches (AIP-134): each service's `*Patch` holds `Some` for the
//! fields its update mask names; these two functions apply one the same way
//! everywhere.

use crate::error::{Error, FieldViolation, Result};

/// Sets `field` to `value` when the patch names it.
pub fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// `spec` with `apply` done to a copy, when the copy keeps every rule that
/// `rules` checks; otherwise INVALID_ARGUMENT naming each broken one and
/// `spec` untouched.
pub fn patched<S: Clone>(
    spec: &S,
    apply: impl FnOnce(&mut S),
    rules: impl FnOnce(&S) -> Vec<FieldViolation>,
) -> Result<S> {
    let mut next = spec.clone();
    apply(&mut next);
    let violations = rules(&next);
    if violations.is_empty() { Ok(next) } else { Err(Error::invalid(violations)) }
}
