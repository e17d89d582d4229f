//! berth-scan: the vulnerability scanner's room.
pub mod ecosystem;
pub mod index;
pub mod osv;
pub mod severity;
pub mod version;
