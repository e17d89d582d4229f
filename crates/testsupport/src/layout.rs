//! Deterministic OCI content for tests (OCI Image Spec v1.1: `image-layout.md`,
//! `manifest.md`, `image-index.md`, `descriptor.md`): gzip tar layers with real
//! files, image configs, manifests, a multi-architecture index, an artifact manifest
//! with a `subject`, and a Docker schema 2 variant. The same inputs give the same
//! bytes, so digests are stable across runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::http::{Http, Response};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The artifact type of [`Layout::artifact`].
pub const SBOM_ARTIFACT_TYPE: &str = "application/vnd.example.sbom.v1+json";

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
    )
}

/// An incremental sha256, for content streamed without being held in memory.
pub struct Sha256(ring::digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Sha256(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Sha256 {
    pub fn update(&mut self, b: &[u8]) {
        self.0.update(b);
    }

    /// `sha256:<hex>`.
    pub fn digest(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finish()))
    }
}

/// Deterministic incompressible bytes (xorshift64*), so layers have real size.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Content with its media type and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    pub fn json(media_type: &str, v: &Value) -> Blob {
        Blob::new(media_type, serde_json::to_vec(v).expect("json"))
    }

    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The OCI descriptor of this blob.
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len() })
    }
}

/// A manifest and the blobs it references.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

impl Image {
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// Config then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }

    /// Pushes blobs (monolithic `POST ?digest=`) then the manifest by `reference`
    /// with hand-written HTTP; asserts 201s and returns the manifest PUT response.
    #[track_caller]
    pub fn push(&self, http: &Http, repo: &str, reference: &str) -> Response {
        for b in self.blobs() {
            push_blob(http, repo, b);
        }
        put_manifest(http, repo, reference, &self.manifest)
    }
}

/// `POST /v2/<repo>/blobs/uploads/?digest=` with the whole blob; asserts 201.
#[track_caller]
pub fn push_blob(http: &Http, repo: &str, b: &Blob) -> Response {
    let r = http.send(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={}", b.digest),
        &[("Content-Type", "application/octet-stream")],
        b.bytes.clone(),
    );
    r.expect_status(201);
    r
}

/// `PUT /v2/<repo>/manifests/<reference>`; asserts 201.
#[track_caller]
pub fn put_manifest(http: &Http, repo: &str, reference: &str, m: &Blob) -> Response {
    let r = http.send(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", m.media_type.as_str())],
        m.bytes.clone(),
    );
    r.expect_status(201);
    r
}

/// A gzip-compressed tar of `files` (path, mode, contents) with fixed metadata, and
/// its uncompressed digest (the config's `diff_id`).
pub fn tar_gz_layer(media_type: &str, files: &[(&str, u32, Vec<u8>)]) -> (Blob, String) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = Vec::new();
    for (path, mode, data) in files {
        // Parent directories first, like a real rootfs.
        let mut acc = String::new();
        for part in path.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            acc.push_str(part);
            acc.push('/');
            if !dirs.contains(&acc) {
                dirs.push(acc.clone());
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_mtime(1_700_000_000);
                h.set_uid(0);
                h.set_gid(0);
                h.set_size(0);
                tar.append_data(&mut h, &acc, std::io::empty())
                    .expect("tar dir");
            }
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(*mode);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, data.as_slice())
            .expect("tar file");
    }
    let raw = tar.into_inner().expect("tar finish");
    let diff_id = sha256_digest(&raw);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).expect("gzip");
    (Blob::new(media_type, gz.finish().expect("gzip")), diff_id)
}

/// Builds an image manifest from layers (`(blob, diff_id)`), for `arch`.
pub fn image(layers: Vec<(Blob, String)>, arch: &str, docker: bool) -> Image {
    let (manifest_type, config_type) = if docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG)
    } else {
        (OCI_MANIFEST, OCI_CONFIG)
    };
    let diff_ids: Vec<&String> = layers.iter().map(|(_, d)| d).collect();
    let config = Blob::json(
        config_type,
        &json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": { "Cmd": ["/bin/hello"], "Env": ["PATH=/bin"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": layers.iter().map(|_| json!({"created": "2024-01-01T00:00:00Z", "created_by": "berth-testsupport"})).collect::<Vec<_>>(),
        }),
    );
    let layers: Vec<Blob> = layers.into_iter().map(|(b, _)| b).collect();
    let manifest = Blob::json(
        manifest_type,
        &json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        }),
    );
    Image {
        manifest,
        config,
        layers,
    }
}

fn base_files() -> Vec<(&'static str, u32, Vec<u8>)> {
    vec![
        (
            "etc/os-release",
            0o644,
            b"NAME=berth-test\nID=berth\nVERSION_ID=1\n".to_vec(),
        ),
        (
            "bin/hello",
            0o755,
            b"#!/bin/sh\necho hello from berth\n".to_vec(),
        ),
        ("usr/share/data.bin", 0o644, pseudo_random(1, 300 * 1024)),
    ]
}

fn arch_files(arch: &str, seed: u64) -> Vec<(&'static str, u32, Vec<u8>)> {
    vec![
        ("etc/arch", 0o644, format!("{arch}\n").into_bytes()),
        ("opt/app/blob.bin", 0o644, pseudo_random(seed, 200 * 1024)),
    ]
}

