//! placeholder
pub mod time;
