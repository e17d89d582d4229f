//! dpkg's database of installed packages: `/var/lib/dpkg/status` and the
//! one-file-per-package `/var/lib/dpkg/status.d/` of distroless images, both
//! in deb822 control syntax (Debian Policy §5.1, §5.6.1 `Source`, §5.6.12
//! `Version`; dpkg-query(1) for `Status`).
//!
//! Only entries whose `Status` says the package is installed (`install ok
//! installed`, or `hold ok installed`) count; `status.d` entries carry no
//! `Status` and are installed by construction. Debian's OSV data is keyed by
//! source package, so `Source: name (version)` is kept for matching.

use super::{Package, PackageKind};

/// A `Field: value` pair.
pub type Field<'a> = (&'a str, &'a str);

/// Calls `f` with the fields of each deb822 paragraph, borrowed from `text`.
/// Continuation lines (long descriptions, conffiles) are validated but not
/// kept: no field the scanner reads spans lines. Errors name the first
/// malformed line.
pub fn for_each_paragraph<'a>(
    text: &'a str,
    f: &mut dyn FnMut(&[Field<'a>]) -> Result<(), String>,
) -> Result<(), String> {
    let mut cur: Vec<(&str, &str)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                f(&cur)?;
                cur.clear();
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if cur.is_empty() {
                return Err(format!("line {}: continuation without a field", n + 1));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!("line {}: expected \"Field: value\"", n + 1));
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(format!("line {}: invalid field name", n + 1));
        }
        cur.push((k, v.trim()));
    }
    if !cur.is_empty() {
        f(&cur)?;
    }
    Ok(())
}

fn field<'a>(p: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Parses a dpkg status file. `require_status` is false for `status.d`.
pub fn parse(text: &str, path: &str, require_status: bool) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    for_each_paragraph(text, &mut |p| {
        if require_status {
            let status = field(p, "status").unwrap_or("");
            let words: Vec<&str> = status.split_whitespace().collect();
            let installed = matches!(words.as_slice(), [want, "ok", "installed"] if *want == "install" || *want == "hold");
            if !installed {
                return Ok(());
            }
        }
        let Some(name) = field(p, "package").filter(|s| !s.is_empty()) else {
            return Err("paragraph without Package".into());
        };
        let Some(version) = field(p, "version").filter(|s| !s.is_empty()) else {
            return Err(format!("package {name} without Version"));
        };
        let (source_name, source_version) = match field(p, "source") {
            Some(src) if !src.is_empty() => match src.split_once('(') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    v.trim().trim_end_matches(')').trim().to_string(),
                ),
                None => (src.trim().to_string(), version.to_string()),
            },
            _ => (name.to_string(), version.to_string()),
        };
        out.push(Package {
            kind: PackageKind::Deb,
            ecosystem: None,
            name: name.to_string(),
            version: version.to_string(),
            source_name: Some(source_name),
            source_version: Some(source_version),
            arch: field(p, "architecture").map(str::to_string),
            path: path.to_string(),
        });
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_with_sources() {
        let text = "Package: libssl3\nStatus: install ok installed\nVersion: 3.0.20-1~deb12u2\nSource: openssl\nArchitecture: amd64\nDescription: x\n long\n .\n more\n\n\
Package: bsdutils\nStatus: install ok installed\nVersion: 1:2.38.1-5+deb12u3\nSource: util-linux (2.38.1-5+deb12u3)\n\n\
Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
Package: apt\nStatus: install ok installed\nVersion: 2.6.1\n";
        let pkgs = parse(text, "var/lib/dpkg/status", true).unwrap_or_default();
        assert_eq!(pkgs.len(), 3);
        assert_eq!(pkgs[0].source_name.as_deref(), Some("openssl"));
        assert_eq!(pkgs[0].source_version.as_deref(), Some("3.0.20-1~deb12u2"));
        assert_eq!(pkgs[1].source_version.as_deref(), Some("2.38.1-5+deb12u3"));
        assert_eq!(pkgs[1].version, "1:2.38.1-5+deb12u3");
        assert_eq!(pkgs[2].source_name.as_deref(), Some("apt"));
    }

    #[test]
    fn malformed() {
        assert!(parse("garbage line\n", "s", true).is_err());
        assert!(parse(" continuation first\n", "s", true).is_err());
        assert!(parse("Package: a\nStatus: install ok installed\n", "s", true).is_err());
        assert!(parse("Version: 1\n", "s", false).is_err());
        assert_eq!(parse("", "s", true).map(|v| v.len()).ok(), Some(0));
    }
}
