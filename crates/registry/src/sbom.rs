//! Software bills of materials of images: the CycloneDX/SPDX documents
//! `berth_scan::sbom` builds from an image's inventory, and the CycloneDX SBOM that
//! a scan pushes into the image's repository as an OCI referrer when asked to
//! (`docs/scanning.md`, "SBOMs as referrers").
//!
//! The referrer is an OCI 1.1 artifact manifest: `artifactType`
//! `application/vnd.cyclonedx+json`, the empty config (`application/vnd.oci.empty.v1+json`,
//! `{}`), the SBOM as its one layer and the image as its `subject`. It is written
//! through the core's manifest path ([`Registry::put_manifest`]'s), so the referrers
//! API, events, lifecycle policies and replication see it like any referrer, but no
//! scan is queued for it. The document is a pure function of the image (its
//! inventory, name, digest and push time), so a rescan that finds the same packages
//! produces the same manifest digest and pushes nothing; one that finds different
//! packages pushes the new SBOM and deletes the SBOMs berth made before for that
//! image (recognised by the [`SBOM_ANNOTATION`] annotation), never other referrers.

use std::collections::VecDeque;

use berth_oci::{media, Digest, Manifest, ManifestKind, Reference};
use berth_scan::sbom::ImageInfo;
use berth_scan::{scan_image, AdvisoryIndex, Inventory, Limits, ScanStatus};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::{ManifestRow, Registry, RegistryError, RepositoryRow};

type Result<T> = std::result::Result<T, RegistryError>;

/// The artifact and layer media type of a CycloneDX JSON SBOM.
pub const CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";
/// The annotation that marks an SBOM referrer as berth's own (value: [`SBOM_GENERATOR`]).
pub const SBOM_ANNOTATION: &str = "dev.berth.sbom.generator";
pub const SBOM_GENERATOR: &str = "berth-scan";
/// The repository resource tag that turns SBOM referrers on (`true`) or off
/// (`false`) for one repository, overriding `BERTH_SBOM_REFERRERS`.
pub const SBOM_REPO_TAG: &str = "berth:sbom-referrer";
/// The layer's file name (`oras pull` writes it under this name).
const SBOM_FILE: &str = "sbom.cdx.json";
const EMPTY_CONFIG: &[u8] = b"{}";

/// A document format `berth sbom` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    CycloneDx,
    Spdx,
}

/// What [`Registry::push_sbom_referrer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SbomPush {
    /// A new SBOM referrer was stored; `replaced` older berth SBOMs were deleted.
    Pushed { digest: String, replaced: usize },
    /// The same SBOM was already there.
    Unchanged { digest: String },
}

/// Whether scans of a repository push their SBOM: the repository's
/// [`SBOM_REPO_TAG`] resource tag when it has one (`true`/`false`, case-insensitive;
/// any other value is ignored), else the registry-wide setting.
pub fn sbom_referrers_enabled(repo_tags: &[(String, String)], registry_default: bool) -> bool {
    repo_tags
        .iter()
        .find(|(k, _)| k == SBOM_REPO_TAG)
        .and_then(|(_, v)| match v.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
        .unwrap_or(registry_default)
}

/// Whether a manifest is an SBOM referrer berth made (it is never scanned itself).
pub fn is_berth_sbom(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    v.get("artifactType").and_then(Value::as_str) == Some(CYCLONEDX_JSON)
        && v.get("subject").is_some()
        && v.pointer(&format!(
            "/annotations/{}",
            SBOM_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
            == Some(SBOM_GENERATOR)
}

/// The image as the SBOM names it; `created` is the image's push time, so the
/// document is reproducible.
fn image_info(repo: &RepositoryRow, row: &ManifestRow, tag: Option<String>) -> ImageInfo {
    ImageInfo {
        name: repo.name.clone(),
        tag,
        digest: row.digest.clone(),
        created: berth_iam::time::format_iso8601(row.pushed_at.div_euclid(1000)),
    }
}

/// The referrer manifest of an SBOM layer (`sbom` its bytes) for `subject`.
fn referrer_manifest(subject: &ManifestRow, sbom: &[u8], created: &str) -> Vec<u8> {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": CYCLONEDX_JSON,
        "config": {
            "mediaType": media::OCI_EMPTY,
            "digest": Digest::sha256_of(EMPTY_CONFIG).to_string(),
            "size": EMPTY_CONFIG.len(),
        },
        "layers": [{
            "mediaType": CYCLONEDX_JSON,
            "digest": Digest::sha256_of(sbom).to_string(),
            "size": sbom.len(),
            "annotations": { "org.opencontainers.image.title": SBOM_FILE },
        }],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.body.len(),
        },
        "annotations": {
            "org.opencontainers.image.created": created,
            SBOM_ANNOTATION: SBOM_GENERATOR,
        },
    });
    serde_json::to_vec(&manifest).unwrap_or_default()
}

