//! Ruby gems: installed specifications and Bundler lockfiles.
//!
//! Installed gems (RubyGems "Gem::Specification": `gem install` writes the
//! specification as Ruby source to `<GEM_HOME>/specifications/<name>-<version>.gemspec`,
//! default gems under `specifications/default/`) are read for
//! `s.name = "…"` and `s.version = "…"`, falling back on the `# stub: name
//! version platform` line RubyGems writes at the top. Nothing is evaluated.
//!
//! `Gemfile.lock` (Bundler, "Gemfile.lock" in the bundler docs): in the
//! `GEM`, `GIT` and `PATH` sections, the gems under `specs:` are the lines
//! indented by exactly four spaces, `name (version[-platform])`.

/// The first double- or single-quoted string in `s`.
fn quoted(s: &str) -> Option<&str> {
    let start = s.find(['"', '\''])?;
    let q = s[start..].chars().next()?;
    let rest = &s[start + 1..];
    let end = rest.find(q)?;
    Some(&rest[..end])
}

/// Name and version of an installed gemspec.
pub fn parse_gemspec(text: &str) -> Option<(String, String)> {
    let mut name = None;
    let mut version = None;
    let mut stub = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("# stub: ") {
            let mut it = rest.split_whitespace();
            if let (Some(n), Some(v)) = (it.next(), it.next()) {
                stub = Some((n.to_string(), v.to_string()));
            }
            continue;
        }
        // `s.name = "rack".freeze`, `spec.version = "2.2.3"`,
        // `s.version = Gem::Version.new("1.0")`
        let Some((lhs, rhs)) = l.split_once('=') else {
            continue;
        };
        let field = lhs.trim().rsplit('.').next().unwrap_or("");
        if !lhs.trim().contains('.') || rhs.starts_with('=') {
            continue;
        }
        match field {
            "name" if name.is_none() => name = quoted(rhs).map(str::to_string),
            "version" if version.is_none() => version = quoted(rhs).map(str::to_string),
            _ => {}
        }
    }
    match (name, version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => Some((n, v)),
        _ => stub,
    }
}

/// Gems listed in a `Gemfile.lock`.
pub fn parse_gemfile_lock(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_source = false;
    let mut in_specs = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if !line.starts_with(' ') {
            in_source = matches!(line.trim(), "GEM" | "GIT" | "PATH" | "PLUGIN SOURCE");
            in_specs = false;
            continue;
        }
        if !in_source {
            continue;
        }
        if line.trim() == "specs:" && line.starts_with("  ") && !line.starts_with("   ") {
            in_specs = true;
            continue;
        }
        if !in_specs {
            continue;
        }
        let Some(spec) = line.strip_prefix("    ") else {
            continue;
        };
        if spec.starts_with(' ') {
            continue; // a dependency of the gem above
        }
        let Some((name, rest)) = spec.split_once(" (") else {
            continue;
        };
        let Some(v) = rest.strip_suffix(')') else {
            continue;
        };
        // `nokogiri (1.13.10-x86_64-linux)`: the platform follows a `-`.
        let v = v.split_once('-').map_or(v, |(v, _)| v);
        if !name.is_empty() && !v.is_empty() {
            out.push((name.to_string(), v.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemspec() {
        let t = "# -*- encoding: utf-8 -*-\n# stub: rack 2.2.3 ruby lib\n\nGem::Specification.new do |s|\n  s.name = \"rack\".freeze\n  s.version = \"2.2.3\"\n  s.required_rubygems_version = Gem::Requirement.new(\">= 0\".freeze) if s.respond_to? :required_rubygems_version=\n";
        assert_eq!(parse_gemspec(t), Some(("rack".into(), "2.2.3".into())));
        let stub_only = "# stub: nokogiri 1.13.10 x86_64-linux lib\n";
        assert_eq!(
            parse_gemspec(stub_only),
            Some(("nokogiri".into(), "1.13.10".into()))
        );
        assert_eq!(parse_gemspec("puts 1\n"), None);
    }

    #[test]
    fn lockfile() {
        let t = "GIT\n  remote: https://github.com/x/y.git\n  revision: abc\n  specs:\n    y (0.1.0)\n\nGEM\n  remote: https://rubygems.org/\n  specs:\n    actionpack (6.1.4)\n      rack (~> 2.0, >= 2.0.9)\n    nokogiri (1.13.10-x86_64-linux)\n      racc (~> 1.4)\n    rack (2.2.3)\n\nPLATFORMS\n  x86_64-linux\n\nDEPENDENCIES\n  rack (= 2.2.3)\n\nBUNDLED WITH\n   2.3.26\n";
        assert_eq!(
            parse_gemfile_lock(t),
            vec![
                ("y".to_string(), "0.1.0".to_string()),
                ("actionpack".into(), "6.1.4".into()),
                ("nokogiri".into(), "1.13.10".into()),
                ("rack".into(), "2.2.3".into()),
            ]
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsers_never_panic(text in "[ -~\n\r]{0,400}") {
                let _ = parse_gemspec(&text);
                let _ = parse_gemfile_lock(&text);
            }
        }
    }
}
