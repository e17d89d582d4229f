//! Benchmarks (ignored by default): a synthetic ~100 MB layer in three
//! compressions, and a ~1 GB four-layer image holding every ecosystem the
//! scanner reads, which must scan in under 5 s (release build). Run with
//! `cargo test -p berth-scan --release --test bench -- --ignored --nocapture`.

use std::io::Write;
use std::time::Instant;

use berth_scan::{scan_image, AdvisoryIndex, Layer, Limits, PackageKind};

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

/// CPU time of the calling thread (Linux `/proc/thread-self/schedstat`, ns on
/// CPU), so a figure taken on a shared, loaded machine can be told apart from
/// the time the scan itself needs; `None` elsewhere.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
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

/// A ZIP of stored entries (what the scanner reads of a JAR does not depend
/// on compression; class data in real JARs is incompressible anyway).
fn stored_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in entries {
        let off = out.len() as u32;
        let head = |sig: &[u8], v: &mut Vec<u8>| {
            v.extend_from_slice(sig);
            v.extend_from_slice(&20u16.to_le_bytes());
        };
        head(b"PK\x03\x04", &mut out);
        out.extend_from_slice(&[0; 4]); // flags, method 0
        out.extend_from_slice(&[0; 8]); // time, date, crc
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        head(b"PK\x01\x02", &mut cd);
        cd.extend_from_slice(&[20, 0, 0, 0, 0, 0]);
        cd.extend_from_slice(&[0; 8]);
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 12]);
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn pom(g: &str, a: &str, v: &str) -> (String, Vec<u8>) {
    (
        format!("META-INF/maven/{g}/{a}/pom.properties"),
        format!("groupId={g}\nartifactId={a}\nversion={v}\n").into_bytes(),
    )
}

/// A JAR of `classes` random 16 KB entries plus its pom.properties.
fn jar(rng: &mut Rng, g: &str, a: &str, v: &str, classes: usize) -> Vec<u8> {
    let mut entries = vec![
        (
            "META-INF/MANIFEST.MF".to_string(),
            b"Manifest-Version: 1.0\r\n\r\n".to_vec(),
        ),
        pom(g, a, v),
    ];
    for i in 0..classes {
        let mut data = vec![0u8; 16 << 10];
        rng.fill(&mut data);
        entries.push((format!("{}/{a}/C{i}.class", g.replace('.', "/")), data));
    }
    stored_zip(&entries)
}

fn text_files(b: &mut tar::Builder<Vec<u8>>, rng: &mut Rng, dir: &str, count: usize) {
    let words: Vec<&str> =
        "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"
            .split(' ')
            .collect();
    for i in 0..count {
        let mut text = String::with_capacity(10_240);
        while text.len() < 10_000 {
            text.push_str(words[(rng.next() % words.len() as u64) as usize]);
            text.push(' ');
        }
        append(
            b,
            &format!("{dir}/d{}/file{i}.txt", i % 500),
            text.as_bytes(),
            0o644,
        );
    }
}

/// ~1 GB in four layers: an OS layer (dpkg, docs, executables scanned for
/// Go build info), a language layer (Python, npm, Cargo, gems, Composer,
/// .NET), a Java layer (JARs and a WAR with nested JARs) and an application
/// layer.
fn all_ecosystems_image() -> Vec<Vec<u8>> {
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |p: &str| std::fs::read(fx.join(p)).unwrap_or_default();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut layers = Vec::new();

    let mut b = tar::Builder::new(Vec::new());
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
    text_files(&mut b, &mut rng, "usr/share/doc", 12_000);
    for i in 0..60 {
        let mut bin = vec![0u8; 1 << 20];
        rng.fill(&mut bin);
        bin[..4].copy_from_slice(b"\x7fELF");
        append(&mut b, &format!("usr/bin/tool{i}"), &bin, 0o755);
    }
    layers.push(b.into_inner().unwrap_or_default());

    let mut b = tar::Builder::new(Vec::new());
    for i in 0..300 {
        let meta = format!("Metadata-Version: 2.1\nName: pkg{i}\nVersion: 1.0.{i}\n\n");
        append(
            &mut b,
            &format!("usr/lib/python3/site-packages/pkg{i}-1.0.{i}.dist-info/METADATA"),
            meta.as_bytes(),
            0o644,
        );
        let spec = format!(
            "# stub: gem{i} 2.{i}.0 ruby lib\nGem::Specification.new do |s|\n  s.name = \"gem{i}\".freeze\n  s.version = \"2.{i}.0\"\nend\n"
        );
        append(
            &mut b,
            &format!("usr/lib/ruby/gems/3.1.0/specifications/gem{i}-2.{i}.0.gemspec"),
            spec.as_bytes(),
            0o644,
        );
    }
    append(
        &mut b,
        "srv/node/package-lock.json",
        &read("npm-app/package-lock.json"),
        0o644,
    );
    let cargo_lock: String = (0..200)
        .map(|i| {
            format!(
                "[[package]]\nname = \"crate{i}\"\nversion = \"0.{i}.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n"
            )
        })
        .collect();
    append(&mut b, "srv/rust/Cargo.lock", cargo_lock.as_bytes(), 0o644);
    let mut go = Vec::new();
    let gz = read("go/app.trimmed.gz");
    if let Err(e) = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut go)
    {
        panic!("go fixture: {e}");
    }
    append(&mut b, "usr/local/bin/goapp", &go, 0o755);
    append(
        &mut b,
        "srv/ruby/Gemfile.lock",
        &read("ecosystems/ruby/image/srv/app/Gemfile.lock"),
        0o644,
    );
    append(
        &mut b,
        "srv/php/composer.lock",
        &read("ecosystems/php/image/var/www/app/composer.lock"),
        0o644,
    );
    append(
        &mut b,
        "srv/php/vendor/composer/installed.json",
        &read("ecosystems/php/image/var/www/app/vendor/composer/installed.json"),
        0o644,
    );
    for i in 0..20 {
        append(
            &mut b,
            &format!("srv/dotnet/app{i}/App{i}.deps.json"),
            &read("ecosystems/dotnet/image/app/MyApp.deps.json"),
            0o644,
        );
    }
    text_files(&mut b, &mut rng, "usr/share/locale", 18_000);
    layers.push(b.into_inner().unwrap_or_default());

    let mut b = tar::Builder::new(Vec::new());
    for i in 0..150 {
        let j = jar(
            &mut rng,
            "org.example",
            &format!("lib{i}"),
            &format!("1.{i}"),
            120,
        );
        append(&mut b, &format!("opt/java/lib/lib{i}-1.{i}.jar"), &j, 0o644);
    }
    let mut war = vec![pom("com.example", "shop", "1.0")];
    for i in 0..40 {
        let j = jar(
            &mut rng,
            "org.apache.logging.log4j",
            &format!("dep{i}"),
            "2.14.1",
            150,
        );
        war.push((format!("WEB-INF/lib/dep{i}-2.14.1.jar"), j));
    }
    append(&mut b, "opt/shop/shop.war", &stored_zip(&war), 0o644);
    layers.push(b.into_inner().unwrap_or_default());

    let mut b = tar::Builder::new(Vec::new());
    text_files(&mut b, &mut rng, "srv/app/static", 20_000);
    for i in 0..20 {
        let mut bin = vec![0u8; 1 << 20];
        rng.fill(&mut bin);
        append(&mut b, &format!("srv/app/bin/svc{i}"), &bin, 0o755);
    }
    layers.push(b.into_inner().unwrap_or_default());
    layers
}

