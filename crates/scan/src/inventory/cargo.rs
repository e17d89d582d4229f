//! `Cargo.lock` (Cargo book, "Cargo.toml vs Cargo.lock"; TOML with one
//! `[[package]]` table per crate). Only `name`, `version` and whether the
//! package comes from a registry (`source = "registry+…"`/`"sparse+…"`) are
//! read; path and git dependencies are not crates.io releases.

/// `(name, version)` of the registry packages in a lockfile.
pub fn parse_lock(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(Option<String>, Option<String>, bool)> = None;
    let flush = |cur: &mut Option<(Option<String>, Option<String>, bool)>,
                 out: &mut Vec<(String, String)>| {
        if let Some((Some(n), Some(v), true)) = cur.take() {
            out.push((n, v));
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            flush(&mut cur, &mut out);
            if line == "[[package]]" {
                cur = Some((None, None, false));
            }
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "name" => c.0 = Some(v),
            "version" => c.1 = Some(v),
            "source" => c.2 = v.starts_with("registry+") || v.starts_with("sparse+"),
            _ => {}
        }
    }
    flush(&mut cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_packages_only() {
        let lock = "version = 3\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"abc\"\n\n[metadata]\nx = 1\n";
        assert_eq!(parse_lock(lock), vec![("smallvec".into(), "1.6.0".into())]);
    }
}