impl Registry {
    /// Whether scans of `repo` push their SBOM as a referrer
    /// ([`sbom_referrers_enabled`]).
    pub async fn sbom_referrers_enabled(
        &self,
        repo: &RepositoryRow,
        registry_default: bool,
    ) -> Result<bool> {
        let tags = self.meta.repository_tags(repo.repo_id).await?;
        Ok(sbom_referrers_enabled(&tags, registry_default))
    }

    /// Stores `bytes` as a blob of `repo` unless it is already linked there.
    async fn put_small_blob(&self, repo: &RepositoryRow, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256_of(bytes);
        if self
            .meta
            .linked_blob_size(repo.repo_id, digest.as_str())
            .await?
            .is_some()
        {
            return Ok(digest);
        }
        let up = self.start_upload(repo).await?;
        let body = Bytes::copy_from_slice(bytes);
        let stream = futures_util::stream::iter([Ok::<Bytes, String>(body)]);
        if let Err(e) = self
            .append_upload(repo, &up.id, Some(0), Some(bytes.len() as u64), stream)
            .await
        {
            let _ = self.cancel_upload(repo, &up.id).await;
            return Err(e);
        }
        self.complete_upload(repo, &up.id, &digest).await?;
        Ok(digest)
    }

    /// Pushes the CycloneDX SBOM of `inv` as a referrer of the image `subject`
    /// (body decrypted), replacing berth's earlier SBOMs of it.
    pub async fn push_sbom_referrer(
        &self,
        repo: &RepositoryRow,
        subject: &ManifestRow,
        inv: &Inventory,
    ) -> Result<SbomPush> {
        let info = image_info(repo, subject, None);
        let doc = berth_scan::sbom::cyclonedx(inv, &info);
        let sbom = serde_json::to_vec(&doc).unwrap_or_default();
        let manifest = referrer_manifest(subject, &sbom, &info.created);
        let digest = Digest::sha256_of(&manifest);
        let existing = self.referrer_rows(repo, &subject.digest).await?;
        let ours: Vec<&ManifestRow> = existing.iter().filter(|r| is_berth_sbom(&r.body)).collect();
        if ours.iter().any(|r| r.digest == digest.as_str()) && ours.len() == 1 {
            return Ok(SbomPush::Unchanged {
                digest: digest.to_string(),
            });
        }
        self.put_small_blob(repo, EMPTY_CONFIG).await?;
        self.put_small_blob(repo, &sbom).await?;
        self.put_manifest_scanned(
            repo,
            &Reference::Digest(digest.clone()),
            Some(media::OCI_MANIFEST),
            Bytes::from(manifest),
            false,
        )
        .await?;
        let mut replaced = 0;
        for old in ours.iter().filter(|r| r.digest != digest.as_str()) {
            let d: Digest = old
                .digest
                .parse()
                .map_err(|_| RegistryError::DigestInvalid(old.digest.clone()))?;
            match self.delete_manifest(repo, &Reference::Digest(d)).await {
                Ok(_) | Err(RegistryError::ManifestUnknown) => replaced += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(SbomPush::Pushed {
            digest: digest.to_string(),
            replaced,
        })
    }

    /// Reads an image's package inventory from its layers (no advisories are
    /// matched). `Ok(Err(reason))` when the manifest is not a scannable image.
    pub async fn image_inventory(
        &self,
        repo: &RepositoryRow,
        row: &ManifestRow,
        limits: &Limits,
    ) -> Result<std::result::Result<Inventory, String>> {
        let m = match Manifest::parse(&row.body, Some(&row.media_type)) {
            Ok(m) => m,
            Err(e) => return Ok(Err(format!("the manifest cannot be read: {e}"))),
        };
        if m.kind == ManifestKind::Index {
            return Ok(Err(format!(
                "{} is an image index; ask for one of its {} platform images by digest",
                row.digest,
                m.manifests.len()
            )));
        }
        let config_type = m.config.as_ref().map(|c| c.media_type.as_str());
        if !matches!(
            config_type,
            Some(media::OCI_CONFIG) | Some(media::DOCKER_CONFIG)
        ) || m.artifact_type.is_some()
        {
            return Ok(Err(format!(
                "{} is not a container image (artifact type {})",
                row.digest,
                m.effective_artifact_type()
                    .or(config_type)
                    .unwrap_or("unknown")
            )));
        }
        let mut keyed = VecDeque::with_capacity(m.layers.len());
        for l in &m.layers {
            let blob = self.blob_ref(repo, l.digest.as_str()).await?;
            keyed.push_back((l.clone(), blob));
        }
        let layers = crate::scan::LazyLayers {
            handle: tokio::runtime::Handle::current(),
            blobs: self.blobs.clone(),
            layers: keyed,
        };
        let limits = limits.clone();
        let res =
            tokio::task::spawn_blocking(move || scan_image(layers, &AdvisoryIndex::new(), &limits))
                .await;
        Ok(match res {
            Err(e) => Err(format!("the scanner stopped unexpectedly: {e}")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(r)) if r.status == ScanStatus::UnsupportedImage => {
                Err("no operating system or package inventory was found in the image".to_string())
            }
            Ok(Ok(r)) => Ok(Inventory {
                os: r.os,
                packages: r.packages,
                warnings: Vec::new(),
            }),
        })
    }

    /// The SBOM of the image `reference` names in `repo`, read from its layers now:
    /// the same CycloneDX document the SBOM referrer carries when asked by digest
    /// (by tag, the tag is named in it too), or an SPDX 2.3 one.
    /// `Ok(Err(reason))` when the manifest is not a scannable image.
    pub async fn image_sbom(
        &self,
        repo: &RepositoryRow,
        reference: &Reference,
        format: SbomFormat,
        limits: &Limits,
    ) -> Result<std::result::Result<Value, String>> {
        let row = self.find_manifest(repo, reference).await?;
        let inv = match self.image_inventory(repo, &row, limits).await? {
            Ok(inv) => inv,
            Err(why) => return Ok(Err(why)),
        };
        let tag = match reference {
            Reference::Tag(t) => Some(t.to_string()),
            Reference::Digest(_) => None,
        };
        let info = image_info(repo, &row, tag);
        Ok(Ok(match format {
            SbomFormat::CycloneDx => berth_scan::sbom::cyclonedx(&inv, &info),
            SbomFormat::Spdx => berth_scan::sbom::spdx(&inv, &info),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_tag_overrides_the_registry_setting() {
        let t = |v: &str| vec![(SBOM_REPO_TAG.to_string(), v.to_string())];
        assert!(!sbom_referrers_enabled(&[], false));
        assert!(sbom_referrers_enabled(&[], true));
        assert!(sbom_referrers_enabled(&t("true"), false));
        assert!(sbom_referrers_enabled(&t("TRUE"), false));
        assert!(!sbom_referrers_enabled(&t("false"), true));
        assert!(sbom_referrers_enabled(&t("maybe"), true));
        assert!(!sbom_referrers_enabled(&t("maybe"), false));
        let other = vec![("team".to_string(), "true".to_string())];
        assert!(!sbom_referrers_enabled(&other, false));
    }

    #[test]
    fn referrer_manifests_are_recognised() {
        let subject = ManifestRow {
            digest: Digest::sha256_of(b"image").to_string(),
            media_type: media::OCI_MANIFEST.into(),
            artifact_type: None,
            subject: None,
            config_digest: None,
            image_size: 0,
            pushed_at: 0,
            last_pulled_at: None,
            body: b"image".to_vec(),
        };
        let body = referrer_manifest(&subject, b"{}", "1970-01-01T00:00:00Z");
        assert!(is_berth_sbom(&body));
        let m = Manifest::parse(&body, Some(media::OCI_MANIFEST)).unwrap();
        assert_eq!(m.effective_artifact_type(), Some(CYCLONEDX_JSON));
        assert_eq!(m.subject.unwrap().digest.as_str(), subject.digest);
        assert_eq!(m.layers.len(), 1);
        // Someone else's CycloneDX referrer is not ours to replace.
        let mut v: Value = serde_json::from_slice(&body).unwrap();
        v["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(SBOM_ANNOTATION);
        assert!(!is_berth_sbom(&serde_json::to_vec(&v).unwrap()));
        // Same inputs, same bytes: rescans do not pile up referrers.
        assert_eq!(
            body,
            referrer_manifest(&subject, b"{}", "1970-01-01T00:00:00Z")
        );
    }
}
