//! Layer walking: applies an image's layers in order to build the final view
//! of the few files the inventory reads, following the OCI image spec
//! (`opencontainers/image-spec`, layer.md: "Representing Changes",
//! "Whiteouts", "Opaque Whiteout") and its layer media types
//! (`application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]`,
//! `application/vnd.docker.image.rootfs.diff.tar.gzip`).
//!
//! Layers are untrusted. Nothing touches the real filesystem: paths are
//! normalised lexically (`..` cannot climb above `/`), symlinks are only
//! followed for lookups with a hop limit, and everything read is bounded by
//! [`Limits`]: total decompressed bytes (decompression bombs), bytes kept per
//! file and in total, entry count, path length. Exceeding any of them is a
//! [`ScanError`], never a panic or an unbounded allocation.
//!
//! Within one layer, whiteouts apply to the lower layers only (layer.md:
//! "Whiteout files MUST only apply to resources in lower/parent layers"), so
//! a layer's own entries are collected apart and merged after its whiteouts
//! have been applied to the layers below.

pub mod tar;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use crate::error::ScanError;
use crate::inventory::gobin::{self, GoBuildInfo};
use crate::inventory::java::{self, ArchiveLimits, JavaArchive};
use tar::{EntryData, EntryKind, TarError, TarReader};

/// Resource limits for one scan.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most layers accepted.
    pub max_layers: usize,
    /// Most decompressed bytes read across all layers.
    pub max_decompressed_bytes: u64,
    /// Largest single file whose contents are kept (package databases).
    pub max_file_bytes: u64,
    /// Most bytes of file contents kept in memory in total.
    pub max_retained_bytes: u64,
    /// Most tar entries across all layers.
    pub max_entries: u64,
    /// Longest path or symlink target accepted.
    pub max_path_bytes: usize,
    /// Most symlinks followed in one lookup.
    pub max_symlink_hops: usize,
    /// Bytes of a Go binary's build info kept.
    pub max_go_buildinfo_bytes: usize,
    /// Most packages inventoried (before de-duplication).
    pub max_packages: usize,
    /// Largest Java archive (JAR, WAR, EAR) read from a layer; it is held in
    /// memory while it is read. Larger ones are reported, not read.
    pub max_archive_bytes: u64,
    /// Deepest nesting of Java archives followed (a JAR in a WAR is 1).
    pub max_archive_depth: usize,
    /// Largest nested Java archive read.
    pub max_nested_archive_bytes: u64,
    /// Most bytes inflated while reading one Java archive and those nested
    /// in it.
    pub max_archive_inflated_bytes: u64,
    /// Most ZIP entries examined in one Java archive and those nested in it.
    pub max_archive_entries: u64,
}

impl Limits {
    /// The bounds for reading one Java archive.
    pub fn archive_limits(&self) -> ArchiveLimits {
        ArchiveLimits {
            max_depth: self.max_archive_depth,
            max_nested_bytes: self.max_nested_archive_bytes,
            max_inflated_bytes: self.max_archive_inflated_bytes,
            max_entries: self.max_archive_entries,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_layers: 256,
            max_decompressed_bytes: 8 << 30,
            max_file_bytes: 128 << 20,
            max_retained_bytes: 256 << 20,
            max_entries: 2_000_000,
            max_path_bytes: 4096,
            max_symlink_hops: 40,
            max_go_buildinfo_bytes: 1 << 20,
            max_packages: 500_000,
            max_archive_bytes: 512 << 20,
            max_archive_depth: 4,
            max_nested_archive_bytes: 128 << 20,
            max_archive_inflated_bytes: 1 << 30,
            max_archive_entries: 1_000_000,
        }
    }
}

/// One layer blob and its media type.
pub struct Layer<R> {
    /// Descriptor media type.
    pub media_type: String,
    /// The blob bytes as stored (compressed or not).
    pub blob: R,
}

impl<R> Layer<R> {
    /// A layer from its media type and blob reader.
    pub fn new(media_type: impl Into<String>, blob: R) -> Self {
        Layer {
            media_type: media_type.into(),
            blob,
        }
    }
}

