//! The lifecycle engine's performance bar: evaluating a policy over 100,000 images in one repository
//! takes well under one second in a release build. Run with output to see the figures:
//! `cargo test --release -p berth-lifecycle --test perf_100k -- --nocapture`
//! (or `cargo run --release -p berth-lifecycle --example bench_100k`).

use std::time::{Duration, Instant};

use berth_lifecycle::{evaluate, preview, LifecyclePolicy};

#[path = "support/synthetic.rs"]
mod synthetic;

use synthetic::{synthetic_images, NOW, POLICY};

#[test]
fn evaluates_100k_images_well_under_a_second() {
    let policy = match LifecyclePolicy::parse(POLICY) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let images = synthetic_images(100_000);

    let mut best = Duration::MAX;
    let mut expired = 0;
    for _ in 0..3 {
        let start = Instant::now();
        expired = evaluate(&policy, &images, NOW).len();
        best = best.min(start.elapsed());
    }
    let start = Instant::now();
    let p = preview(&policy, &images, NOW);
    let preview_time = start.elapsed();
    assert_eq!(p.summary.expiring_image_total_count, expired as u64);

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "lifecycle: evaluate over 100000 images, 5 rules: {:.1} ms ({profile}, best of 3), \
         {expired} expired; preview {:.1} ms",
        best.as_secs_f64() * 1e3,
        preview_time.as_secs_f64() * 1e3
    );
    assert!(expired > 0 && expired < images.len());
    // The bar is a release-build figure; unoptimized test builds get head room.
    let limit = if cfg!(debug_assertions) {
        Duration::from_secs(10)
    } else {
        Duration::from_millis(500)
    };
    assert!(
        best < limit,
        "evaluate took {best:?} ({profile}), limit {limit:?}"
    );
}
