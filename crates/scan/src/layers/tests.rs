//! Layer walking tests, most of them hostile: archives are written by hand
//! here so they can say anything a real attacker's tar can.

use super::*;
use crate::inventory;
use std::io::Write;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Appends one raw tar entry (GNU long name when needed).
fn entry(out: &mut Vec<u8>, name: &str, typeflag: u8, data: &[u8], link: &str, mode: u32) {
    if name.len() > 100 {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        raw(out, "././@LongLink", b'L', n.len() as u64, "", 0o644);
        push_data(out, &n);
    }
    raw(
        out,
        &name[..name.len().min(100)],
        typeflag,
        data.len() as u64,
        link,
        mode,
    );
    push_data(out, data);
}

fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.resize(out.len() + pad, 0);
}

/// A header claiming `size` bytes of data (which the caller may not supply).
fn raw(out: &mut Vec<u8>, name: &str, typeflag: u8, size: u64, link: &str, mode: u32) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(format!("{mode:07o}").as_bytes());
    if size < 0o77777777777 {
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar ");
    h[263..265].copy_from_slice(b" \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&c| u64::from(c)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
}

fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0u8; 1024]);
}

fn file(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    entry(out, name, b'0', data, "", 0o644);
}

fn symlink(out: &mut Vec<u8>, name: &str, target: &str) {
    entry(out, name, b'2', &[], target, 0o777);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn build(layers: &[Vec<u8>], limits: &Limits) -> Result<ImageFs, ScanError> {
    ImageFs::from_layers(layers.iter().map(|l| Layer::new(TAR, &l[..])), limits)
}

fn content<'a>(fs: &'a ImageFs, path: &str) -> Option<&'a [u8]> {
    fs.read(path, 40).ok().flatten()
}

#[test]
fn keeps_only_interesting_files() {
    let mut t = Vec::new();
    file(&mut t, "etc/os-release", b"ID=debian\n");
    file(&mut t, "etc/passwd", b"root:x:0:0\n");
    file(&mut t, "usr/share/doc/big.txt", &[b'x'; 10_000]);
    end(&mut t);
    let fs = build(&[t], &Limits::default());
    let Ok(fs) = fs else { panic!("build") };
    assert_eq!(content(&fs, "etc/os-release"), Some(&b"ID=debian\n"[..]));
    assert_eq!(content(&fs, "etc/passwd"), None);
    assert_eq!(fs.files().count(), 1);
}

#[test]
fn later_layers_replace_and_whiteout() {
    let mut l0 = Vec::new();
    file(&mut l0, "etc/os-release", b"ID=alpine\n");
    file(&mut l0, "app/node_modules/a/package.json", b"{}");
    file(&mut l0, "app/node_modules/b/package.json", b"{}");
    file(&mut l0, "srv/Cargo.lock", b"old");
    end(&mut l0);
    let mut l1 = Vec::new();
    file(&mut l1, "etc/os-release", b"ID=debian\n");
    // Same-layer entries survive the layer's own opaque marker, whatever
    // the order in the archive.
    file(&mut l1, "app/node_modules/c/package.json", b"{}");
    file(&mut l1, "app/node_modules/.wh..wh..opq", b"");
    file(&mut l1, "srv/.wh.Cargo.lock", b"");
    end(&mut l1);
    let Ok(fs) = build(&[l0, l1], &Limits::default()) else {
        panic!("build")
    };
    assert_eq!(content(&fs, "etc/os-release"), Some(&b"ID=debian\n"[..]));
    assert!(content(&fs, "app/node_modules/a/package.json").is_none());
    assert!(content(&fs, "app/node_modules/b/package.json").is_none());
    assert!(content(&fs, "app/node_modules/c/package.json").is_some());
    assert!(content(&fs, "srv/Cargo.lock").is_none());
}

#[test]
fn whiteout_of_directory_removes_subtree_and_file_replaces_dir() {
    let mut l0 = Vec::new();
    file(&mut l0, "opt/app/Cargo.lock", b"x");
    file(&mut l0, "opt/other/Cargo.lock", b"y");
    end(&mut l0);
    let mut l1 = Vec::new();
    file(&mut l1, "opt/.wh.app", b"");
    file(&mut l1, "opt/other", b"now a file");
    end(&mut l1);
    let Ok(fs) = build(&[l0, l1], &Limits::default()) else {
        panic!("build")
    };
    assert_eq!(fs.files().count(), 0);
}

