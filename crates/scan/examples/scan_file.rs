//! Scans a layer blob from disk, streaming, and prints the time taken and
//! the process's peak resident memory — evidence that memory stays bounded
//! whatever the layer size.
//!
//! ```text
//! cargo run -p berth-scan --release --example scan_file -- gen /tmp/layer.tar.gz 1000
//! cargo run -p berth-scan --release --example scan_file -- scan /tmp/layer.tar.gz [ADVISORY_DIR]
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use berth_scan::{scan_image, AdvisoryIndex, Layer, Limits};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes a gzip layer of about `mb` MB of mostly incompressible files.
fn generate(path: &str, mb: u64) -> std::io::Result<()> {
    let out = BufWriter::new(File::create(path)?);
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut buf = vec![0u8; 1 << 20];
    let mut h = tar::Header::new_gnu();
    let os = b"ID=debian\nVERSION_ID=12\n";
    h.set_size(os.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/os-release", &os[..])?;
    for i in 0..mb {
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        // Every 4th file is an executable (scanned for Go build info).
        if i % 4 == 0 {
            buf[..4].copy_from_slice(b"\x7fELF");
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(buf.len() as u64);
        h.set_mode(if i % 4 == 0 { 0o755 } else { 0o644 });
        b.append_data(&mut h, format!("data/blob{i}"), &buf[..])?;
    }
    b.into_inner()?.finish()?.flush()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") if args.len() >= 4 => {
            let mb = args[3].parse().unwrap_or(100);
            if let Err(e) = generate(&args[2], mb) {
                eprintln!("gen: {e}");
                std::process::exit(1);
            }
        }
        Some("scan") if args.len() >= 3 => {
            let index = match args.get(3) {
                Some(dir) => match AdvisoryIndex::load_dir(std::path::Path::new(dir)) {
                    Ok((i, _)) => i,
                    Err(e) => {
                        eprintln!("advisories: {e}");
                        std::process::exit(1);
                    }
                },
                None => AdvisoryIndex::new(),
            };
            let file = match File::open(&args[2]) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("{}: {e}", args[2]);
                    std::process::exit(1);
                }
            };
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let t = Instant::now();
            let r = scan_image(
                [Layer::new(
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    file,
                )],
                &index,
                &Limits::default(),
            );
            let secs = t.elapsed().as_secs_f64();
            match r {
                Ok(r) => println!(
                    "scanned {:.0} MB blob in {secs:.2} s: {} packages, {} findings, peak RSS {} MiB",
                    size as f64 / 1e6,
                    r.packages.len(),
                    r.findings.len(),
                    peak_rss_kib().unwrap_or(0) / 1024
                ),
                Err(e) => {
                    println!("scan failed after {secs:.2} s: {e}; peak RSS {} MiB", peak_rss_kib().unwrap_or(0) / 1024);
                }
            }
        }
        _ => {
            eprintln!("usage: scan_file gen PATH MB | scan PATH [ADVISORY_DIR]");
            std::process::exit(2);
        }
    }
}