/// Retained contents of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileData {
    /// The file's bytes (a package database or manifest).
    Content(Vec<u8>),
    /// The build info found in a Go binary.
    GoBinary(GoBuildInfo),
    /// The artifacts found in a Java archive.
    Java(JavaArchive),
}

impl FileData {
    fn retained_len(&self) -> u64 {
        match self {
            FileData::Content(c) => c.len() as u64,
            FileData::GoBinary(g) => (g.go_version.len() + g.modinfo.len()) as u64,
            FileData::Java(j) => j.retained_len(),
        }
    }
}

/// A node of the final view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A file whose contents the inventory needs.
    File(FileData),
    /// A symbolic link and its target as recorded.
    Symlink(String),
}

/// What the walker keeps of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interest {
    Skip,
    Content,
    GoCandidate,
    JavaArchive,
}

/// Whether the inventory reads `path` (normalised, no leading `/`).
fn classify(path: &str, mode: u32, size: u64) -> Interest {
    const EXACT: &[&str] = &[
        "etc/os-release",
        "usr/lib/os-release",
        "etc/alpine-release",
        "etc/debian_version",
        "etc/redhat-release",
        "etc/system-release",
        "var/lib/dpkg/status",
    ];
    let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
    let parent = dir.rsplit_once('/').map_or(dir, |(_, p)| p);
    let wanted = EXACT.contains(&path)
        || dir == "var/lib/dpkg/status.d"
        || path.ends_with("lib/apk/db/installed")
        || ((base == "rpmdb.sqlite" || base == "Packages") && parent == "rpm")
        || (base == "METADATA" && parent.ends_with(".dist-info"))
        || (base == "PKG-INFO" && parent.ends_with(".egg-info"))
        || (base.ends_with(".egg-info") && !base.starts_with('.'))
        || base == "package-lock.json"
        || base == ".package-lock.json"
        || base == "Cargo.lock"
        || (base == "package.json" && is_node_module_dir(dir))
        || (base.ends_with(".gemspec")
            && (parent == "specifications" || dir.ends_with("specifications/default")))
        || base == "Gemfile.lock"
        || base == "composer.lock"
        || (base == "installed.json" && parent == "composer")
        || (base.ends_with(".deps.json") && base.len() > ".deps.json".len());
    if wanted {
        Interest::Content
    } else if java::is_archive_name(base) {
        Interest::JavaArchive
    } else if mode & 0o111 != 0 && size >= 1024 {
        Interest::GoCandidate
    } else {
        Interest::Skip
    }
}

/// `…/node_modules/<name>` or `…/node_modules/@scope/<name>`.
fn is_node_module_dir(dir: &str) -> bool {
    let mut it = dir.rsplit('/');
    let (Some(name), Some(up)) = (it.next(), it.next()) else {
        return false;
    };
    if name.is_empty() || name.starts_with('.') {
        return false;
    }
    if up == "node_modules" {
        return true;
    }
    up.starts_with('@') && it.next() == Some("node_modules")
}

/// Lexically normalises a tar path: drops `.`, empty components and leading
/// `/`, resolves `..` without climbing above the root.
pub fn normalize_path(raw: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// The final view of the files the inventory needs.
#[derive(Debug, Default)]
pub struct ImageFs {
    nodes: BTreeMap<String, Node>,
}

fn remove_subtree(map: &mut BTreeMap<String, Node>, dir: &str) {
    if dir.is_empty() {
        map.clear();
        return;
    }
    let lo = format!("{dir}/");
    let hi = format!("{dir}0"); // '0' is the byte after '/'
    let keys: Vec<String> = map.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in keys {
        map.remove(&k);
    }
}

/// Budget shared by the decompressing readers of all layers.
struct Meter<'a, R> {
    inner: R,
    used: &'a Cell<u64>,
    limit: u64,
    tripped: &'a Cell<bool>,
}

impl<R: Read> Read for Meter<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let used = self.used.get().saturating_add(n as u64);
        self.used.set(used);
        if used > self.limit {
            self.tripped.set(true);
            return Err(io::Error::other("decompressed size limit exceeded"));
        }
        Ok(n)
    }
}

