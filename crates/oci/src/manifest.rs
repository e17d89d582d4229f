//! Manifest parsing and validation (OCI Image Spec `manifest.md`, `image-index.md`,
//! `descriptor.md`; Docker Image Manifest V2 Schema 2 and manifest list).
//!
//! The registry stores manifests byte-exact; this module only extracts what the
//! registry must check (referenced blobs and child manifests, the subject) and what it
//! reports (media type, artifact type, sizes).

use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::media;

/// ECR and the distribution spec cap manifests at 4 MiB.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest invalid: {0}")]
    Invalid(String),
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("manifest exceeds the 4 MiB limit")]
    TooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq, Copy)]
pub enum ManifestKind {
    Image,
    Index,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The effective media type: the `mediaType` field, else the Content-Type.
    pub media_type: String,
    pub kind: ManifestKind,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    /// The explicit `artifactType` field.
    pub artifact_type: Option<String>,
    pub annotations: Option<Map<String, Value>>,
}

impl Manifest {
    /// Parses and validates `bytes`, sent with `content_type` (if any).
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| ManifestError::Invalid("manifest must be a JSON object".into()))?;

        let field_mt = match obj.get("mediaType") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(invalid("mediaType must be a string")),
        };
        let header_mt = content_type
            .map(media::essence)
            .filter(|s| !s.is_empty() && *s != "application/json" && *s != "text/plain");
        let schema = obj.get("schemaVersion").and_then(Value::as_u64);
        if schema == Some(1)
            || matches!(
                field_mt.or(header_mt),
                Some(media::DOCKER_SCHEMA1) | Some(media::DOCKER_SCHEMA1_SIGNED)
            )
        {
            return Err(ManifestError::UnsupportedMediaType(
                media::DOCKER_SCHEMA1.to_string(),
            ));
        }
        if schema != Some(2) {
            return Err(invalid("schemaVersion must be 2"));
        }
        let media_type = match (field_mt, header_mt) {
            (Some(f), Some(h)) if f != h => {
                return Err(invalid(&format!(
                    "mediaType {f:?} does not match Content-Type {h:?}"
                )))
            }
            (Some(f), _) => f.to_string(),
            (None, Some(h)) => h.to_string(),
            // No declared type: infer as the image spec allows for OCI documents.
            (None, None) => {
                if obj.contains_key("manifests") {
                    media::OCI_INDEX.to_string()
                } else {
                    media::OCI_MANIFEST.to_string()
                }
            }
        };
        if !media::is_manifest_type(&media_type) {
            return Err(ManifestError::UnsupportedMediaType(media_type));
        }
        let kind = if media::is_index(&media_type) {
            ManifestKind::Index
        } else {
            ManifestKind::Image
        };

        let artifact_type = match obj.get("artifactType") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if valid_media_type(s) => Some(s.clone()),
            Some(_) => return Err(invalid("artifactType must be a media type string")),
        };
        let subject = match obj.get("subject") {
            None | Some(Value::Null) => None,
            Some(v) => Some(descriptor(v, "subject")?),
        };
        let annotations = annotations(obj.get("annotations"), "annotations")?;

        let mut m = Manifest {
            media_type,
            kind,
            config: None,
            layers: Vec::new(),
            manifests: Vec::new(),
            subject,
            artifact_type,
            annotations,
        };
        match kind {
            ManifestKind::Image => {
                let config = obj
                    .get("config")
                    .ok_or_else(|| invalid("image manifest requires config"))?;
                m.config = Some(descriptor(config, "config")?);
                let layers = obj
                    .get("layers")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid("image manifest requires a layers array"))?;
                if m.media_type == media::DOCKER_MANIFEST && layers.is_empty() {
                    return Err(invalid("docker manifest requires at least one layer"));
                }
                m.layers = layers
                    .iter()
                    .map(|l| descriptor(l, "layers"))
                    .collect::<Result<_, _>>()?;
                if obj.contains_key("manifests") {
                    return Err(invalid("image manifest must not contain manifests"));
                }
            }
            ManifestKind::Index => {
                let list = obj
                    .get("manifests")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid("index requires a manifests array"))?;
                m.manifests = list
                    .iter()
                    .map(|d| descriptor(d, "manifests"))
                    .collect::<Result<_, _>>()?;
            }
        }
        Ok(m)
    }

    /// Blobs this manifest requires in the repository (config and distributable layers).
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(
            self.layers
                .iter()
                .filter(|l| !media::is_non_distributable(&l.media_type)),
        )
    }

    /// The artifact type reported by the referrers API: `artifactType`, else the
    /// config media type of an image manifest.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.as_str()))
    }

    /// Sum of layer sizes, as ECR reports `imageSizeInBytes` for an image.
    pub fn layers_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

