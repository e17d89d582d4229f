//! PHP packages installed by Composer (getcomposer.org docs, "Basic usage":
//! "composer.lock", and the installed-package list Composer writes to
//! `vendor/composer/installed.json`).
//!
//! `composer.lock` lists packages under `packages` and `packages-dev`;
//! `installed.json` is `{"packages": […]}` since Composer 2 and a bare
//! array before. Each package has `name` (`vendor/package`) and `version`.

use serde::Deserialize;

#[derive(Deserialize)]
struct Pkg {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Doc {
    Lock {
        #[serde(default)]
        packages: Option<Vec<Pkg>>,
        #[serde(default, rename = "packages-dev")]
        packages_dev: Option<Vec<Pkg>>,
    },
    List(Vec<Pkg>),
}

/// Packages of a `composer.lock` or `installed.json`.
pub fn parse(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let pkgs = match doc {
        Doc::Lock {
            packages,
            packages_dev,
        } => packages
            .unwrap_or_default()
            .into_iter()
            .chain(packages_dev.unwrap_or_default())
            .collect(),
        Doc::List(l) => l,
    };
    Ok(pkgs
        .into_iter()
        .filter_map(|p| match (p.name, p.version) {
            (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => Some((n, v)),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_installed() {
        let lock =
            br#"{"content-hash":"x","packages":[{"name":"guzzlehttp/psr7","version":"1.8.1"}],
            "packages-dev":[{"name":"phpunit/phpunit","version":"9.5.0"}]}"#;
        assert_eq!(
            parse(lock),
            Ok(vec![
                ("guzzlehttp/psr7".into(), "1.8.1".into()),
                ("phpunit/phpunit".into(), "9.5.0".into())
            ])
        );
        let v2 = br#"{"packages":[{"name":"symfony/http-kernel","version":"v5.4.0","version_normalized":"5.4.0.0"}],"dev":true}"#;
        assert_eq!(
            parse(v2),
            Ok(vec![("symfony/http-kernel".into(), "v5.4.0".into())])
        );
        let v1 = br#"[{"name":"monolog/monolog","version":"1.0.0"}]"#;
        assert_eq!(parse(v1).map(|v| v.len()), Ok(1));
        assert!(parse(b"{").is_err());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = parse(&bytes);
                let _ = crate::inventory::dotnet::parse(&bytes);
            }
        }
    }
}
