//! `/v2/` path grammar (Distribution Spec v1.1, "Endpoints"). Repository names
//! contain `/`, so routes are recognised from the end of the path.

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

/// Parses the path after `/v2`; `None` when it names no endpoint.
pub fn parse(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return nonempty(name).map(Route::Tags);
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return nonempty(name).map(Route::UploadStart);
    }
    let (head, last) = rest.rsplit_once('/')?;
    if last.is_empty() {
        return None;
    }
    if let Some(name) = head.strip_suffix("/manifests") {
        return nonempty(name).map(|n| Route::Manifest(n, last));
    }
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        return nonempty(name).map(|n| Route::Upload(n, last));
    }
    if let Some(name) = head.strip_suffix("/blobs") {
        return nonempty(name).map(|n| Route::Blob(n, last));
    }
    if let Some(name) = head.strip_suffix("/referrers") {
        return nonempty(name).map(|n| Route::Referrers(n, last));
    }
    None
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(parse("/v2/"), Some(Route::Base));
        assert_eq!(parse("/v2"), Some(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(parse("/v2/a/b/tags/list"), Some(Route::Tags("a/b")));
        assert_eq!(
            parse("/v2/a/manifests/v1"),
            Some(Route::Manifest("a", "v1"))
        );
        assert_eq!(
            parse("/v2/x/blobs/y/blobs/sha256:ab"),
            Some(Route::Blob("x/blobs/y", "sha256:ab"))
        );
        assert_eq!(parse("/v2/a/blobs/uploads/"), Some(Route::UploadStart("a")));
        assert_eq!(parse("/v2/a/blobs/uploads"), Some(Route::UploadStart("a")));
        assert_eq!(
            parse("/v2/a/blobs/uploads/u1"),
            Some(Route::Upload("a", "u1"))
        );
        assert_eq!(
            parse("/v2/a/referrers/sha256:1"),
            Some(Route::Referrers("a", "sha256:1"))
        );
        assert_eq!(parse("/v2/manifests/v1"), None);
        assert_eq!(parse("/v2/a/unknown/x"), None);
        assert_eq!(parse("/v3/a"), None);
        assert_eq!(parse("/v2/a/manifests/"), None);
    }
}
