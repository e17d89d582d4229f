//! The targets. Each takes arbitrary bytes; the ones over text decode them lossily
//! so that every input reaches the parser.

use std::cmp::Ordering;
use std::io::Cursor;

use berth_iam::policy::{
    evaluate, PolicyDocument, PolicyKind, PolicyRef, PolicySource, Principal, RequestContext,
};
use berth_iam::sigv4::{self, Flavor, Payload, Request};
use berth_oci::{media, Digest, ImageTag, Manifest, Reference, RepositoryName};
use berth_scan::{ImageFs, Layer, Limits, VersionScheme};

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Names, tags, digests and references: whatever parses prints back to the same text.
pub fn oci_names(data: &[u8]) {
    let s = text(data);
    for line in std::iter::once(s.as_ref()).chain(s.lines()) {
        if let Ok(n) = RepositoryName::parse(line) {
            assert_eq!(n.to_string(), line, "a repository name re-prints as itself");
        }
        if let Ok(t) = ImageTag::parse(line) {
            assert_eq!(t.to_string(), line, "a tag re-prints as itself");
        }
        if let Ok(d) = Digest::parse(line) {
            assert_eq!(d.as_str(), line, "a digest re-prints as itself");
            assert_eq!(Digest::parse(d.as_str()).ok().as_ref(), Some(&d));
        }
        let _ = Reference::parse(line);
    }
}

/// Manifests and indexes under every media type a client may declare.
pub fn oci_manifest(data: &[u8]) {
    let _ = Manifest::parse(data, None);
    for ct in media::MANIFEST_TYPES {
        let _ = Manifest::parse(data, Some(ct));
    }
    let _ = Manifest::parse(data, Some("application/json; charset=utf-8"));
}

fn request_context() -> Option<RequestContext> {
    let p = Principal::from_arn("arn:aws:iam::123456789012:user/ci")?;
    Some(
        RequestContext::new(
            p,
            "ecr:BatchGetImage",
            "arn:aws:ecr:us-east-1:123456789012:repository/team/app",
        )
        .with_time(1_700_000_000)
        .with_key("aws:SourceIp", "10.1.2.3")
        .with_key("aws:ResourceTag/team", "a"),
    )
}

/// IAM policy documents of every kind, and their evaluation when they parse.
pub fn iam_policy(data: &[u8]) {
    let s = text(data);
    let Some(ctx) = request_context() else {
        return;
    };
    for kind in [
        PolicyKind::Identity,
        PolicyKind::Resource,
        PolicyKind::EcrRepository,
        PolicyKind::EcrRegistry,
    ] {
        if let Ok(doc) = PolicyDocument::parse(&s, kind) {
            let source = if kind == PolicyKind::Identity {
                PolicySource::Identity
            } else {
                PolicySource::Resource
            };
            let refs = [PolicyRef {
                name: "fuzzed",
                source,
                document: &doc,
            }];
            let e = evaluate(&ctx, &refs);
            let _ = e.is_allowed();
            let _ = e.denial_message(&ctx);
        }
    }
}

/// SigV4: the input is a request — method, path, query on the first three lines,
/// then `name: value` headers — parsed, checked and verified against a secret.
pub fn iam_sigv4(data: &[u8]) {
    let s = text(data);
    let mut lines = s.split('\n');
    let method = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("");
    let query = lines.next().unwrap_or("");
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim_start()))
        .collect();
    let req = Request {
        method,
        path,
        query,
        headers: &headers,
    };
    let Ok(parsed) = sigv4::parse(&req) else {
        return;
    };
    let _ = parsed.check_time(1_700_000_000, 900);
    let _ = parsed.check_scope("us-east-1", &["ecr", "sts"]);
    for flavor in [Flavor::Standard, Flavor::S3] {
        let _ = parsed.verify(
            &req,
            Payload::Sha256Hex(sigv4::EMPTY_SHA256),
            b"secret",
            flavor,
        );
        let _ = parsed.verify(&req, Payload::Unsigned, b"secret", flavor);
    }
    let _ = sigv4::canonical_query_string(query, true);
    let _ = sigv4::canonical_uri(path, Flavor::Standard);
    let _ = sigv4::canonical_uri(path, Flavor::S3);
}

/// ARNs, the date formats of SigV4 and policies, and registry tokens.
pub fn iam_arn_time_token(data: &[u8]) {
    let s = text(data);
    let _ = berth_iam::arn::Arn::parse(&s);
    let _ = berth_iam::time::parse_amz_date(&s);
    let _ = berth_iam::time::parse_date_stamp(&s);
    let _ = berth_iam::time::parse_iso8601(&s);
    let _ = berth_iam::time::parse_http_date(&s);
    let _ = berth_iam::token::verify(&[[7u8; 32]], &s, 1_700_000_000);
}

/// Lifecycle policies, and their evaluation over a small repository when they parse.
pub fn lifecycle_policy(data: &[u8]) {
    let s = text(data);
    let Ok(policy) = berth_lifecycle::LifecyclePolicy::parse(&s) else {
        return;
    };
    let day = berth_lifecycle::MILLIS_PER_DAY;
    let now = 400 * day;
    let images: Vec<_> = (0..12u64)
        .map(|i| {
            let tags = match i % 4 {
                0 => vec![],
                1 => vec![format!("prod-{i}")],
                2 => vec![format!("v1.{i}"), "latest".to_string()],
                _ => vec![format!("feature-{i}-x")],
            };
            let mut img = berth_lifecycle::LifecycleImage::new(
                format!("sha256:{i:064x}"),
                tags,
                now - (i as i64) * 37 * day,
            );
            if i % 3 == 0 {
                img = img.pulled_at(now - (i as i64) * day);
            }
            img.index = i;
            img
        })
        .collect();
    let expired = berth_lifecycle::evaluate(&policy, &images, now);
    assert!(
        expired.len() <= images.len(),
        "never more expiries than images"
    );
}