#[test]
fn path_traversal_stays_inside_the_image() {
    let mut t = Vec::new();
    file(&mut t, "../../../../etc/os-release", b"ID=debian\n");
    file(&mut t, "/var/lib/dpkg/../dpkg/./status", b"Package: a\n");
    file(&mut t, "./../", b"");
    end(&mut t);
    let Ok(fs) = build(&[t], &Limits::default()) else {
        panic!("build")
    };
    assert_eq!(content(&fs, "etc/os-release"), Some(&b"ID=debian\n"[..]));
    assert_eq!(
        content(&fs, "var/lib/dpkg/status"),
        Some(&b"Package: a\n"[..])
    );
    assert!(!std::path::Path::new("/etc/berth-scan-should-not-exist").exists());
}

#[test]
fn symlinks_resolve_within_the_image() {
    let mut t = Vec::new();
    file(&mut t, "usr/lib/os-release", b"ID=debian\n");
    symlink(&mut t, "etc/os-release", "../usr/lib/os-release");
    symlink(&mut t, "var/lib/rpm", "/../../../usr/lib/sysimage/rpm");
    file(&mut t, "usr/lib/sysimage/rpm/rpmdb.sqlite", b"db");
    symlink(&mut t, "escape", "../../../../../../etc/shadow");
    end(&mut t);
    let Ok(fs) = build(&[t], &Limits::default()) else {
        panic!("build")
    };
    assert_eq!(content(&fs, "etc/os-release"), Some(&b"ID=debian\n"[..]));
    assert_eq!(content(&fs, "var/lib/rpm/rpmdb.sqlite"), Some(&b"db"[..]));
    assert_eq!(content(&fs, "escape"), None);
}

#[test]
fn symlink_loops_fail_the_scan() {
    let mut t = Vec::new();
    symlink(&mut t, "etc/os-release", "a");
    symlink(&mut t, "etc/a", "b");
    symlink(&mut t, "etc/b", "/etc/os-release");
    end(&mut t);
    let Ok(fs) = build(&[t], &Limits::default()) else {
        panic!("build")
    };
    let r = inventory::collect(&fs, &Limits::default());
    assert!(matches!(r, Err(ScanError::SymlinkLoop { .. })), "{r:?}");
    // A self-referencing directory link that grows the path each hop.
    let mut t = Vec::new();
    symlink(&mut t, "etc", "etc/etc");
    end(&mut t);
    let Ok(fs) = build(&[t], &Limits::default()) else {
        panic!("build")
    };
    assert!(matches!(
        fs.lookup("etc/os-release", 40),
        Err(ScanError::SymlinkLoop { .. })
    ));
}

#[test]
fn gzip_bomb_is_stopped() {
    // 64 MiB of zeros compress to ~64 KiB.
    let mut t = Vec::new();
    raw(&mut t, "bomb", b'0', 64 << 20, "", 0o644);
    t.resize(t.len() + (64 << 20), 0);
    end(&mut t);
    let bomb = gzip(&t);
    assert!(bomb.len() < 1 << 20);
    let limits = Limits {
        max_decompressed_bytes: 8 << 20,
        ..Limits::default()
    };
    let r = ImageFs::from_layers(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &bomb[..],
        )],
        &limits,
    );
    assert!(
        matches!(r, Err(ScanError::DecompressedTooLarge { .. })),
        "{r:?}"
    );
}

#[test]
fn zstd_bomb_is_stopped() {
    let mut t = Vec::new();
    raw(&mut t, "bomb", b'0', 16 << 20, "", 0o644);
    t.resize(t.len() + (16 << 20), 0);
    end(&mut t);
    let bomb =
        ruzstd::encoding::compress_to_vec(&t[..], ruzstd::encoding::CompressionLevel::Fastest);
    let limits = Limits {
        max_decompressed_bytes: 1 << 20,
        ..Limits::default()
    };
    let r = ImageFs::from_layers(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &bomb[..],
        )],
        &limits,
    );
    assert!(
        matches!(r, Err(ScanError::DecompressedTooLarge { .. })),
        "{r:?}"
    );
}

#[test]
fn zstd_multiple_frames_and_skippable_frames() {
    let mut a = Vec::new();
    file(&mut a, "etc/os-release", b"ID=alpine\n");
    let mut b = Vec::new();
    file(&mut b, "lib/apk/db/installed", b"P:musl\nV:1.2.4-r2\n\n");
    end(&mut b);
    let mut blob =
        ruzstd::encoding::compress_to_vec(&a[..], ruzstd::encoding::CompressionLevel::Fastest);
    // A skippable frame between the data frames (as zstd:chunked writes).
    blob.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
    blob.extend(ruzstd::encoding::compress_to_vec(
        &b[..],
        ruzstd::encoding::CompressionLevel::Fastest,
    ));
    let r = ImageFs::from_layers(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &blob[..],
        )],
        &Limits::default(),
    );
    let Ok(fs) = r else { panic!("{r:?}") };
    assert!(content(&fs, "etc/os-release").is_some());
    assert!(content(&fs, "lib/apk/db/installed").is_some());
}

