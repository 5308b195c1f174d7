//! The one error type of every API, and its mapping to `tonic::Status`.
//!
//! Every status carries a `google.rpc.ErrorInfo` with a stable UPPER_SNAKE
//! reason (AIP-193); validation errors carry one `google.rpc.BadRequest` with
//! every field violation. Database and internal errors are logged with their
//! cause and answered with an opaque message: no SQL and no stack ever leaves.

use std::{borrow::Cow, collections::HashMap};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use crate::proto::common::ErrorReason as Reason;

/// The `ErrorInfo.domain` of every Tradewatch error.
pub const DOMAIN: &str = "tradewatch";

/// The `ErrorInfo.reason` string of a catalogue entry: its enum value name
/// without the `ERROR_REASON_` prefix (`Reason::EtagMismatch` is `ETAG_MISMATCH`).
pub fn reason_name(reason: Reason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("ERROR_REASON_").unwrap_or(name)
}

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
    reason: Cow<'static, str>,
    message: String,
    metadata: HashMap<String, String>,
    violations: Vec<FieldViolation>,
    #[source]
    source: Option<anyhow::Error>,
}

impl Error {
    fn new(code: Code, reason: Reason, message: impl Into<String>) -> Self {
        Self::with_reason(code, Cow::Borrowed(reason_name(reason)), message)
    }

    fn with_reason(code: Code, reason: Cow<'static, str>, message: impl Into<String>) -> Self {
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
        Self::invalid_with_omitted(violations, 0)
    }

    /// INVALID_ARGUMENT naming the bad fields listed, and counting the
    /// `omitted` ones past the listing limit ("…and N more"). The message
    /// spells out the first few; the BadRequest details list all of them.
    pub fn invalid_with_omitted(violations: Vec<FieldViolation>, omitted: usize) -> Self {
        const IN_MESSAGE: usize = 5;
        let total = violations.len() + omitted;
        let mut message = match violations.as_slice() {
            [one] if omitted == 0 => format!("{}: {}", one.field, one.description),
            many => format!(
                "{total} invalid fields: {}",
                many.iter()
                    .take(IN_MESSAGE)
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        if total > IN_MESSAGE.min(violations.len()) && total > 1 {
            message.push_str(&format!("; …and {} more", total - IN_MESSAGE.min(violations.len())));
        }
        let mut err = Self::new(Code::InvalidArgument, Reason::InvalidArgument, message);
        if omitted > 0 {
            err = err.with_metadata("omitted_violations", omitted.to_string());
        }
        err.0.violations = violations;
        err
    }

    /// INVALID_ARGUMENT naming one field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation::new(field, description)])
    }

    /// NOT_FOUND: `resource` (`measure`) with `id` does not exist.
    pub fn not_found(resource: &'static str, id: impl std::fmt::Display) -> Self {
        Self::new(Code::NotFound, Reason::NotFound, format!("{resource} {id} not found"))
            .with_metadata("resource", resource)
            .with_metadata("id", id.to_string())
    }

    /// NOT_FOUND with a message of its own, for what is not a stored resource.
    pub fn not_found_because(resource: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, Reason::NotFound, message).with_metadata("resource", resource)
    }

    /// NOT_FOUND for several ids at once, listed in `missing_ids`.
    pub fn not_found_many(resource: &'static str, ids: &[String]) -> Self {
        Self::new(Code::NotFound, Reason::NotFound, format!("{resource} not found: {}", ids.join(", ")))
            .with_metadata("resource", resource)
            .with_metadata("missing_ids", ids.join(","))
    }

    /// ALREADY_EXISTS: another `resource` already has this `field`.
    pub fn already_exists(resource: &'static str, field: &str, value: &str) -> Self {
        Self::new(
            Code::AlreadyExists,
            Reason::AlreadyExists,
            format!("a {resource} with {field} {} already exists", crate::types::quote(value)),
        )
        .with_metadata("resource", resource)
        .with_metadata("field", field)
    }

