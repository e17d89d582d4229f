//! Micro-benchmark (ignored by default): scans a synthetic ~100 MB image
//! layer and prints timings. Run with
//! `cargo test -p berth-scan --release --test bench -- --ignored --nocapture`.

use std::io::Write;
use std::time::Instant;

use berth_scan::{scan_image, AdvisoryIndex, Layer, Limits};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn append(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    if let Err(e) = b.append_data(&mut h, path, data) {
        panic!("{path}: {e}");
    }
}

/// ~100 MB: 6,000 compressible 10 KB text files, 40 incompressible 1 MB
/// executables (ELF, scanned for Go build info), the fixture dpkg status,
/// Python metadata and an npm lockfile.
fn synthetic_layer() -> Vec<u8> {
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut b = tar::Builder::new(Vec::new());
    let read = |p: &str| std::fs::read(fx.join(p)).unwrap_or_default();
    append(
        &mut b,
        "etc/os-release",
        &read("debian-bookworm/etc/os-release"),
        0o644,
    );
    append(
        &mut b,
        "var/lib/dpkg/status",
        &read("debian-bookworm/var/lib/dpkg/status"),
        0o644,
    );
    append(
        &mut b,
        "app/package-lock.json",
        &read("npm-app/package-lock.json"),
        0o644,
    );
    let words: Vec<&str> =
        "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"
            .split(' ')
            .collect();
    for i in 0..6000 {
        let mut text = String::with_capacity(10_240);
        while text.len() < 10_000 {
            text.push_str(words[(rng.next() % words.len() as u64) as usize]);
            text.push(' ');
        }
        append(
            &mut b,
            &format!("usr/share/doc/pkg{}/file{i}.txt", i % 300),
            text.as_bytes(),
            0o644,
        );
    }
    for i in 0..40 {
        let mut bin = vec![0u8; 1 << 20];
        rng.fill(&mut bin);
        bin[..4].copy_from_slice(b"\x7fELF");
        append(&mut b, &format!("usr/bin/tool{i}"), &bin, 0o755);
    }
    for i in 0..200 {
        let meta = format!("Metadata-Version: 2.1\nName: pkg{i}\nVersion: 1.0.{i}\n\n");
        append(
            &mut b,
            &format!("usr/lib/python3/site-packages/pkg{i}-1.0.{i}.dist-info/METADATA"),
            meta.as_bytes(),
            0o644,
        );
    }
    b.into_inner().unwrap_or_default()
}

#[test]
#[ignore = "benchmark: run explicitly in release mode"]
fn scan_100mb_layer() {
    let t0 = Instant::now();
    let tar = synthetic_layer();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(&tar);
    let gz = gz.finish().unwrap_or_default();
    let zst =
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    println!(
        "built layer: {:.1} MB tar, {:.1} MB gzip, {:.1} MB zstd in {:.2?}",
        tar.len() as f64 / 1e6,
        gz.len() as f64 / 1e6,
        zst.len() as f64 / 1e6,
        t0.elapsed()
    );
    let adv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/advisories");
    let idx = match AdvisoryIndex::load_dir(&adv) {
        Ok((i, _)) => i,
        Err(e) => panic!("{e}"),
    };
    for (label, media_type, blob) in [
        ("tar", "application/vnd.oci.image.layer.v1.tar", &tar),
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip", &gz),
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd", &zst),
    ] {
        let mut best = f64::MAX;
        let mut findings = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let r = scan_image(
                [Layer::new(media_type, &blob[..])],
                &idx,
                &Limits::default(),
            );
            let secs = t.elapsed().as_secs_f64();
            match r {
                Ok(r) => findings = r.findings.len(),
                Err(e) => panic!("{label}: {e}"),
            }
            best = best.min(secs);
        }
        println!(
            "scan {label:>4}: best of 3 {best:.3} s ({:.0} MB/s decompressed), {findings} findings",
            tar.len() as f64 / 1e6 / best
        );
    }
}