#[test]
fn huge_interesting_file_is_refused_before_reading() {
    let mut t = Vec::new();
    raw(&mut t, "var/lib/dpkg/status", b'0', 1 << 40, "", 0o644);
    let r = build(&[t], &Limits::default());
    assert!(matches!(r, Err(ScanError::FileTooLarge { .. })), "{r:?}");
}

#[test]
fn retained_total_is_capped() {
    let mut t = Vec::new();
    for i in 0..20 {
        file(&mut t, &format!("app{i}/Cargo.lock"), &[b'#'; 4096]);
    }
    end(&mut t);
    let limits = Limits {
        max_retained_bytes: 32 << 10,
        ..Limits::default()
    };
    let r = build(&[t], &limits);
    assert!(
        matches!(r, Err(ScanError::RetainedTooLarge { .. })),
        "{r:?}"
    );
}

#[test]
fn huge_skipped_file_with_missing_data_is_truncation() {
    let mut t = Vec::new();
    raw(&mut t, "usr/share/blob", b'0', u64::MAX >> 2, "", 0o644);
    t.extend_from_slice(&[0u8; 4096]);
    let r = build(&[t], &Limits::default());
    assert!(matches!(r, Err(ScanError::MalformedTar { .. })), "{r:?}");
}

#[test]
fn maximal_base256_size_does_not_overflow() {
    let mut t = Vec::new();
    raw(&mut t, "usr/share/x", b'0', 0, "", 0o644);
    // Rewrite the size field as base-256 u64::MAX and fix the checksum.
    t[124] = 0x80;
    for b in &mut t[125..136] {
        *b = 0xff;
    }
    t[124] = 0x80;
    t[125..128].copy_from_slice(&[0, 0, 0]);
    t[148..156].copy_from_slice(b"        ");
    let sum: u64 = t[..512].iter().map(|&c| u64::from(c)).sum();
    t[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    t.extend_from_slice(&[0u8; 2048]);
    let r = build(&[t], &Limits::default());
    assert!(matches!(r, Err(ScanError::MalformedTar { .. })), "{r:?}");
}

#[test]
fn malformed_archives_fail_with_reasons() {
    let limits = Limits::default();
    // Random bytes: checksum mismatch.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = build(&[junk], &limits);
    assert!(matches!(r, Err(ScanError::MalformedTar { .. })), "{r:?}");
    // Truncated gzip.
    let mut t = Vec::new();
    file(&mut t, "etc/os-release", &[b'a'; 3000]);
    end(&mut t);
    let gz = gzip(&t);
    let r = ImageFs::from_layers(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &gz[..gz.len() / 2],
        )],
        &limits,
    );
    assert!(
        matches!(
            r,
            Err(ScanError::LayerRead { .. } | ScanError::MalformedTar { .. })
        ),
        "{r:?}"
    );
    // Corrupt zstd.
    let r = ImageFs::from_layers(
        [Layer::new(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0, 1, 2][..],
        )],
        &limits,
    );
    assert!(r.is_err());
    // Oversized pax header.
    let mut t = Vec::new();
    raw(&mut t, "pax", b'x', 1 << 30, "", 0o644);
    let r = build(&[t], &limits);
    assert!(matches!(r, Err(ScanError::MalformedTar { .. })), "{r:?}");
    // Non-octal size.
    let mut t = Vec::new();
    raw(&mut t, "f", b'0', 10, "", 0o644);
    t[124] = b'z';
    let sum: u64 = t[..512]
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(c)
            }
        })
        .sum();
    t[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let r = build(&[t], &limits);
    assert!(matches!(r, Err(ScanError::MalformedTar { .. })), "{r:?}");
}

#[test]
fn entry_and_layer_and_path_limits() {
    let mut t = Vec::new();
    for i in 0..50 {
        file(&mut t, &format!("f{i}"), b"");
    }
    end(&mut t);
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let r = build(&[t.clone()], &limits);
    assert!(matches!(r, Err(ScanError::TooManyEntries { .. })), "{r:?}");
    let limits = Limits {
        max_layers: 2,
        ..Limits::default()
    };
    let r = build(&[t.clone(), t.clone(), t], &limits);
    assert!(matches!(r, Err(ScanError::TooManyLayers { .. })), "{r:?}");
    let mut t = Vec::new();
    file(&mut t, &"a/".repeat(3000), b"");
    end(&mut t);
    let r = build(&[t], &Limits::default());
    assert!(matches!(r, Err(ScanError::MalformedTar { .. })), "{r:?}");
}