/// Zstandard decoder over all frames of a stream (skippable frames skipped).
struct ZstdFrames<R> {
    src: BufReader<R>,
    dec: FrameDecoder,
    active: bool,
}

impl<R: Read> ZstdFrames<R> {
    fn new(src: R) -> Self {
        ZstdFrames {
            src: BufReader::with_capacity(64 << 10, src),
            dec: FrameDecoder::new(),
            active: false,
        }
    }
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.active {
                while self.dec.can_collect() < buf.len() && !self.dec.is_finished() {
                    let need = buf.len() - self.dec.can_collect();
                    self.dec
                        .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBytes(need))
                        .map_err(io::Error::other)?;
                }
                let n = self.dec.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if self.dec.is_finished() && self.dec.can_collect() == 0 {
                    self.active = false;
                }
                continue;
            }
            if self.src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.dec.reset(&mut self.src) {
                Ok(()) => self.active = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(
                        &mut (&mut self.src).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                    if skipped < u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "truncated zstd skippable frame",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
}

enum Compression {
    None,
    Gzip,
    Zstd,
}

fn is_layer_media_type(mt: &str) -> bool {
    let mt = mt.trim();
    mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
        || mt == "application/x-tar"
        || mt == "application/tar"
}

fn read_magic<R: Read>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(4);
    let mut buf = [0u8; 4];
    while head.len() < 4 {
        match r.read(&mut buf[..4 - head.len()]) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(head)
}

impl ImageFs {
    /// Applies `layers` (base first) and keeps what the inventory needs.
    pub fn from_layers<R, I>(layers: I, limits: &Limits) -> Result<ImageFs, ScanError>
    where
        R: Read,
        I: IntoIterator<Item = Layer<R>>,
    {
        let mut fs = ImageFs::default();
        let used = Cell::new(0u64);
        let tripped = Cell::new(false);
        let mut walker = Walker {
            limits,
            entries: 0,
            retained: 0,
        };
        for (i, layer) in layers.into_iter().enumerate() {
            if i >= limits.max_layers {
                return Err(ScanError::TooManyLayers {
                    count: i + 1,
                    limit: limits.max_layers,
                });
            }
            if !is_layer_media_type(&layer.media_type) {
                return Err(ScanError::UnsupportedMediaType {
                    layer: i,
                    media_type: layer.media_type,
                });
            }
            let mut blob = layer.blob;
            let read_err = |e: io::Error| ScanError::LayerRead {
                layer: i,
                reason: e.to_string(),
            };
            let head = read_magic(&mut blob).map_err(read_err)?;
            // Trust the bytes over the media type: registries see docker
            // "tar.gzip" layers that are plain tar and vice versa.
            let compression = match head.as_slice() {
                [0x1f, 0x8b, ..] => Compression::Gzip,
                [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
                _ => Compression::None,
            };
            let raw = io::Cursor::new(head).chain(blob);
            let decoded: Box<dyn Read + '_> = match compression {
                Compression::None => Box::new(raw),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                    BufReader::with_capacity(64 << 10, raw),
                )),
                Compression::Zstd => Box::new(ZstdFrames::new(raw)),
            };
            let metered = Meter {
                inner: decoded,
                used: &used,
                limit: limits.max_decompressed_bytes,
                tripped: &tripped,
            };
            let mut tar = TarReader::new(BufReader::with_capacity(128 << 10, metered));
            let result = walker.apply(&mut fs.nodes, &mut tar, i);
            if tripped.get() {
                return Err(ScanError::DecompressedTooLarge {
                    layer: i,
                    limit: limits.max_decompressed_bytes,
                });
            }
            result?;
        }
        Ok(fs)
    }

    /// Builds a view directly from nodes (for tests and callers that have an
    /// unpacked tree).
    pub fn from_nodes(nodes: impl IntoIterator<Item = (String, Node)>) -> ImageFs {
        ImageFs {
            nodes: nodes
                .into_iter()
                .map(|(k, v)| (normalize_path(&k), v))
                .collect(),
        }
    }

    /// Every retained file, by normalised path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &FileData)> {
        self.nodes.iter().filter_map(|(k, v)| match v {
            Node::File(d) => Some((k.as_str(), d)),
            _ => None,
        })
    }

    /// Number of nodes kept.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Looks `path` up, following symlinks (at most `max_hops`) the way the
    /// kernel would inside a chroot: absolute targets restart at the image
    /// root and `..` never climbs above it.
    pub fn lookup(&self, path: &str, max_hops: usize) -> Result<Option<&Node>, ScanError> {
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0usize;
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(comp);
            let key = cur.join("/");
            match self.nodes.get(&key) {
                Some(Node::Symlink(target)) => {
                    hops += 1;
                    if hops > max_hops {
                        return Err(ScanError::SymlinkLoop {
                            path: normalize_path(path),
                        });
                    }
                    cur.pop();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    pending.extend(target.split('/').rev().map(str::to_string));
                }
                Some(Node::File(_)) if !pending.iter().all(|c| c.is_empty() || c == ".") => {
                    return Ok(None);
                }
                _ => {}
            }
        }
        Ok(self.nodes.get(&cur.join("/")))
    }

    /// The retained contents at `path` after following symlinks.
    pub fn read(&self, path: &str, max_hops: usize) -> Result<Option<&[u8]>, ScanError> {
        Ok(match self.lookup(path, max_hops)? {
            Some(Node::File(FileData::Content(c))) => Some(c.as_slice()),
            _ => None,
        })
    }
}

