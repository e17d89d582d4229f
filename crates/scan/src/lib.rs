//! berth-scan: the vulnerability scanner's room.
//!
//! What it is for: turning an image's layer blobs into a package inventory
//! (OS packages from dpkg/apk/rpm databases; Python, npm, Cargo, Go, Java,
//! Ruby, PHP and .NET packages), matching that inventory against OSV
//! advisories with each ecosystem's real version order, producing
//! ECR-shaped findings, and describing it as CycloneDX or SPDX SBOMs
//! ([`sbom`]). `docs/scanning.md` has the overview.
//!
//! What it may not touch: the registry's stores, the network, the database
//! or the real filesystem of the host (except [`AdvisoryIndex::load_dir`],
//! which reads a directory the operator names). Callers hand it layer
//! readers and advisory bytes; everything here is synchronous
//! (`std::io::Read`) so the server runs it on a blocking thread. Image
//! content is hostile: every limit is in [`Limits`] and every rejection is a
//! [`ScanError`].
//!
//! Entry point: [`scan_image`].
//!
//! ```
//! use berth_scan::{scan_image, AdvisoryIndex, Layer, Limits, ScanStatus};
//!
//! let mut index = AdvisoryIndex::new();
//! index
//!     .add_json(
//!         "GHSA-xvch-5gv4-984h.json",
//!         br#"{"id": "GHSA-xvch-5gv4-984h", "affected": [{
//!             "package": {"ecosystem": "npm", "name": "minimist"},
//!             "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.2.6"}]}]}]}"#,
//!     )
//!     .expect("valid OSV");
//! // An empty (end-of-archive only) layer: nothing to scan.
//! let layer = vec![0u8; 1024];
//! let report = scan_image(
//!     [Layer::new("application/vnd.oci.image.layer.v1.tar", &layer[..])],
//!     &index,
//!     &Limits::default(),
//! )
//! .expect("scan");
//! assert_eq!(report.status, ScanStatus::UnsupportedImage);
//! assert!(report.findings.is_empty());
//! ```

pub mod cvss4;
pub mod ecosystem;
pub mod error;
pub mod index;
pub mod inventory;
pub mod layers;
pub mod osv;
pub mod sbom;
pub mod scan;
pub mod severity;
pub mod version;
pub mod zip;

pub use ecosystem::{Ecosystem, Family};
pub use error::ScanError;
pub use index::{AdvisoryError, AdvisoryIndex, AdvisoryMatch, LoadReport};
pub use inventory::{Inventory, OsInfo, Package, PackageKind};
pub use layers::{ImageFs, Layer, Limits};
pub use scan::{scan_image, Finding, ScanReport, ScanStatus};
pub use severity::Severity;
pub use version::VersionScheme;
