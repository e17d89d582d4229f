//! npm inventories: `package-lock.json` (npm docs "package-lock.json":
//! lockfileVersion 1 `dependencies` tree, 2 and 3 `packages` map keyed by
//! `node_modules/…` paths; also the hidden `node_modules/.package-lock.json`)
//! and installed `node_modules/<name>/package.json` manifests.

use serde_json::Value;

/// `(name, version)` pairs from a lockfile.
pub fn parse_lock(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if let Some(pkgs) = v.get("packages").and_then(Value::as_object) {
        for (key, p) in pkgs {
            if key.is_empty() || p.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let Some(idx) = key.rfind("node_modules/") else {
                continue; // a workspace member, not an installed dependency
            };
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&key[idx + "node_modules/".len()..]);
            if let Some(ver) = p.get("version").and_then(Value::as_str) {
                out.push((name.to_string(), ver.to_string()));
            }
        }
    } else if let Some(deps) = v.get("dependencies").and_then(Value::as_object) {
        // lockfileVersion 1: nested tree; walk it with an explicit stack.
        let mut stack = vec![deps];
        while let Some(d) = stack.pop() {
            for (name, p) in d {
                if let Some(ver) = p.get("version").and_then(Value::as_str) {
                    // `file:`/`git+` versions are not registry versions.
                    if !ver.contains(':') {
                        out.push((name.clone(), ver.to_string()));
                    }
                }
                if let Some(nested) = p.get("dependencies").and_then(Value::as_object) {
                    stack.push(nested);
                }
            }
        }
    }
    Ok(out)
}

/// `(name, version)` from an installed package's `package.json`.
pub fn parse_manifest(bytes: &[u8]) -> Result<Option<(String, String)>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let name = v.get("name").and_then(Value::as_str);
    let version = v.get("version").and_then(Value::as_str);
    Ok(match (name, version) {
        (Some(n), Some(ver)) if !n.is_empty() && !ver.is_empty() => {
            Some((n.to_string(), ver.to_string()))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_v3_and_v1() {
        let v3 = br#"{"lockfileVersion":3,"packages":{"":{"name":"app"},
            "node_modules/a":{"version":"1.0.0"},
            "node_modules/a/node_modules/@s/b":{"version":"2.0.0"},
            "node_modules/l":{"link":true,"resolved":"x"}}}"#;
        let mut p = parse_lock(v3).unwrap_or_default();
        p.sort();
        assert_eq!(
            p,
            vec![
                ("@s/b".into(), "2.0.0".into()),
                ("a".into(), "1.0.0".into())
            ]
        );
        let v1 = br#"{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","dependencies":{"b":{"version":"0.1.0"}}},"c":{"version":"file:../c"}}}"#;
        let mut p = parse_lock(v1).unwrap_or_default();
        p.sort();
        assert_eq!(
            p,
            vec![("a".into(), "1.0.0".into()), ("b".into(), "0.1.0".into())]
        );
        assert!(parse_lock(b"{").is_err());
    }

    #[test]
    fn manifest() {
        assert_eq!(
            parse_manifest(br#"{"name":"lodash","version":"4.17.20"}"#)
                .ok()
                .flatten(),
            Some(("lodash".into(), "4.17.20".into()))
        );
        assert_eq!(parse_manifest(br#"{"name":"x"}"#).ok().flatten(), None);
    }
}
