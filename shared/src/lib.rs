//! What the three Tradewatch services share, written once: the generated gRPC
//! code, configuration, telemetry, the database connection, the server
//! (health, reflection, graceful shutdown), the error model of the API and the
//! validators, page tokens, idempotency keys and etags every API uses.

pub mod auth;
pub mod backup;
pub mod batch;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
#[cfg(feature = "dev-identity")]
pub mod dev_identity;
pub mod error;
pub mod etag;
pub mod feed;
pub mod guard;
pub mod idempotency;
pub mod memory;
pub mod metrics;
pub mod paging;
pub mod patch;
pub mod proto;
pub mod schema;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod types;
pub mod validate;

#[cfg(feature = "testing")]
pub mod arb;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Reason, Result};

/// A domain enum stored and sent by name: the enum, `ALL`, `as_str` (the
/// proto value without its prefix, which is also what is stored) and `parse`.
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored name: the proto enum value without its prefix.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}

/// Two functions between a generated proto enum and a [`named_enum!`] domain
/// enum, through the value's name: `$from(i32) -> Option<Domain>` (None for
/// UNSPECIFIED and unknown numbers) and `$to(Domain) -> i32`; and a test
/// that the two enums name the same values, so none maps to UNSPECIFIED.
#[macro_export]
macro_rules! proto_enum_map {
    ($from:ident, $to:ident, $pb:ty, $domain:ty, $prefix:literal) => {
        pub fn $from(raw: i32) -> Option<$domain> {
            <$pb>::try_from(raw).ok().and_then(|v| <$domain>::parse(v.as_str_name().trim_start_matches($prefix)))
        }

        pub fn $to(v: $domain) -> i32 {
            <$pb>::from_str_name(&format!("{}{}", $prefix, v.as_str())).map_or(0, Into::into)
        }

        #[cfg(test)]
        mod $from {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn the_proto_and_domain_enums_name_the_same_values() {
                for v in <$domain>::ALL {
                    let raw = super::$to(*v);
                    assert_ne!(raw, 0, "{:?} has no proto value", v);
                    assert_eq!(super::$from(raw), Some(*v));
                }
                let proto_values = (1..64).filter(|n| <$pb>::try_from(*n).is_ok()).count();
                assert_eq!(proto_values, <$domain>::ALL.len(), "a proto value with no domain value");
            }
        }
    };
}

/// The current instant at the precision both databases keep (microseconds),
/// so a resource answered from a write equals the same resource read back.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound as _;
    chrono::Utc::now().trunc_subsecs(6)
}

/// Today's date, UTC: the day "today" means in every service.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}
