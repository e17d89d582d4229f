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

/// One page of `all` (in ascending order of `key`): the items after the request's
/// `nextToken`, at most its `maxResults` of them (`default` when absent, at most
/// `max`), each kept only when `keep` says so; with the `nextToken` of the next
/// page when there is one. The lists of prefixes and principals use it.
pub fn page_after<'a, T: 'a>(
    input: &Input,
    all: impl IntoIterator<Item = &'a T>,
    key: impl Fn(&T) -> &str,
    keep: impl Fn(&T) -> bool,
    max: i64,
    default: i64,
) -> Result<(Vec<&'a T>, Option<String>), EcrError> {
    let n = input.max_results(max, default)? as usize;
    let after = input.opt_str("nextToken")?.map(decode_token).transpose()?;
    let mut page: Vec<&T> = all
        .into_iter()
        .filter(|t| keep(t))
        .filter(|t| after.as_deref().is_none_or(|a| key(t) > a))
        .take(n + 1)
        .collect();
    let next = (page.len() > n).then(|| {
        page.truncate(n);
        encode_token(key(page[n - 1]))
    });
    Ok((page, next))
}