#[test]
#[ignore = "benchmark: run explicitly in release mode"]
fn scan_1gb_image_all_ecosystems() {
    let t0 = Instant::now();
    let tars = all_ecosystems_image();
    let total: usize = tars.iter().map(Vec::len).sum();
    let gzs: Vec<Vec<u8>> = tars
        .iter()
        .map(|t| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = gz.write_all(t);
            gz.finish().unwrap_or_default()
        })
        .collect();
    println!(
        "built image: {} layers, {:.0} MB tar, {:.0} MB gzip in {:.2?}",
        tars.len(),
        total as f64 / 1e6,
        gzs.iter().map(Vec::len).sum::<usize>() as f64 / 1e6,
        t0.elapsed()
    );
    assert!(total > 1_000_000_000, "the image is {total} bytes");
    // The same image for an end-to-end run through a server
    // (`scripts/scan-bench-image` makes an OCI layout of these layers).
    if let Some(dir) = std::env::var_os("BERTH_BENCH_LAYERS_DIR") {
        let dir = std::path::PathBuf::from(dir);
        for (i, gz) in gzs.iter().enumerate() {
            if let Err(e) = std::fs::write(dir.join(format!("layer{i}.tar.gz")), gz) {
                panic!("{}: {e}", dir.display());
            }
        }
    }
    // Inflating alone, for comparison with the scan's gzip figure.
    let t = Instant::now();
    for gz in &gzs {
        let mut d = flate2::read::MultiGzDecoder::new(&gz[..]);
        if let Err(e) = std::io::copy(&mut d, &mut std::io::sink()) {
            panic!("inflate: {e}");
        }
    }
    println!("inflate only: {:.3} s", t.elapsed().as_secs_f64());
    let adv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut idx = AdvisoryIndex::new();
    for dir in ["advisories", "ecosystems/advisories"] {
        match AdvisoryIndex::load_dir(&adv.join(dir)) {
            Ok((i, _)) => {
                for v in i.records() {
                    idx.insert(v.clone());
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    for (label, media_type, blobs) in [
        ("tar", "application/vnd.oci.image.layer.v1.tar", &tars),
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip", &gzs),
    ] {
        let mut best = f64::MAX;
        let mut best_cpu = f64::MAX;
        for _ in 0..2 {
            let t = Instant::now();
            let cpu0 = thread_cpu_secs();
            let r = scan_image(
                blobs.iter().map(|b| Layer::new(media_type, &b[..])),
                &idx,
                &Limits::default(),
            );
            let secs = t.elapsed().as_secs_f64();
            let cpu = match (cpu0, thread_cpu_secs()) {
                (Some(a), Some(b)) => b - a,
                _ => f64::NAN,
            };
            best_cpu = best_cpu.min(cpu);
            let r = match r {
                Ok(r) => r,
                Err(e) => panic!("{label}: {e}"),
            };
            let kinds: std::collections::BTreeSet<PackageKind> =
                r.packages.iter().map(|p| p.kind).collect();
            // Every kind but the other distributions' (apk, rpm).
            assert_eq!(kinds.len(), 9, "{kinds:?}");
            let java = r
                .packages
                .iter()
                .filter(|p| p.kind == PackageKind::Java)
                .count();
            assert_eq!(java, 191);
            best = best.min(secs);
            println!(
                "scan {label:>4}: {secs:.3} s ({cpu:.3} s CPU), {} packages, {} findings",
                r.packages.len(),
                r.findings.len()
            );
        }
        println!(
            "scan {label:>4}: best {best:.3} s, {best_cpu:.3} s CPU ({:.0} MB/s decompressed)",
            total as f64 / 1e6 / best
        );
        if !cfg!(debug_assertions) {
            assert!(best < 5.0, "{label}: {best:.2} s for a 1 GB image");
        }
    }
}
