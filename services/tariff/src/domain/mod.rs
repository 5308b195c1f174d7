//! The tariff domain: measures, their dated status, quota room and the rules
//! of duty resolution. Pure: no I/O, no proto types.

pub mod levy;
pub mod measure;
pub mod resolve;
pub mod trade;

pub use levy::*;
pub use measure::*;
pub use resolve::*;
pub use trade::*;