/// The standard test content, written as an OCI image layout.
pub struct Layout {
    pub dir: PathBuf,
    /// Tag `single`: a linux/amd64 OCI image with three gzip layers.
    pub image: Image,
    /// Tag `multi`: an OCI index of [`Layout::index_images`] (amd64, arm64), which
    /// share their first layer.
    pub index: Blob,
    pub index_images: Vec<Image>,
    /// Tag `artifact`: an artifact manifest (`artifactType` [`SBOM_ARTIFACT_TYPE`],
    /// empty config) whose `subject` is [`Layout::image`].
    pub artifact: Image,
    /// Not tagged in `index.json` (its blobs are in the layout): the Docker schema 2
    /// form of a one-layer image, for hand-written pushes.
    pub docker: Image,
}

impl Layout {
    /// Builds the content and writes it under `dir` (created).
    pub fn build(dir: &Path) -> Layout {
        let base = tar_gz_layer(OCI_LAYER_GZIP, &base_files());
        let image = image(
            vec![
                base.clone(),
                tar_gz_layer(OCI_LAYER_GZIP, &arch_files("amd64", 2)),
                tar_gz_layer(
                    OCI_LAYER_GZIP,
                    &[(
                        "var/lib/app/state.txt",
                        0o600,
                        b"single-image state\n".to_vec(),
                    )],
                ),
            ],
            "amd64",
            false,
        );
        let amd64 = self::image(
            vec![
                base.clone(),
                tar_gz_layer(OCI_LAYER_GZIP, &arch_files("amd64", 3)),
            ],
            "amd64",
            false,
        );
        let arm64 = self::image(
            vec![base, tar_gz_layer(OCI_LAYER_GZIP, &arch_files("arm64", 4))],
            "arm64",
            false,
        );
        let index = Blob::json(
            OCI_INDEX,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    with_platform(&amd64.manifest, "amd64", None),
                    with_platform(&arm64.manifest, "arm64", Some("v8")),
                ],
            }),
        );
        let artifact = artifact(
            SBOM_ARTIFACT_TYPE,
            b"{\"sbom\":\"berth test\"}\n".to_vec(),
            &image.manifest,
        );
        let docker = self::image(
            vec![tar_gz_layer(
                DOCKER_LAYER_GZIP,
                &[("etc/docker-variant", 0o644, b"schema2\n".to_vec())],
            )],
            "amd64",
            true,
        );
        let layout = Layout {
            dir: dir.to_path_buf(),
            image,
            index,
            index_images: vec![amd64, arm64],
            artifact,
            docker,
        };
        layout.write();
        layout
    }

    /// Every blob of the layout (manifests included), deduplicated.
    pub fn all_blobs(&self) -> Vec<&Blob> {
        let mut v: Vec<&Blob> = Vec::new();
        for img in std::iter::once(&self.image)
            .chain(self.index_images.iter())
            .chain([&self.artifact, &self.docker])
        {
            v.push(&img.manifest);
            v.extend(img.blobs());
        }
        v.push(&self.index);
        let mut seen = std::collections::HashSet::new();
        v.retain(|b| seen.insert(b.digest.clone()));
        v
    }

    fn write(&self) {
        let blobs = self.dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).expect("layout dir");
        for b in self.all_blobs() {
            let hex = b.digest.strip_prefix("sha256:").unwrap();
            std::fs::write(blobs.join(hex), &b.bytes).expect("write blob");
        }
        std::fs::write(
            self.dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("oci-layout");
        let tagged = |b: &Blob, tag: &str| {
            let mut d = b.descriptor();
            d["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
            d
        };
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                tagged(&self.image.manifest, "single"),
                tagged(&self.index, "multi"),
                tagged(&self.artifact.manifest, "artifact"),
            ],
        });
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec_pretty(&index).unwrap(),
        )
        .expect("index.json");
    }

    /// `oci:<dir>:<tag>`, a skopeo source or destination.
    pub fn oci_ref(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }
}

fn with_platform(m: &Blob, arch: &str, variant: Option<&str>) -> Value {
    let mut d = m.descriptor();
    d["platform"] = json!({ "architecture": arch, "os": "linux" });
    if let Some(v) = variant {
        d["platform"]["variant"] = json!(v);
    }
    d
}

/// An artifact manifest (Image Spec v1.1 "Guidelines for Artifact Usage"):
/// `artifactType`, the empty config, one layer of `payload`, and `subject`.
pub fn artifact(artifact_type: &str, payload: Vec<u8>, subject: &Blob) -> Image {
    let config = Blob::new(OCI_EMPTY, b"{}".to_vec());
    let layer = Blob::new("application/json", payload);
    let manifest = Blob::json(
        OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
            "subject": subject.descriptor(),
            "annotations": { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
        }),
    );
    Image {
        manifest,
        config,
        layers: vec![layer],
    }
}

/// Reads an OCI layout's `index.json` and returns the manifest digest tagged `tag`.
pub fn layout_tag_digest(dir: &Path, tag: &str) -> Option<String> {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).ok()?).ok()?;
    index["manifests"].as_array()?.iter().find_map(|d| {
        let name = d["annotations"]["org.opencontainers.image.ref.name"].as_str();
        (name == Some(tag) || index["manifests"].as_array().map(Vec::len) == Some(1))
            .then(|| d["digest"].as_str().map(str::to_string))
            .flatten()
    })
}

/// Reads a blob from an OCI layout.
pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').expect("digest");
    let p = dir.join("blobs").join(alg).join(hex);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}
