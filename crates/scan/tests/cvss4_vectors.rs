//! CVSS v4.0 scores of 500 vectors (300 base-only, 200 with threat and
//! environmental metrics) against the scores the FIRST calculator's
//! algorithm gives (`fixtures/cvss4/scores.tsv`, see its header).

use berth_scan::cvss4::cvss4_score;

#[test]
fn scores_match_the_calculator() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cvss4/scores.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((vector, score)) = line.split_once('\t') else {
            panic!("bad line {line:?}")
        };
        let want: f64 = score
            .parse()
            .unwrap_or_else(|_| panic!("bad score {score:?}"));
        let got = cvss4_score(vector);
        if got != Ok(want) {
            wrong.push(format!("{vector}: got {got:?}, want {want}"));
        }
        checked += 1;
    }
    assert_eq!(checked, 500);
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
