//! The dispute domain: disputes, the WTO stage machine and the timeline.
//! Pure: no I/O, no proto types.

pub mod dispute;
pub mod stage;

pub use dispute::*;
pub use stage::*;