fn invalid(msg: &str) -> ManifestError {
    ManifestError::Invalid(msg.to_string())
}

/// RFC 6838 media type shape: `type/subtype` with restricted name characters.
fn valid_media_type(s: &str) -> bool {
    let Some((t, st)) = s.split_once('/') else {
        return false;
    };
    let name = |x: &str| {
        !x.is_empty()
            && x.len() <= 127
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    name(t) && name(st)
}

fn annotations(v: Option<&Value>, what: &str) -> Result<Option<Map<String, Value>>, ManifestError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            if m.values().all(Value::is_string) {
                Ok(Some(m.clone()))
            } else {
                Err(invalid(&format!("{what} values must be strings")))
            }
        }
        Some(_) => Err(invalid(&format!("{what} must be an object"))),
    }
}

fn descriptor(v: &Value, what: &str) -> Result<Descriptor, ManifestError> {
    let o = v
        .as_object()
        .ok_or_else(|| invalid(&format!("{what}: descriptor must be an object")))?;
    let media_type = o
        .get("mediaType")
        .and_then(Value::as_str)
        .filter(|s| valid_media_type(s))
        .ok_or_else(|| invalid(&format!("{what}: descriptor requires a valid mediaType")))?
        .to_string();
    let digest = o
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{what}: descriptor requires a digest")))
        .and_then(|d| {
            Digest::parse(d).map_err(|e| invalid(&format!("{what}: descriptor digest: {e}")))
        })?;
    let size = o
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid(&format!("{what}: descriptor requires a non-negative size")))?;
    let artifact_type = o
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Descriptor {
        media_type,
        digest,
        size,
        artifact_type,
        annotations: annotations(o.get("annotations"), "descriptor annotations")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &[u8]) -> String {
        Digest::sha256_of(b).to_string()
    }

    #[test]
    fn image_manifest() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":10}},
            {{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"{}","size":5}}]}}"#,
            media::OCI_MANIFEST,
            media::OCI_CONFIG,
            d(b"c"),
            d(b"l"),
            d(b"f")
        );
        let m = Manifest::parse(body.as_bytes(), Some(media::OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.required_blobs().count(), 2);
        assert_eq!(m.layers_size(), 15);
        assert_eq!(m.effective_artifact_type(), Some(media::OCI_CONFIG));
        // Content-Type disagreeing with mediaType is refused.
        assert!(Manifest::parse(body.as_bytes(), Some(media::OCI_INDEX)).is_err());
    }

    #[test]
    fn index_and_artifact() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":7,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media::OCI_INDEX,
            media::OCI_MANIFEST,
            d(b"m")
        );
        let m = Manifest::parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests.len(), 1);

        let art = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/vnd.example.sbom","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{}","size":9}}}}"#,
            media::OCI_MANIFEST,
            media::OCI_EMPTY,
            d(b"{}"),
            media::OCI_MANIFEST,
            d(b"s")
        );
        let m = Manifest::parse(art.as_bytes(), Some(media::OCI_MANIFEST)).unwrap();
        assert_eq!(
            m.effective_artifact_type(),
            Some("application/vnd.example.sbom")
        );
        assert!(m.subject.is_some());
    }

    #[test]
    fn rejects_bad_documents() {
        for bad in [
            "not json",
            "[]",
            r#"{"schemaVersion":1}"#,
            r#"{"schemaVersion":2,"mediaType":"application/x-foo"}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a/b","digest":"sha256:00","size":1},"layers":[]}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a/b","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":-1},"layers":[]}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
        ] {
            assert!(Manifest::parse(bad.as_bytes(), None).is_err(), "{bad}");
        }
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert_eq!(Manifest::parse(&big, None), Err(ManifestError::TooLarge));
    }
}
