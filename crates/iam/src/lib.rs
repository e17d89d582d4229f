//! placeholder
pub mod arn;
pub mod time;
