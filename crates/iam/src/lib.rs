//! placeholder
pub mod arn;
pub mod sigv4;
pub mod time;
pub mod token;
