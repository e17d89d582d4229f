//! Times lifecycle evaluation over 100,000 synthetic images:
//! `cargo run --release -p berth-lifecycle --example bench_100k [IMAGES]`.

use std::time::Instant;

use berth_lifecycle::{evaluate, preview, LifecyclePolicy};

#[path = "../tests/support/synthetic.rs"]
mod synthetic;

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let policy = match LifecyclePolicy::parse(synthetic::POLICY) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let images = synthetic::synthetic_images(n);
    let generated = start.elapsed();
    for run in 1..=5 {
        let start = Instant::now();
        let expired = evaluate(&policy, &images, synthetic::NOW).len();
        println!(
            "run {run}: evaluate {n} images, {} rules: {:.1} ms, {expired} expired",
            policy.rules().len(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    let start = Instant::now();
    let p = preview(&policy, &images, synthetic::NOW);
    println!(
        "preview: {:.1} ms, {} results (generating the images took {:.1} ms)",
        start.elapsed().as_secs_f64() * 1e3,
        p.summary.expiring_image_total_count,
        generated.as_secs_f64() * 1e3
    );
}
