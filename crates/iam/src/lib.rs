//! placeholder
pub mod arn;
pub mod policy;
pub mod sigv4;
pub mod time;
pub mod token;
