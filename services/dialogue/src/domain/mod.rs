//! The dialogue domain: sessions, their status rules, commitments and the
//! effects a fulfilled commitment has on the other services. Pure: no I/O,
//! no proto types.

pub mod commitment;
pub mod session;

pub use commitment::*;
pub use session::*;
