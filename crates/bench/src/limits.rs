//! Physical limits of this machine, measured in the same run: single-core SHA-256
//! throughput (ring, what both servers and the verifying client pay per byte) and
//! sequential disk throughput in the directory the servers store blobs in.
//!
//! Disk write: 1 MiB `write`s then `fsync`, timed to the end of the fsync.
//! Disk read: the file's clean pages are dropped with
//! `posix_fadvise(POSIX_FADV_DONTNEED)` after the fsync (no root needed; also
//! `/proc/sys/vm/drop_caches` when writable), then read back with 1 MiB `read`s.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use ring::digest;

const MIB: f64 = 1024.0 * 1024.0;

/// Measured limits in MiB/s.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub sha256_mib_s: f64,
    pub disk_write_mib_s: f64,
    pub disk_read_mib_s: f64,
    /// Whether the page cache was dropped before the read.
    pub cache_dropped: bool,
}

impl Limits {
    /// Hashing parallelism: one stream per connection, at most one per core.
    fn sha(&self, conns: usize, cpus: usize) -> f64 {
        self.sha256_mib_s * conns.clamp(1, cpus.max(1)) as f64
    }

    /// A push must hash and durably write every byte.
    pub fn push(&self, conns: usize, cpus: usize) -> f64 {
        self.sha(conns, cpus).min(self.disk_write_mib_s)
    }

    /// A verified pull must hash every byte on the client. Blobs pulled right after
    /// their push come from the page cache, so the cold disk read is not binding.
    pub fn pull(&self, conns: usize, cpus: usize) -> f64 {
        self.sha(conns, cpus)
    }
}

/// SHA-256 over a 1 MiB buffer repeatedly for at least `min_time`.
pub fn sha256_throughput(min_time: Duration) -> f64 {
    let buf = pseudo_random(1 << 20, 7);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < min_time || n == 0 {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&buf);
        std::hint::black_box(ctx.finish());
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Sequential write (with fsync) and cold read of `bytes` in `dir`.
pub fn disk_throughput(dir: &Path, bytes: usize) -> std::io::Result<(f64, f64, bool)> {
    let path = dir.join("bench-disk-probe.bin");
    let buf = pseudo_random(1 << 20, 11);
    let chunks = (bytes / buf.len()).max(1);
    let t0 = Instant::now();
    {
        let mut f = File::create(&path)?;
        for _ in 0..chunks {
            f.write_all(&buf)?;
        }
        f.sync_all()?;
    }
    let write = (chunks * buf.len()) as f64 / MIB / t0.elapsed().as_secs_f64();
    let f = File::open(&path)?;
    // SAFETY: advisory call on an open descriptor.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let dropped_all = std::fs::write("/proc/sys/vm/drop_caches", b"1").is_ok();
    let mut f = f;
    let mut rbuf = vec![0u8; 1 << 20];
    let t1 = Instant::now();
    let mut total = 0usize;
    loop {
        let n = f.read(&mut rbuf)?;
        if n == 0 {
            break;
        }
        total += n;
    }
    let read = total as f64 / MIB / t1.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok((write, read, rc == 0 || dropped_all))
}

/// Deterministic incompressible bytes (xorshift64*), seeded.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Measures all limits.
pub fn measure(dir: &Path, hash_time: Duration, disk_bytes: usize) -> std::io::Result<Limits> {
    let sha = sha256_throughput(hash_time);
    let (w, r, dropped) = disk_throughput(dir, disk_bytes)?;
    Ok(Limits {
        sha256_mib_s: sha,
        disk_write_mib_s: w,
        disk_read_mib_s: r,
        cache_dropped: dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_is_deterministic_and_varied() {
        let a = pseudo_random(1000, 1);
        assert_eq!(a.len(), 1000);
        assert_eq!(a, pseudo_random(1000, 1));
        assert_ne!(a, pseudo_random(1000, 2));
        let zeros = a.iter().filter(|b| **b == 0).count();
        assert!(zeros < 20);
    }

    #[test]
    fn limits_take_the_slower_path() {
        let l = Limits {
            sha256_mib_s: 500.0,
            disk_write_mib_s: 300.0,
            disk_read_mib_s: 2000.0,
            cache_dropped: true,
        };
        assert_eq!(l.push(1, 2), 300.0);
        assert_eq!(l.pull(1, 2), 500.0);
        assert_eq!(l.pull(4, 2), 1000.0);
        assert_eq!(l.pull(0, 0), 500.0);
        let fast_disk = Limits {
            disk_write_mib_s: 5000.0,
            ..l
        };
        assert_eq!(fast_disk.push(1, 2), 500.0);
    }
}