    /// FAILED_PRECONDITION with a stable reason such as `ILLEGAL_STAGE_TRANSITION`.
    pub fn failed_precondition(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, reason, message)
    }

    /// ABORTED: the etag the caller sent no longer matches (AIP-154).
    pub fn etag_mismatch(resource: &'static str, id: impl std::fmt::Display) -> Self {
        Self::new(
            Code::Aborted,
            Reason::EtagMismatch,
            format!("{resource} {id} was changed since the etag sent: read it again"),
        )
        .with_metadata("resource", resource)
        .with_metadata("id", id.to_string())
    }

    /// OUT_OF_RANGE: the request asks past what the service can answer.
    pub fn out_of_range(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Code::OutOfRange, reason, message)
    }

    /// RESOURCE_EXHAUSTED: a limit of the server's, per caller or in all.
    pub fn resource_exhausted(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Code::ResourceExhausted, reason, message)
    }

    /// ABORTED: a concurrent write got in the way; retrying the same request
    /// is safe.
    pub fn aborted(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Code::Aborted, reason, message)
    }

    /// DEADLINE_EXCEEDED: the call's deadline passed before it finished. An
    /// open transaction is rolled back, but one whose commit was already on
    /// its way may have taken effect: the outcome is unknown.
    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Self::new(Code::DeadlineExceeded, Reason::DeadlineExceeded, message)
    }

    /// UNAVAILABLE: a database or a called service is down; safe to retry.
    pub fn unavailable(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, reason, message)
    }

    /// UNAUTHENTICATED: no valid bearer token.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, Reason::Unauthenticated, message)
    }

    /// PERMISSION_DENIED: `subject` lacks `scope`.
    pub fn permission_denied(subject: &str, scope: &str) -> Self {
        Self::new(
            Code::PermissionDenied,
            Reason::PermissionDenied,
            format!("{} may not call this: it needs the scope {scope}", crate::types::quote(subject)),
        )
        .with_metadata("required_scope", scope)
        .with_metadata("subject", subject)
    }

    /// INTERNAL: logged with its cause, answered with an opaque message.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self::new(Code::Internal, Reason::Internal, "internal error").with_source(source.into())
    }

    /// The same error for another caller of an operation they shared; the
    /// source goes along as text.
    pub fn for_another(&self) -> Self {
        let e = &*self.0;
        Self(Box::new(Inner {
            code: e.code,
            reason: e.reason.clone(),
            message: e.message.clone(),
            metadata: e.metadata.clone(),
            violations: e.violations.clone(),
            source: e.source.as_ref().map(|source| anyhow::anyhow!("{source:#}")),
        }))
    }

    fn with_source(mut self, source: anyhow::Error) -> Self {
        self.0.source = Some(source);
        self
    }

    /// A code and reason passed on from another service, as it gave them.
    pub fn from_peer(code: Code, reason: String, message: impl Into<String>) -> Self {
        Self::with_reason(code, Cow::Owned(reason), message)
    }

    /// The same error with every field violation named inside `prefix`
    /// (`quota.quantity` becomes `measure.quota.quantity`): the domain names
    /// its own fields, the API says where they sit in the request.
    pub fn within(self, prefix: &str) -> Self {
        if self.0.violations.is_empty() || prefix.is_empty() {
            return self;
        }
        let omitted = self.0.metadata.get("omitted_violations").and_then(|n| n.parse().ok()).unwrap_or(0);
        let violations = self
            .0
            .violations
            .into_iter()
            .map(|v| FieldViolation::new(format!("{prefix}.{}", v.field), v.description))
            .collect();
        Self::invalid_with_omitted(violations, omitted)
    }

    /// The same error said of `subject` (`assume[0]`): its message prefixed
    /// `subject: `, and `subject` in the ErrorInfo metadata `field`. For a
    /// refusal the domain gives about one element of a request.
    pub fn about(mut self, subject: &str) -> Self {
        self.0.message = format!("{subject}: {}", self.0.message);
        self.with_metadata("field", subject)
    }

    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.metadata.insert(key.into(), value.into());
        self
    }

    pub fn code(&self) -> Code {
        self.0.code
    }

    /// Whether this error's reason is `reason` of the catalogue.
    pub fn is(&self, reason: Reason) -> bool {
        self.0.reason == reason_name(reason)
    }

    pub fn reason(&self) -> &str {
        &self.0.reason
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

/// What a database error means to the caller, when it is not a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbCondition {
    /// The database cannot be reached or is restarting: UNAVAILABLE.
    Unreachable,
    /// SQLite's write lock stayed taken past the busy timeout: UNAVAILABLE.
    Busy,
    /// A statement ran past the statement timeout: UNAVAILABLE.
    Timeout,
    /// A row lock stayed held past the lock timeout: ABORTED.
    LockTimeout,
    /// A deadlock or a serialization failure: ABORTED.
    Conflict,
}

