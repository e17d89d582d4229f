//! rpm's package database: the SQLite rpmdb (`rpmdb.sqlite`, rpm ≥ 4.16,
//! RHEL/Rocky/Alma 9, Fedora ≥ 33), whose `Packages` table holds one header
//! blob per installed package, and the header blob format itself (rpm's
//! `lib/header.c`: big-endian index count and data length, 16-byte index
//! entries `tag, type, offset, count`, then the data store).
//!
//! Read: NAME (1000), VERSION (1001), RELEASE (1002), EPOCH (1003), ARCH
//! (1022) and SOURCERPM (1044). `gpg-pubkey` pseudo-packages are skipped.
//! The version matched is `[epoch:]version-release`; the source package name
//! comes from the source rpm file name (`openssl-3.0.7-24.el9.src.rpm`).
//! The BerkeleyDB `Packages` of rpm < 4.16 (EL7/EL8) is read through
//! [`super::bdb`]; SUSE's NDB (`Packages.db`) is not read.

use super::sqlite::{self, Db, Value};
use super::{Package, PackageKind};

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// The fields of one header the scanner uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpmHeader {
    /// NAME.
    pub name: Option<String>,
    /// VERSION.
    pub version: Option<String>,
    /// RELEASE.
    pub release: Option<String>,
    /// EPOCH.
    pub epoch: Option<u32>,
    /// ARCH.
    pub arch: Option<String>,
    /// SOURCERPM.
    pub source_rpm: Option<String>,
}

fn u32_at(b: &[u8], pos: usize) -> Result<u32, String> {
    let s = b.get(pos..pos + 4).ok_or("truncated header")?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses a header blob as stored in the rpmdb (no lead, no magic).
pub fn parse_header(blob: &[u8]) -> Result<RpmHeader, String> {
    let il = u32_at(blob, 0)? as usize;
    let dl = u32_at(blob, 4)? as usize;
    if il == 0 || il > 0xffff || dl > 256 << 20 {
        return Err(format!("implausible header sizes (il {il}, dl {dl})"));
    }
    let index_end = 8 + 16 * il;
    let store = blob
        .get(index_end..index_end + dl)
        .ok_or("header shorter than its index says")?;
    let mut h = RpmHeader::default();
    for i in 0..il {
        let e = 8 + 16 * i;
        let tag = u32_at(blob, e)?;
        let kind = u32_at(blob, e + 4)?;
        let off = u32_at(blob, e + 8)? as usize;
        let count = u32_at(blob, e + 12)?;
        if !matches!(
            tag,
            TAG_NAME | TAG_VERSION | TAG_RELEASE | TAG_EPOCH | TAG_ARCH | TAG_SOURCERPM
        ) {
            continue;
        }
        if off >= store.len() || count == 0 {
            return Err(format!("tag {tag}: offset out of range"));
        }
        if tag == TAG_EPOCH {
            if kind != TYPE_INT32 {
                return Err("EPOCH is not INT32".into());
            }
            h.epoch = Some(u32_at(store, off)?);
            continue;
        }
        if kind != TYPE_STRING && kind != TYPE_I18NSTRING {
            return Err(format!("tag {tag}: not a string"));
        }
        let rest = &store[off..];
        let end = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| format!("tag {tag}: unterminated string"))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        match tag {
            TAG_NAME => h.name = Some(s),
            TAG_VERSION => h.version = Some(s),
            TAG_RELEASE => h.release = Some(s),
            TAG_ARCH => h.arch = Some(s),
            _ => h.source_rpm = Some(s),
        }
    }
    Ok(h)
}

/// Source package name from a source rpm file name.
pub fn source_name(srpm: &str) -> Option<String> {
    let base = srpm
        .strip_suffix(".src.rpm")
        .or_else(|| srpm.strip_suffix(".nosrc.rpm"))?;
    let (rest, _release) = base.rsplit_once('-')?;
    let (name, _version) = rest.rsplit_once('-')?;
    (!name.is_empty()).then(|| name.to_string())
}

fn push_header(out: &mut Vec<Package>, blob: &[u8], path: &str, what: &str) -> Result<(), String> {
    let h = parse_header(blob).map_err(|e| format!("{what}: {e}"))?;
    let (Some(name), Some(version), Some(release)) = (h.name, h.version, h.release) else {
        return Err(format!("{what}: header without name/version/release"));
    };
    if name == "gpg-pubkey" {
        return Ok(());
    }
    let evr = match h.epoch {
        Some(e) if e > 0 => format!("{e}:{version}-{release}"),
        _ => format!("{version}-{release}"),
    };
    out.push(Package {
        kind: PackageKind::Rpm,
        ecosystem: None,
        name,
        version: evr.clone(),
        source_name: h.source_rpm.as_deref().and_then(source_name),
        source_version: Some(evr),
        arch: h.arch,
        path: path.to_string(),
    });
    Ok(())
}

