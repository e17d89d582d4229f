//! apk's installed database `/lib/apk/db/installed` (apk-tools
//! `doc/apk-package.5` / the "installed database" format): blank-line
//! separated records of `X:value` lines; `P` name, `V` version, `A` arch,
//! `o` origin (the source package Alpine's secdb and OSV data are keyed on).

use super::{Package, PackageKind};

/// Parses the installed database.
pub fn parse(text: &str, path: &str) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    let mut name: Option<&str> = None;
    let mut version: Option<&str> = None;
    let mut origin: Option<&str> = None;
    let mut arch: Option<&str> = None;
    let mut flush = |name: &mut Option<&str>,
                     version: &mut Option<&str>,
                     origin: &mut Option<&str>,
                     arch: &mut Option<&str>|
     -> Result<(), String> {
        match (name.take(), version.take()) {
            (Some(n), Some(v)) => {
                out.push(Package {
                    kind: PackageKind::Apk,
                    ecosystem: None,
                    name: n.to_string(),
                    version: v.to_string(),
                    source_name: Some(origin.unwrap_or(n).to_string()),
                    source_version: Some(v.to_string()),
                    arch: arch.map(str::to_string),
                    path: path.to_string(),
                });
            }
            (None, None) => {}
            (Some(n), None) => return Err(format!("package {n} without V:")),
            (None, Some(_)) => return Err("record without P:".into()),
        }
        *origin = None;
        *arch = None;
        Ok(())
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            flush(&mut name, &mut version, &mut origin, &mut arch)?;
            continue;
        }
        let b = line.as_bytes();
        if b.len() < 2 || b[1] != b':' {
            return Err(format!("line {}: expected \"X:value\"", n + 1));
        }
        let v = &line[2..];
        match b[0] {
            b'P' => name = Some(v),
            b'V' => version = Some(v),
            b'o' => origin = Some(v),
            b'A' => arch = Some(v),
            _ => {}
        }
    }
    flush(&mut name, &mut version, &mut origin, &mut arch)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let db = "C:Q1abc=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\nF:lib\nR:libcrypto.so.3\n\nP:musl\nV:1.2.4_git20230717-r4\n\n";
        let p = parse(db, "lib/apk/db/installed").unwrap_or_default();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].source_name.as_deref(), Some("openssl"));
        assert_eq!(p[1].source_name.as_deref(), Some("musl"));
        assert_eq!(p[1].version, "1.2.4_git20230717-r4");
    }

    #[test]
    fn malformed() {
        assert!(parse("hello world\n", "x").is_err());
        assert!(parse("P:a\n\n", "x").is_err());
        assert!(parse("V:1\n", "x").is_err());
    }
}