fn classify(err: &sea_orm::DbErr) -> Option<DbCondition> {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error as Sqlx};
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) => return Some(DbCondition::Unreachable),
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return Some(DbCondition::Unreachable),
        _ => return None,
    };
    match &**sqlx {
        Sqlx::Io(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_) => Some(DbCondition::Unreachable),
        Sqlx::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite's codes are numbers, the primary code in the low byte;
            // PostgreSQL's are SQLSTATEs, some of them all digits too.
            if db.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>().is_some() {
                let primary = code.parse::<u32>().map(|n| n & 0xff).unwrap_or_default();
                return matches!(primary, 5 | 6).then_some(DbCondition::Busy);
            }
            match code.as_ref() {
                "55P03" => Some(DbCondition::LockTimeout),
                "40P01" | "40001" => Some(DbCondition::Conflict),
                "57014" => Some(DbCondition::Timeout),
                // Shutting down, restarting, too many connections, read-only
                // after a failover, not accepting connections.
                "57P01" | "57P02" | "57P03" | "53300" | "25006" | "55000" => Some(DbCondition::Unreachable),
                c if c.starts_with("08") => Some(DbCondition::Unreachable),
                _ => None,
            }
        }
        _ => None,
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        let Some(condition) = classify(&err) else {
            return Self::internal(err);
        };
        tracing::warn!(error = %err, ?condition, "database refused the call");
        let e = match condition {
            DbCondition::Unreachable => {
                Self::unavailable(Reason::DatabaseUnavailable, "the database is unavailable; retry later")
            }
            DbCondition::Busy => {
                Self::unavailable(Reason::DatabaseBusy, "the database is busy with other writes; retry later")
            }
            DbCondition::Timeout => {
                Self::unavailable(Reason::DatabaseTimeout, "the database did not answer in time; retry later")
            }
            DbCondition::LockTimeout => Self::aborted(
                Reason::LockTimeout,
                "another write holds this resource; nothing was written, retry the request",
            ),
            DbCondition::Conflict => Self::aborted(
                Reason::TransactionConflict,
                "a concurrent write conflicted; nothing was written, retry the request",
            ),
        };
        e.with_source(err.into())
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
                tracing::error!(error = ?err.source, reason = %err.reason, "internal error");
            }
            Code::Unavailable => tracing::warn!(message = %err.message, "unavailable"),
            _ => tracing::debug!(code = ?err.code, reason = %err.reason, message = %err.message, "request refused"),
        }
        let mut details = ErrorDetails::new();
        details.set_error_info(err.reason.into_owned(), DOMAIN, err.metadata);
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

    /// Every reason of the catalogue, `ERROR_REASON_UNSPECIFIED` aside.
    fn catalogue() -> Vec<&'static str> {
        (1..).map_while(|n| Reason::try_from(n).ok()).map(reason_name).collect()
    }

    #[test]
    fn reasons_are_the_catalogue_names_without_prefix() {
        assert_eq!(reason_name(Reason::EtagMismatch), "ETAG_MISMATCH");
        assert!(Error::etag_mismatch("measure", "m1").is(Reason::EtagMismatch));
        assert!(catalogue().len() > 20, "{:?}", catalogue());
    }

    #[test]
    fn the_readme_error_table_lists_exactly_the_catalogue() {
        let readme = include_str!("../../README.md");
        let section = readme.split("\n## Errors\n").nth(1).and_then(|s| s.split("\n## ").next()).unwrap_or_default();
        let mut listed: Vec<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split(" |").next())
            .flat_map(|cell| cell.split(", "))
            .map(|name| name.trim_matches('`'))
            .collect();
        listed.sort_unstable();
        let mut catalogue = catalogue();
        catalogue.sort_unstable();
        assert_eq!(listed, catalogue, "the README's Errors table and proto ErrorReason differ");
    }

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
        let status: Status = Error::failed_precondition(Reason::IllegalStageTransition, "no")
            .with_metadata("allowed_stages", "A,B")
            .into();
        let details = status.get_error_details();
        let info = details.error_info();
        assert_eq!(info.map(|i| i.reason.as_str()), Some("ILLEGAL_STAGE_TRANSITION"));
        assert_eq!(info.map(|i| i.domain.as_str()), Some(DOMAIN));
        assert_eq!(info.and_then(|i| i.metadata.get("allowed_stages")).map(String::as_str), Some("A,B"));
    }
}