#[test]
fn unsupported_media_type() {
    let r = ImageFs::from_layers(
        [Layer::new(
            "application/vnd.oci.image.config.v1+json",
            &b"{}"[..],
        )],
        &Limits::default(),
    );
    assert!(
        matches!(r, Err(ScanError::UnsupportedMediaType { .. })),
        "{r:?}"
    );
}

#[test]
fn hard_links_copy_retained_content() {
    let mut t = Vec::new();
    file(&mut t, "var/lib/dpkg/status", b"Package: a\n");
    entry(
        &mut t,
        "srv/Cargo.lock",
        b'1',
        &[],
        "var/lib/dpkg/status",
        0o644,
    );
    entry(&mut t, "etc/os-release", b'1', &[], "does/not/exist", 0o644);
    end(&mut t);
    let Ok(fs) = build(&[t], &Limits::default()) else {
        panic!("build")
    };
    assert_eq!(content(&fs, "srv/Cargo.lock"), Some(&b"Package: a\n"[..]));
    assert_eq!(content(&fs, "etc/os-release"), None);
}

#[test]
fn long_names_and_go_binaries() {
    let mut t = Vec::new();
    let long = format!(
        "{}/site-packages/x-1.0.dist-info/METADATA",
        "usr/lib/python3".repeat(10)
    );
    file(&mut t, &long, b"Name: x\nVersion: 1.0\n");
    let bin = crate::inventory::gobin::fake_binary(
        "go1.20.1",
        "dep\tgolang.org/x/text\tv0.3.7\th1:x=\n",
        5000,
    );
    entry(&mut t, "usr/local/bin/app", b'0', &bin, "", 0o755);
    end(&mut t);
    let Ok(fs) = build(&[t], &Limits::default()) else {
        panic!("build")
    };
    let inv = inventory::collect(&fs, &Limits::default());
    let Ok(inv) = inv else { panic!("inventory") };
    let mut got: Vec<(String, String)> = inv
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("golang.org/x/text".into(), "v0.3.7".into()),
            ("stdlib".into(), "1.20.1".into()),
            ("x".into(), "1.0".into())
        ]
    );
}

#[test]
fn media_type_is_checked_against_content() {
    // A "+gzip" layer that is actually plain tar still scans.
    let mut t = Vec::new();
    file(&mut t, "etc/os-release", b"ID=debian\n");
    end(&mut t);
    let r = ImageFs::from_layers(
        [Layer::new(
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            &t[..],
        )],
        &Limits::default(),
    );
    assert!(r.is_ok_and(|fs| fs.files().count() == 1));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = build(std::slice::from_ref(&data), &Limits::default());
            let mut gz = vec![0x1f, 0x8b];
            gz.extend_from_slice(&data);
            let _ = build(&[gz], &Limits::default());
            let mut zs = vec![0x28, 0xb5, 0x2f, 0xfd];
            zs.extend_from_slice(&data);
            let _ = build(&[zs], &Limits::default());
        }

        #[test]
        fn mutated_tar_never_panics(pos in 0usize..2048, byte in any::<u8>()) {
            let mut t = Vec::new();
            file(&mut t, "etc/os-release", b"ID=debian\nVERSION_ID=12\n");
            file(&mut t, "var/lib/dpkg/status", b"Package: a\nStatus: install ok installed\nVersion: 1\n");
            end(&mut t);
            if pos < t.len() {
                t[pos] = byte;
            }
            if let Ok(fs) = build(&[t], &Limits::default()) {
                let _ = inventory::collect(&fs, &Limits::default());
            }
        }
    }
}

#[test]
fn symlink_floods_count_against_retention() {
    let mut t = Vec::new();
    let target = "x".repeat(90);
    for i in 0..2000 {
        symlink(&mut t, &format!("l{i}"), &target);
    }
    end(&mut t);
    let limits = Limits {
        max_retained_bytes: 64 << 10,
        ..Limits::default()
    };
    let r = build(&[t], &limits);
    assert!(
        matches!(r, Err(ScanError::RetainedTooLarge { .. })),
        "{r:?}"
    );
}

#[test]
fn directory_entry_replaces_lower_symlink() {
    let mut l0 = Vec::new();
    file(&mut l0, "usr/lib/os-release", b"ID=alpine\n");
    symlink(&mut l0, "etc", "usr/lib");
    end(&mut l0);
    let mut l1 = Vec::new();
    entry(&mut l1, "etc/", b'5', &[], "", 0o755);
    end(&mut l1);
    let Ok(fs) = build(&[l0.clone()], &Limits::default()) else {
        panic!("build")
    };
    assert!(content(&fs, "etc/os-release").is_some());
    let Ok(fs) = build(&[l0, l1], &Limits::default()) else {
        panic!("build")
    };
    assert!(content(&fs, "etc/os-release").is_none());
}
