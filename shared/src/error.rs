//! The one error type of every API, and its mapping to `tonic::Status`.
//!
//! Every status carries a `google.rpc.ErrorInfo` with a stable UPPER_SNAKE
//! reason (AIP-193); validation errors carry one `google.rpc.BadRequest` with
//! every field violation. Database and internal errors are logged with their
//! cause and answered with an opaque message: no SQL and no stack ever leaves.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Tradewatch error.
pub const DOMAIN: &str = "tradewatch";

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One bad field of a request: its path (`measure.hs_codes[2]`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// An API error. Boxed, so that `Result`s stay small on the happy path.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(Box<Inner>);

#[derive(Debug, thiserror::Error)]
#[error("{code:?} {reason}: {message}")]
struct Inner {
    code: Code,
    reason: &'static str,
    message: String,
    metadata: HashMap<String, String>,
    violations: Vec<FieldViolation>,
    #[source]
    source: Option<anyhow::Error>,
}

impl Error {
    fn new(code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            code,
            reason,
            message: message.into(),
            metadata: HashMap::new(),
            violations: Vec::new(),
            source: None,
        }))
    }

    /// INVALID_ARGUMENT naming every bad field.
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let message = match violations.as_slice() {
            [one] => format!("{}: {}", one.field, one.description),
            many => format!(
                "{} invalid fields: {}",
                many.len(),
                many.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
            ),
        };
        let mut err = Self::new(Code::InvalidArgument, "INVALID_ARGUMENT", message);
        err.0.violations = violations;
        err
    }

    /// INVALID_ARGUMENT naming one field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation::new(field, description)])
    }

    /// NOT_FOUND: `resource` (`measure`) with `id` does not exist.
    pub fn not_found(resource: &'static str, id: impl std::fmt::Display) -> Self {
        Self::new(Code::NotFound, "NOT_FOUND", format!("{resource} {id} not found"))
            .with_metadata("resource", resource)
            .with_metadata("id", id.to_string())
    }

    /// NOT_FOUND with a message of its own, for what is not a stored resource.
    pub fn not_found_because(resource: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, "NOT_FOUND", message).with_metadata("resource", resource)
    }

    /// NOT_FOUND for several ids at once, listed in `missing_ids`.
    pub fn not_found_many(resource: &'static str, ids: &[String]) -> Self {
        Self::new(Code::NotFound, "NOT_FOUND", format!("{resource} not found: {}", ids.join(", ")))
            .with_metadata("resource", resource)
            .with_metadata("missing_ids", ids.join(","))
    }

    /// ALREADY_EXISTS: another `resource` already has this `field`.
    pub fn already_exists(resource: &'static str, field: &str, value: &str) -> Self {
        Self::new(Code::AlreadyExists, "ALREADY_EXISTS", format!("a {resource} with {field} {value:?} already exists"))
            .with_metadata("resource", resource)
            .with_metadata("field", field)
    }

    /// FAILED_PRECONDITION with a stable reason such as `ILLEGAL_STAGE_TRANSITION`.
    pub fn failed_precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, reason, message)
    }

    /// ABORTED: the etag the caller sent no longer matches (AIP-154).
    pub fn etag_mismatch(resource: &'static str, id: impl std::fmt::Display) -> Self {
        Self::new(
            Code::Aborted,
            "ETAG_MISMATCH",
            format!("{resource} {id} was changed since the etag sent: read it again"),
        )
    }

    /// RESOURCE_EXHAUSTED, for instance a quota with no room.
    pub fn resource_exhausted(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::ResourceExhausted, reason, message)
    }

    /// UNAVAILABLE: a database or a called service is down; safe to retry.
    pub fn unavailable(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, reason, message)
    }

    /// INTERNAL: logged with its cause, answered with an opaque message.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self::new(Code::Internal, "INTERNAL", "internal error").with_source(source.into())
    }

    fn with_source(mut self, source: anyhow::Error) -> Self {
        self.0.source = Some(source);
        self
    }

    /// A code and reason passed on from another service.
    pub fn from_peer(code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, reason, message)
    }

    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.metadata.insert(key.into(), value.into());
        self
    }

    pub fn code(&self) -> Code {
        self.0.code
    }

    pub fn reason(&self) -> &'static str {
        self.0.reason
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.0.metadata
    }

    pub fn violations(&self) -> &[FieldViolation] {
        &self.0.violations
    }
}

/// Whether a database error means the database cannot be reached (so the
/// caller may retry), rather than that a statement failed.
fn is_outage(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error as Sqlx};
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(**e, Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed | Sqlx::Tls(_))
        }
        _ => false,
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        match &err {
            e if is_outage(e) => {
                tracing::warn!(error = %err, "database unavailable");
                Self::unavailable("DATABASE_UNAVAILABLE", "the database is unavailable; retry later")
                    .with_source(err.into())
            }
            _ => Self::internal(err),
        }
    }
}

impl From<sea_orm::TransactionError<Error>> for Error {
    fn from(err: sea_orm::TransactionError<Error>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(e) => e,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let err = *err.0;
        match err.code {
            Code::Internal | Code::Unknown | Code::DataLoss => {
                tracing::error!(error = ?err.source, reason = err.reason, "internal error");
            }
            Code::Unavailable => tracing::warn!(message = %err.message, "unavailable"),
            _ => tracing::debug!(code = ?err.code, reason = err.reason, message = %err.message, "request refused"),
        }
        let mut details = ErrorDetails::new();
        details.set_error_info(err.reason, DOMAIN, err.metadata);
        if !err.violations.is_empty() {
            details.set_bad_request(
                err.violations
                    .into_iter()
                    .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                    .collect::<Vec<_>>(),
            );
        }
        Status::with_error_details(err.code, err.message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_violation() {
        let status: Status = Error::invalid(vec![
            FieldViolation::new("measure.hs_codes[1]", "not digits"),
            FieldViolation::new("measure.imposing_economy", "unknown economy"),
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["measure.hs_codes[1]", "measure.imposing_economy"]);
        assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("INVALID_ARGUMENT"));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: Status = Error::internal(anyhow::anyhow!("syntax error at or near SELECT")).into();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn lost_database_connections_are_unavailable() {
        let status: Status = Error::from(sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)).into();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("Timeout"));
    }

    #[test]
    fn a_connection_lost_mid_query_is_unavailable_but_a_bad_statement_is_internal() {
        use std::sync::Arc;

        use sea_orm::{DbErr, RuntimeErr, sqlx};
        let lost =
            DbErr::Query(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()))));
        assert_eq!(Error::from(lost).code(), Code::Unavailable);
        let bad = DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx::Error::RowNotFound)));
        assert_eq!(Error::from(bad).code(), Code::Internal);
    }

    #[test]
    fn failed_precondition_keeps_reason_and_metadata() {
        let status: Status =
            Error::failed_precondition("ILLEGAL_STAGE_TRANSITION", "no").with_metadata("allowed_stages", "A,B").into();
        let details = status.get_error_details();
        let info = details.error_info();
        assert_eq!(info.map(|i| i.reason.as_str()), Some("ILLEGAL_STAGE_TRANSITION"));
        assert_eq!(info.map(|i| i.domain.as_str()), Some(DOMAIN));
        assert_eq!(info.and_then(|i| i.metadata.get("allowed_stages")).map(String::as_str), Some("A,B"));
    }
}