const SCHEMES: [VersionScheme; 7] = [
    VersionScheme::Dpkg,
    VersionScheme::Apk,
    VersionScheme::Rpm,
    VersionScheme::Pep440,
    VersionScheme::Semver,
    VersionScheme::Go,
    VersionScheme::Generic,
];

/// Version orderings: two versions separated by a NUL byte (or a newline); every
/// scheme must be a consistent order on them (reflexive, antisymmetric).
pub fn scan_versions(data: &[u8]) {
    let s = text(data);
    let (a, b) = s
        .split_once('\0')
        .or_else(|| s.split_once('\n'))
        .unwrap_or((&s, ""));
    for scheme in SCHEMES {
        let ab = scheme.compare(a, b);
        let ba = scheme.compare(b, a);
        assert_eq!(
            ab,
            ba.reverse(),
            "{scheme:?}: compare({a:?}, {b:?}) is antisymmetric"
        );
        assert_eq!(
            scheme.compare(a, a),
            Ordering::Equal,
            "{scheme:?}: {a:?} equals itself"
        );
    }
}

fn small_limits() -> Limits {
    Limits {
        max_decompressed_bytes: 64 << 20,
        max_file_bytes: 4 << 20,
        max_retained_bytes: 16 << 20,
        max_entries: 10_000,
        ..Limits::default()
    }
}

const LAYER_TYPES: [&str; 4] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

fn inventory_of(fs: &ImageFs, limits: &Limits) {
    let _ = berth_scan::inventory::detect_os(fs, limits);
    let _ = berth_scan::inventory::collect(fs, limits);
}

/// Layer blobs as stored (tar, gzip, zstd): walked, then inventoried.
pub fn scan_layers(data: &[u8]) {
    let limits = small_limits();
    for mt in LAYER_TYPES {
        let layers = vec![Layer::new(mt, Cursor::new(data))];
        if let Ok(fs) = ImageFs::from_layers(layers, &limits) {
            inventory_of(&fs, &limits);
        }
    }
}

/// Paths the inventory reads, each given the input as its contents.
const DATABASES: [&str; 12] = [
    "etc/os-release",
    "var/lib/dpkg/status",
    "var/lib/dpkg/status.d/pkg",
    "lib/apk/db/installed",
    "var/lib/rpm/rpmdb.sqlite",
    "var/lib/rpm/Packages",
    "usr/lib/python3/site-packages/pkg-1.0.dist-info/METADATA",
    "app/package-lock.json",
    "app/node_modules/pkg/package.json",
    "app/Cargo.lock",
    "usr/local/bin/app",
    "usr/lib/os-release",
];

/// Package databases and language inventories: a layer holding the input at every
/// path the inventory reads.
pub fn scan_inventories(data: &[u8]) {
    let limits = small_limits();
    let mut tar = Vec::with_capacity(DATABASES.len() * (data.len() + 1024) + 1024);
    for path in DATABASES {
        ustar_file(&mut tar, path, data);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    let layers = vec![Layer::new(LAYER_TYPES[0], Cursor::new(&tar[..]))];
    if let Ok(fs) = ImageFs::from_layers(layers, &limits) {
        inventory_of(&fs, &limits);
    }
}

/// Appends one regular file to a ustar archive.
pub fn ustar_file(out: &mut Vec<u8>, path: &str, data: &[u8]) {
    let mut h = [0u8; 512];
    let name = path.as_bytes();
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    let size = format!("{:011o}\0", data.len());
    h[124..136].copy_from_slice(size.as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let sum = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(sum.as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// `Content-Range` of upload chunks and `Range` of blob reads: the first line is
/// the blob size, every line (the first too) a header value. Whatever parses is a
/// range inside the blob / a length that fits.
pub fn oci_ranges(data: &[u8]) {
    let s = text(data);
    let size = s
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u64>().ok())
        .unwrap_or(data.len() as u64);
    for line in std::iter::once(s.as_ref()).chain(s.lines()) {
        if let Some((start, len)) = berth_oci::range::parse_content_range(line) {
            assert!(len >= 1, "a chunk range has a length");
            assert!(start.checked_add(len - 1).is_some(), "its end fits");
        }
        for size in [size, 0, 1, u64::MAX] {
            if let Some(Ok((first, last))) = berth_oci::range::parse_range(line, size) {
                assert!(
                    first <= last && last < size,
                    "{line:?} over {size}: {first}-{last}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tar_writer_makes_archives_the_walker_reads() {
        let mut tar = Vec::new();
        ustar_file(
            &mut tar,
            "var/lib/dpkg/status",
            b"Package: a\nVersion: 1.0\nStatus: install ok installed\n\n",
        );
        tar.extend_from_slice(&[0u8; 1024]);
        let limits = small_limits();
        let fs = ImageFs::from_layers(
            vec![Layer::new(LAYER_TYPES[0], Cursor::new(&tar[..]))],
            &limits,
        )
        .expect("a valid archive");
        assert!(fs.read("var/lib/dpkg/status", 8).unwrap().is_some());
    }
}
