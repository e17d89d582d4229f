//! The byte-range headers of the distribution API, parsed without I/O so that the
//! fuzz targets reach them (`crates/fuzzing`): `Content-Range` on chunked uploads
//! and `Range` on blob reads.

/// `Content-Range: <start>-<end>` of an upload chunk (also `bytes <start>-<end>`,
/// `bytes=<start>-<end>`, and a `/<total>` suffix, which is ignored) → (start,
/// length). `None` when malformed: not two numbers, the end before the start, or a
/// length that does not fit in 64 bits.
pub fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let s = v.trim();
    let s = s
        .strip_prefix("bytes ")
        .or_else(|| s.strip_prefix("bytes="))
        .unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = b.trim().parse().ok()?;
    if b < a {
        return None;
    }
    Some((a, (b - a).checked_add(1)?))
}

/// `Range: bytes=a-b` (one range; suffix and open-ended forms included) over a blob
/// of `size` bytes. `None`: not a single byte range (serve the whole blob);
/// `Some(Err(()))`: unsatisfiable; `Some(Ok((first, last)))`, inclusive.
pub fn parse_range(v: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: serve the whole blob
    }
    let (a, b) = spec.split_once('-')?;
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let s: u64 = a.parse().ok()?;
        let e: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse().ok()?
        };
        if s >= size || e < s {
            return Some(Err(()));
        }
        (s, e.min(size - 1))
    };
    Some(Ok(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(parse_content_range("0-99"), Some((0, 100)));
        assert_eq!(parse_content_range("bytes 100-199/*"), Some((100, 100)));
        assert_eq!(parse_content_range("bytes=5-5"), Some((5, 1)));
        assert_eq!(parse_content_range("9-3"), None);
        assert_eq!(parse_content_range("a-b"), None);
        assert_eq!(parse_content_range(""), None);
    }

    /// Found while moving the parser here for its fuzz target (`docs/fuzzing.md`):
    /// `0-18446744073709551615` made the length overflow (a panic in debug builds,
    /// a zero length in release ones).
    #[test]
    fn a_content_range_spanning_every_u64_is_malformed_not_an_overflow() {
        assert_eq!(parse_content_range("0-18446744073709551615"), None);
        assert_eq!(
            parse_content_range("1-18446744073709551615"),
            Some((1, u64::MAX))
        );
    }

    #[test]
    fn range_forms() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=95-1000", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