/// Installed packages from an rpmdb image: SQLite (`rpmdb.sqlite`) or
/// BerkeleyDB hash (`Packages`), told apart by their magic.
pub fn packages(db: &[u8], path: &str) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    if !db.starts_with(b"SQLite format 3\0") {
        for (i, blob) in super::bdb::values(db)?.iter().enumerate() {
            push_header(&mut out, blob, path, &format!("record {i}"))?;
        }
        return Ok(out);
    }
    let db = Db::open(db)?;
    let root = db
        .table_root("Packages")?
        .ok_or("no Packages table in the rpmdb")?;
    db.scan_table(root, &mut |rowid, payload| {
        let cols = sqlite::record(&payload)?;
        let blob = match cols.get(1) {
            Some(Value::Blob(b)) => b,
            _ => return Err(format!("row {rowid}: no header blob")),
        };
        push_header(&mut out, blob, path, &format!("row {rowid}"))
    })?;
    Ok(out)
}

#[cfg(test)]
pub(crate) fn build_header(fields: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut store = Vec::new();
    for (tag, kind, data) in fields {
        if *kind == TYPE_INT32 {
            while store.len() % 4 != 0 {
                store.push(0);
            }
        }
        index.extend_from_slice(&tag.to_be_bytes());
        index.extend_from_slice(&kind.to_be_bytes());
        index.extend_from_slice(&(store.len() as u32).to_be_bytes());
        index.extend_from_slice(&1u32.to_be_bytes());
        store.extend_from_slice(data);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
    out.extend_from_slice(&(store.len() as u32).to_be_bytes());
    out.extend(index);
    out.extend(store);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let blob = build_header(&[
            (TAG_NAME, TYPE_STRING, b"openssl-libs\0"),
            (TAG_VERSION, TYPE_STRING, b"3.0.7\0"),
            (TAG_RELEASE, TYPE_STRING, b"24.el9\0"),
            (TAG_EPOCH, TYPE_INT32, &1u32.to_be_bytes()),
            (
                TAG_SOURCERPM,
                TYPE_STRING,
                b"openssl-3.0.7-24.el9.src.rpm\0",
            ),
        ]);
        let h = parse_header(&blob);
        assert_eq!(
            h,
            Ok(RpmHeader {
                name: Some("openssl-libs".into()),
                version: Some("3.0.7".into()),
                release: Some("24.el9".into()),
                epoch: Some(1),
                arch: None,
                source_rpm: Some("openssl-3.0.7-24.el9.src.rpm".into()),
            })
        );
    }

    #[test]
    fn hostile_headers() {
        assert!(parse_header(&[0, 0, 0, 1]).is_err());
        assert!(parse_header(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
        let mut blob = build_header(&[(TAG_NAME, TYPE_STRING, b"abc")]); // unterminated
        assert!(parse_header(&blob).is_err());
        blob.truncate(10);
        assert!(parse_header(&blob).is_err());
        let blob = build_header(&[(TAG_EPOCH, TYPE_STRING, b"1\0")]);
        assert!(parse_header(&blob).is_err());
    }

    #[test]
    fn real_rpm_headers_in_berkeleydb() {
        let db = include_bytes!("../../tests/fixtures/rpm/Packages.rpm418");
        let pkgs = packages(db, "var/lib/rpm/Packages");
        let Ok(pkgs) = pkgs else { panic!("{pkgs:?}") };
        let mut got: Vec<String> = pkgs
            .iter()
            .map(|p| format!("{} {} {:?}", p.name, p.version, p.source_name))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                "bash 5.1.8-6.el9_1 Some(\"bash\")",
                "openssl 1:3.0.7-24.el9 Some(\"openssl\")",
                "openssl-libs 1:3.0.7-24.el9 Some(\"openssl\")",
                "python3-urllib3 1.26.5-3.el9 Some(\"python-urllib3\")",
            ]
        );
    }

    #[test]
    fn source_names() {
        assert_eq!(
            source_name("openssl-3.0.7-24.el9.src.rpm").as_deref(),
            Some("openssl")
        );
        assert_eq!(
            source_name("python-urllib3-1.26.5-3.el9.src.rpm").as_deref(),
            Some("python-urllib3")
        );
        assert_eq!(source_name("weird"), None);
    }
}
