//! Fuzz targets: one function per parser family that reads bytes a client or an
//! image controls. Each must return (never panic, never hang, never allocate
//! without bound) for any input; some also check properties that must hold for
//! every input (a version ordering is antisymmetric, a parsed name re-parses to
//! itself). `docs/fuzzing.md` says how to run them and what they found.
//!
//! Pure on purpose: the targets call only the I/O-free crates (`oci`, `iam`,
//! `lifecycle`, `scan`, `ecr-input`).

mod ecr;
pub mod mutate;
mod targets;

pub use ecr::*;
pub use targets::*;

/// A fuzz target: a name (also its corpus directory under `fuzz/corpus/`) and the
/// function that takes one input.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the runner and CI use.
pub const TARGETS: &[Target] = &[
    Target {
        name: "oci_names",
        run: oci_names,
    },
    Target {
        name: "oci_manifest",
        run: oci_manifest,
    },
    Target {
        name: "oci_ranges",
        run: oci_ranges,
    },
    Target {
        name: "iam_policy",
        run: iam_policy,
    },
    Target {
        name: "iam_sigv4",
        run: iam_sigv4,
    },
    Target {
        name: "iam_arn_time_token",
        run: iam_arn_time_token,
    },
    Target {
        name: "lifecycle_policy",
        run: lifecycle_policy,
    },
    Target {
        name: "scan_versions",
        run: scan_versions,
    },
    Target {
        name: "scan_layers",
        run: scan_layers,
    },
    Target {
        name: "scan_inventories",
        run: scan_inventories,
    },
    Target {
        name: "ecr_input",
        run: ecr_input,
    },
    Target {
        name: "ecr_registry_config",
        run: ecr_registry_config,
    },
    Target {
        name: "ecr_pull_through",
        run: ecr_pull_through,
    },
    Target {
        name: "ecr_templates",
        run: ecr_templates,
    },
    Target {
        name: "secrets_manager",
        run: secrets_manager,
    },
    Target {
        name: "kms_inputs",
        run: kms_inputs,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
