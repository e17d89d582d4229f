//! Every fuzz target over its committed corpus plus a fixed number of mutations of
//! it: a short, deterministic fuzz run that `cargo nextest` (and so CI) always does.
//! Longer runs: `berth-fuzz` (see `docs/fuzzing.md`).

use std::path::Path;

use berth_fuzzing::mutate::{mutate, Rng};
use berth_fuzzing::TARGETS;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn every_target_survives_its_corpus_and_mutations_of_it() {
    for t in TARGETS {
        let seeds = corpus(t.name);
        assert!(!seeds.is_empty(), "{}: the corpus has seeds", t.name);
        (t.run)(&[]);
        for s in &seeds {
            (t.run)(s);
        }
        let mut rng = Rng::new(0xb3a7);
        for i in 0..400 {
            let a = &seeds[i % seeds.len()];
            let b = &seeds[rng.below(seeds.len())];
            let input = mutate(&mut rng, a, b);
            (t.run)(&input);
        }
    }
}