struct Walker<'l> {
    limits: &'l Limits,
    entries: u64,
    retained: u64,
}

impl Walker<'_> {
    fn tar_err(layer: usize, e: TarError) -> ScanError {
        match e {
            TarError::Io(e) => ScanError::LayerRead {
                layer,
                reason: e.to_string(),
            },
            TarError::Malformed(reason) => ScanError::MalformedTar { layer, reason },
        }
    }

    fn retain(&mut self, layer: usize, n: u64) -> Result<(), ScanError> {
        self.retained = self.retained.saturating_add(n);
        if self.retained > self.limits.max_retained_bytes {
            return Err(ScanError::RetainedTooLarge {
                layer,
                limit: self.limits.max_retained_bytes,
            });
        }
        Ok(())
    }

    fn apply<R: Read>(
        &mut self,
        lower: &mut BTreeMap<String, Node>,
        tar: &mut TarReader<R>,
        layer: usize,
    ) -> Result<(), ScanError> {
        let limits = self.limits;
        let mut upper: BTreeMap<String, Node> = BTreeMap::new();
        let mut whiteouts: Vec<String> = Vec::new();
        let mut opaque: Vec<String> = Vec::new();
        while let Some(entry) = tar.next_entry().map_err(|e| Self::tar_err(layer, e))? {
            self.entries += 1;
            if self.entries > limits.max_entries {
                return Err(ScanError::TooManyEntries {
                    layer,
                    limit: limits.max_entries,
                });
            }
            if entry.path.len() > limits.max_path_bytes || entry.link.len() > limits.max_path_bytes
            {
                return Err(ScanError::MalformedTar {
                    layer,
                    reason: format!("path longer than {} bytes", limits.max_path_bytes),
                });
            }
            let path = normalize_path(&String::from_utf8_lossy(&entry.path));
            if path.is_empty() {
                continue; // the root itself
            }
            let (dir, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            if let Some(hidden) = base.strip_prefix(".wh.") {
                if hidden == ".wh..opq" {
                    opaque.push(dir.to_string());
                } else if !hidden.is_empty() && hidden != "." && hidden != ".." {
                    whiteouts.push(if dir.is_empty() {
                        hidden.to_string()
                    } else {
                        format!("{dir}/{hidden}")
                    });
                }
                continue;
            }
            // Whatever this entry is, it replaces a non-directory below it,
            // and a non-directory also replaces a directory tree below it.
            // Directories are not kept (paths imply them), so only the
            // non-directory nodes below need removing.
            let is_dir = entry.kind == EntryKind::Dir;
            lower.remove(&path);
            if !is_dir {
                remove_subtree(lower, &path);
                remove_subtree(&mut upper, &path);
            }
            let node = match entry.kind {
                EntryKind::Dir => None,
                EntryKind::Symlink => {
                    // Symlinks are kept for lookups; their bytes count
                    // against the retention limit like file contents.
                    self.retain(layer, (path.len() + entry.link.len()) as u64)?;
                    Some(Node::Symlink(
                        String::from_utf8_lossy(&entry.link).into_owned(),
                    ))
                }
                EntryKind::HardLink => {
                    let target = normalize_path(&String::from_utf8_lossy(&entry.link));
                    match upper.get(&target).or_else(|| lower.get(&target)) {
                        Some(Node::File(d)) => {
                            let d = d.clone();
                            self.retain(layer, d.retained_len())?;
                            Some(Node::File(d))
                        }
                        _ => None,
                    }
                }
                EntryKind::File => match classify(&path, entry.mode, entry.size) {
                    Interest::Skip => None,
                    Interest::Content => {
                        if entry.size > limits.max_file_bytes {
                            return Err(ScanError::FileTooLarge {
                                layer,
                                path,
                                size: entry.size,
                                limit: limits.max_file_bytes,
                            });
                        }
                        let cap = usize::try_from(entry.size.min(1 << 20)).unwrap_or(1 << 20);
                        let mut buf = Vec::with_capacity(cap);
                        EntryData(tar)
                            .read_to_end(&mut buf)
                            .map_err(|e| Self::tar_err(layer, TarError::Io(e)))?;
                        // Python metadata is only read up to its header
                        // block; the long description after it can be large.
                        if path.ends_with("/METADATA")
                            || path.ends_with("PKG-INFO")
                            || path.ends_with(".egg-info")
                        {
                            if let Some(i) = memchr::memmem::find(&buf, b"\n\n") {
                                buf.truncate(i + 1);
                                buf.shrink_to_fit();
                            }
                        }
                        self.retain(layer, buf.len() as u64)?;
                        Some(Node::File(FileData::Content(buf)))
                    }
                    Interest::JavaArchive => {
                        let base = path.rsplit('/').next().unwrap_or(&path);
                        let archive = if entry.size > limits.max_archive_bytes {
                            JavaArchive {
                                packages: Vec::new(),
                                warnings: vec![format!(
                                    "archive of {} bytes exceeds the {}-byte limit, not read",
                                    entry.size, limits.max_archive_bytes
                                )],
                            }
                        } else {
                            // The header's size is a claim: grow past 64 MiB
                            // only as bytes actually arrive.
                            let cap = usize::try_from(entry.size.min(64 << 20)).unwrap_or(0);
                            let mut buf = Vec::with_capacity(cap);
                            EntryData(tar)
                                .read_to_end(&mut buf)
                                .map_err(|e| Self::tar_err(layer, TarError::Io(e)))?;
                            java::scan_archive(&buf, base, &limits.archive_limits())
                        };
                        let d = FileData::Java(archive);
                        self.retain(layer, d.retained_len())?;
                        Some(Node::File(d))
                    }
                    Interest::GoCandidate => {
                        let found =
                            gobin::scan_binary(&mut EntryData(tar), limits.max_go_buildinfo_bytes)
                                .map_err(|e| Self::tar_err(layer, TarError::Io(e)))?;
                        match found {
                            Some(info) => {
                                let d = FileData::GoBinary(info);
                                self.retain(layer, d.retained_len())?;
                                Some(Node::File(d))
                            }
                            None => None,
                        }
                    }
                },
                EntryKind::Other => None,
            };
            match node {
                Some(n) => {
                    upper.insert(path, n);
                }
                None => {
                    upper.remove(&path);
                }
            }
        }
        for w in &whiteouts {
            lower.remove(w);
            remove_subtree(lower, w);
        }
        for d in &opaque {
            remove_subtree(lower, d);
        }
        lower.extend(upper);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
