//! `berth-fuzz`: runs the fuzz targets on a stable toolchain.
//!
//! ```text
//! cargo run --release -p berth-fuzzing -- all --secs 60      # every target, 60 s each
//! cargo run --release -p berth-fuzzing -- iam_policy --secs 600
//! cargo run --release -p berth-fuzzing -- --list
//! ```
//!
//! Seeds come from `fuzz/corpus/<target>/`. A panic saves the input under
//! `target/fuzz-crashes/` and exits 1; so does an input that takes longer than
//! `--hang-ms` (default 2000) or a single allocation over 1 GiB (aborts).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_fuzzing::mutate::{mutate, Rng};
use berth_fuzzing::{Target, TARGETS};

/// Refuses any single allocation over 1 GiB: an input that asks for one has found
/// an unbounded allocation.
struct Bounded;

const MAX_ALLOC: usize = 1 << 30;

unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            eprintln!("unbounded allocation: {} bytes", layout.size());
            std::process::abort();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC {
            eprintln!("unbounded allocation: {new_size} bytes");
            std::process::abort();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Bounded = Bounded;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn load_corpus(target: &str) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    if let Ok(rd) = std::fs::read_dir(corpus_dir(target)) {
        let mut paths: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(b) = std::fs::read(&p) {
                out.push(b);
            }
        }
    }
    out
}

fn save_crash(target: &str, input: &[u8], why: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-crashes");
    let _ = std::fs::create_dir_all(&dir);
    let h = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let p = dir.join(format!("{target}-{why}-{h:016x}"));
    let _ = std::fs::write(&p, input);
    p
}

/// Runs one target for `secs`; returns the number of inputs, or the crash file.
fn run(t: &Target, secs: u64, hang: Duration, seed: u64) -> Result<u64, PathBuf> {
    let corpus = load_corpus(t.name);
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    let mut i = 0usize;
    loop {
        let input = if i < corpus.len() {
            corpus[i].clone()
        } else {
            let a = &corpus[rng.below(corpus.len())];
            let b = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, a, b)
        };
        i += 1;
        let started = Instant::now();
        let run = t.run;
        let outcome = std::panic::catch_unwind(|| run(&input));
        n += 1;
        if outcome.is_err() {
            return Err(save_crash(t.name, &input, "panic"));
        }
        if started.elapsed() > hang {
            eprintln!("{}: one input took {:?}", t.name, started.elapsed());
            return Err(save_crash(t.name, &input, "slow"));
        }
        if i >= corpus.len() && Instant::now() >= deadline {
            return Ok(n);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for t in TARGETS {
            println!("{}", t.name);
        }
        return;
    }
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let secs = flag("--secs", 10);
    let hang = Duration::from_millis(flag("--hang-ms", 2000));
    let seed = flag("--seed", 0x5eed);
    let which = args.first().map(String::as_str).unwrap_or("all");
    let targets: Vec<&Target> = if which == "all" {
        TARGETS.iter().collect()
    } else {
        match berth_fuzzing::target(which) {
            Some(t) => vec![t],
            None => {
                eprintln!("unknown target {which}; --list shows them");
                std::process::exit(2);
            }
        }
    };
    let mut failed = false;
    for t in targets {
        match run(t, secs, hang, seed) {
            Ok(n) => println!("{}: {n} inputs in {secs} s, no failure", t.name),
            Err(p) => {
                println!("{}: FAILED, input saved to {}", t.name, p.display());
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
