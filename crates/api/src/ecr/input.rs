//! Typed access to a JSON 1.1 request body: the pure half lives in
//! `crates/ecr-input` (so the fuzz targets reach it without a server); here, its
//! errors become the exceptions the front end answers with.

use berth_ecr_input::InputErrorKind;
pub use berth_ecr_input::{
    check_len, decode_token, encode_token, parse_digest, parse_repository_name, Input, InputError,
};

use super::{EcrError, EcrException};

impl From<InputError> for EcrError {
    fn from(e: InputError) -> Self {
        let exception = match e.kind {
            InputErrorKind::InvalidParameter => EcrException::InvalidParameter,
            InputErrorKind::Validation => EcrException::Validation,
            InputErrorKind::Serialization => EcrException::Serialization,
            InputErrorKind::InvalidTagParameter => EcrException::InvalidTagParameter,
            InputErrorKind::TooManyTags => EcrException::TooManyTags,
            InputErrorKind::Tag => EcrException::Tag,
        };
        EcrError::new(exception, e.message)
    }
}
