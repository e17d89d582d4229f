//! `berth sbom IMAGE`: prints the software bill of materials of an image, read from
//! its layers now (CycloneDX 1.6 JSON by default, SPDX 2.3 JSON on request). Like
//! `berth admin` and `berth vulndb`, it takes the same configuration as `berth serve`,
//! opens the stores through the registry core and works while the server runs.

use berth_oci::{Reference, RepositoryName};
use berth_registry::sbom::SbomFormat;
use berth_scan::Limits;
use clap::{Args, ValueEnum};

use crate::Common;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Cyclonedx,
    Spdx,
}

#[derive(Args)]
pub struct SbomArgs {
    #[command(flatten)]
    common: Common,
    /// The image: `repository:tag` or `repository@sha256:…` (`repository` alone is
    /// `repository:latest`).
    image: String,
    #[arg(long, value_enum, default_value = "cyclonedx")]
    format: Format,
    /// The registry (account id) holding the repository; default the configured one.
    #[arg(long)]
    account: Option<String>,
}

/// Splits `repo:tag` / `repo@digest` (a `:` only counts after the last `/`).
fn parse_image(s: &str) -> Result<(RepositoryName, Reference), String> {
    let bad = |e: berth_oci::NameError| format!("invalid image reference {s:?}: {e}");
    let (name, reference) = match s.split_once('@') {
        Some((n, d)) => (n, d),
        None => {
            let slash = s.rfind('/').map_or(0, |i| i + 1);
            match s[slash..].rfind(':') {
                Some(i) => (&s[..slash + i], &s[slash + i + 1..]),
                None => (s, "latest"),
            }
        }
    };
    Ok((
        RepositoryName::parse(name).map_err(bad)?,
        Reference::parse(reference).map_err(bad)?,
    ))
}

pub async fn run(args: SbomArgs) -> Result<(), String> {
    let cfg = args.common.load()?;
    let (name, reference) = parse_image(&args.image)?;
    let reg = crate::serve::open_registry(&cfg).await?;
    let account = args.account.unwrap_or_else(|| cfg.account_id.clone());
    let repo = reg
        .repository(&account, &name)
        .await
        .map_err(|e| e.to_string())?;
    let format = match args.format {
        Format::Cyclonedx => SbomFormat::CycloneDx,
        Format::Spdx => SbomFormat::Spdx,
    };
    let doc = match reg
        .image_sbom(&repo, &reference, format, &Limits::default())
        .await
    {
        Ok(Ok(doc)) => doc,
        Ok(Err(why)) => return Err(format!("no SBOM for {}: {why}", args.image)),
        Err(berth_registry::RegistryError::ManifestUnknown) => {
            return Err(format!("no image {} in {}", reference, name.as_str()))
        }
        Err(e) => return Err(e.to_string()),
    };
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let (n, r) = parse_image("team/app:1.0").unwrap();
        assert_eq!(n.as_str(), "team/app");
        assert_eq!(r.to_string(), "1.0");
        let (n, r) = parse_image("team/app").unwrap();
        assert_eq!(n.as_str(), "team/app");
        assert_eq!(r.to_string(), "latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let (n, r) = parse_image(&format!("app@{d}")).unwrap();
        assert_eq!(n.as_str(), "app");
        assert!(matches!(r, Reference::Digest(_)));
        assert_eq!(r.to_string(), d);
        assert!(parse_image("app@sha256:zz").is_err());
        assert!(parse_image("App:1").is_err());
    }
}
