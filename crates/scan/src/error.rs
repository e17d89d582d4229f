//! Errors of a scan. Every rejection of hostile or broken image content is
//! one of these, with a reason the server reports as scan status `FAILED`.

use thiserror::Error;

/// Why an image could not be scanned.
#[derive(Debug, Error)]
pub enum ScanError {
    /// More layers than the limit.
    #[error("image has {count} layers, more than the limit of {limit}")]
    TooManyLayers {
        /// Layers given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A layer blob is not a (possibly compressed) tar.
    #[error("layer {layer}: unsupported layer media type {media_type:?}")]
    UnsupportedMediaType {
        /// Layer index, 0 = base.
        layer: usize,
        /// The media type given.
        media_type: String,
    },
    /// The image decompresses to more bytes than allowed (decompression bomb).
    #[error("layer {layer}: image decompresses to more than {limit} bytes")]
    DecompressedTooLarge {
        /// Layer index.
        layer: usize,
        /// The limit on decompressed bytes across all layers.
        limit: u64,
    },
    /// A file the scanner must read is larger than allowed.
    #[error("layer {layer}: {path}: {size} bytes exceeds the per-file limit of {limit} bytes")]
    FileTooLarge {
        /// Layer index.
        layer: usize,
        /// Path in the image.
        path: String,
        /// Size declared by the tar header.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Package metadata kept in memory exceeds the limit.
    #[error("layer {layer}: retained package metadata exceeds {limit} bytes")]
    RetainedTooLarge {
        /// Layer index.
        layer: usize,
        /// The limit.
        limit: u64,
    },
    /// Too many tar entries.
    #[error("layer {layer}: more than {limit} tar entries in the image")]
    TooManyEntries {
        /// Layer index.
        layer: usize,
        /// The limit.
        limit: u64,
    },
    /// The tar stream is malformed or truncated.
    #[error("layer {layer}: malformed tar: {reason}")]
    MalformedTar {
        /// Layer index.
        layer: usize,
        /// What is wrong.
        reason: String,
    },
    /// Reading or decompressing the layer failed.
    #[error("layer {layer}: cannot read layer: {reason}")]
    LayerRead {
        /// Layer index.
        layer: usize,
        /// The decoder's or reader's error.
        reason: String,
    },
    /// The image lists more packages than the limit.
    #[error("more than {limit} packages in the image")]
    TooManyPackages {
        /// The limit.
        limit: usize,
    },
    /// Symlink resolution did not terminate within the hop limit.
    #[error("too many levels of symbolic links resolving /{path}")]
    SymlinkLoop {
        /// The path looked up.
        path: String,
    },
    /// A package database is malformed.
    #[error("/{path}: malformed {what}: {reason}")]
    MalformedDatabase {
        /// Path of the database in the image.
        path: String,
        /// Which kind of database.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}
