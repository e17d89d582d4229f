//! Installed Python distributions: `*.dist-info/METADATA` (Core Metadata
//! specification, PyPA "Recording installed projects") and `*.egg-info`
//! `PKG-INFO` — RFC 822 style headers, of which `Name` and `Version` are read.

/// `(name, version)` from a METADATA/PKG-INFO document, if it has both.
pub fn parse_metadata(text: &str) -> Option<(String, String)> {
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            break; // the body (long description) starts here
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "name" => name = Some(v.trim().to_string()),
                "version" => version = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    match (name, version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => Some((n, v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_only() {
        let m = "Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.3.1\n\nName: not-this\n";
        assert_eq!(
            parse_metadata(m),
            Some(("PyYAML".to_string(), "5.3.1".to_string()))
        );
        assert_eq!(parse_metadata("Name: x\n"), None);
    }
}
