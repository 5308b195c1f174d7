//! Property-test support: strategies for the hostile values a caller can
//! put in any field, and a runner that sends generated requests to a live
//! server and checks that each answer is a documented one.

use std::future::Future;

use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use tonic::Code;

/// Any value a string field may carry: well-formed ones, near misses, and
/// the hostile kinds (control characters, bidi overrides, huge numbers,
/// over-precise decimals, long runs).
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", "CAN", "CHN", "USA", "EUN", "can", "XXX", "87", "8703", "8703.80", "870380", "8703800010",
            "87038000101", "2025-01-15", "2026-03-01", "9999-12-31", "0000-01-01", "2025-02-30", "6.1", "0", "-1",
            "100000", "100000.000001", "0.0000001", "1e5", "79228162514264337593543950335",
            "1000000000000000", "CAD", "CNY", "https://example.org/x", "javascript:alert(1)",
            "\u{0}", "a\u{0}b", "\u{202e}evil", "\u{7f}", "\t\n", "   ",
        ])
        .prop_map(str::to_owned),
        2 => "[A-Za-z0-9 .,-]{1,40}",
        2 => ".{0,30}",
        1 => "\\PC{0,30}",
        1 => "-?[0-9]{0,32}(\\.[0-9]{0,32})?",
        1 => (1usize..3_000).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

/// An id field: mostly `known` ids (so the request reaches its rules),
/// else any text.
pub fn id(known: Vec<String>) -> BoxedStrategy<String> {
    if known.is_empty() {
        return text();
    }
    prop_oneof![3 => prop::sample::select(known), 1 => text()].boxed()
}

/// A repeated string field: short lists of hostile values, now and then one
/// far over any limit.
pub fn list() -> BoxedStrategy<Vec<String>> {
    prop_oneof![
        8 => prop::collection::vec(text(), 0..6),
        1 => (5_000usize..6_000).prop_map(|n| (0..n).map(|i| format!("87{:08}", i % 9_000)).collect()),
    ]
    .boxed()
}

/// An enum field: its values, 0 and numbers no version knows.
pub fn enum_value() -> BoxedStrategy<i32> {
    prop_oneof![4 => 0i32..16, 1 => any::<i32>()].boxed()
}

/// The codes a write or a read may answer when the caller alone is at fault
/// or the data refuses: never INTERNAL, UNKNOWN or CANCELLED.
pub const DOCUMENTED: &[Code] = &[
    Code::Ok,
    Code::InvalidArgument,
    Code::NotFound,
    Code::AlreadyExists,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
];

/// Runs `cases` generated requests through `call` (which sends one to a
/// server and answers its code), in `runtime`, failing on any undocumented
/// code.
pub fn check_codes<S, F, Fut>(runtime: &tokio::runtime::Runtime, cases: u32, strategy: S, call: F)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = (Code, String)>,
{
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&strategy, |request| {
        let (code, message) = runtime.block_on(call(request));
        if DOCUMENTED.contains(&code) {
            Ok(())
        } else {
            Err(TestCaseError::fail(format!("undocumented answer {code:?}: {message}")))
        }
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// The code and message of a call's answer.
pub fn outcome<T>(result: Result<T, tonic::Status>) -> (Code, String) {
    match result {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}
