//! CVSS v4.0 scores (FIRST, "Common Vulnerability Scoring System v4.0:
//! Specification Document", §8 "CVSS v4.0 Scoring": macro vectors from the
//! six equivalence sets EQ1–EQ6, the expert-ranked score of each macro
//! vector, and interpolation by the vector's severity distance from the
//! highest-severity vectors of its macro vector).
//!
//! The score is the one the specification's calculator gives for the
//! vector as written: base metrics, plus threat (`E`) and environmental
//! (`CR`/`IR`/`AR`, `M*`) metrics when present (CVSS-B, -BT, -BE, -BTE).
//! Supplemental metrics do not change it.

use std::collections::HashMap;

use crate::severity::CvssError;

/// Metric names and their allowed values; the first eleven are mandatory.
const METRICS: &[(&str, &[&str])] = &[
    ("AV", &["N", "A", "L", "P"]),
    ("AC", &["L", "H"]),
    ("AT", &["N", "P"]),
    ("PR", &["N", "L", "H"]),
    ("UI", &["N", "P", "A"]),
    ("VC", &["H", "L", "N"]),
    ("VI", &["H", "L", "N"]),
    ("VA", &["H", "L", "N"]),
    ("SC", &["H", "L", "N"]),
    ("SI", &["H", "L", "N"]),
    ("SA", &["H", "L", "N"]),
    ("E", &["X", "A", "P", "U"]),
    ("CR", &["X", "H", "M", "L"]),
    ("IR", &["X", "H", "M", "L"]),
    ("AR", &["X", "H", "M", "L"]),
    ("MAV", &["X", "N", "A", "L", "P"]),
    ("MAC", &["X", "L", "H"]),
    ("MAT", &["X", "N", "P"]),
    ("MPR", &["X", "N", "L", "H"]),
    ("MUI", &["X", "N", "P", "A"]),
    ("MVC", &["X", "H", "L", "N"]),
    ("MVI", &["X", "H", "L", "N"]),
    ("MVA", &["X", "H", "L", "N"]),
    ("MSC", &["X", "H", "L", "N"]),
    ("MSI", &["X", "S", "H", "L", "N"]),
    ("MSA", &["X", "S", "H", "L", "N"]),
    ("S", &["X", "N", "P"]),
    ("AU", &["X", "N", "Y"]),
    ("R", &["X", "A", "U", "I"]),
    ("V", &["X", "D", "C"]),
    ("RE", &["X", "L", "M", "H"]),
    ("U", &["X", "Clear", "Green", "Amber", "Red"]),
];

const MANDATORY: usize = 11;

/// The score of every macro vector (`eq1 eq2 eq3 eq4 eq5 eq6`), from the
/// specification's lookup table.
const LOOKUP: &[(&str, f64)] = &[
    ("000000", 10.0),
    ("000001", 9.9),
    ("000010", 9.8),
    ("000011", 9.5),
    ("000020", 9.5),
    ("000021", 9.2),
    ("000100", 10.0),
    ("000101", 9.6),
    ("000110", 9.3),
    ("000111", 8.7),
    ("000120", 9.1),
    ("000121", 8.1),
    ("000200", 9.3),
    ("000201", 9.0),
    ("000210", 8.9),
    ("000211", 8.0),
    ("000220", 8.1),
    ("000221", 6.8),
    ("001000", 9.8),
    ("001001", 9.5),
    ("001010", 9.5),
    ("001011", 9.2),
    ("001020", 9.0),
    ("001021", 8.4),
    ("001100", 9.3),
    ("001101", 9.2),
    ("001110", 8.9),
    ("001111", 8.1),
    ("001120", 8.1),
    ("001121", 6.5),
    ("001200", 8.8),
    ("001201", 8.0),
    ("001210", 7.8),
    ("001211", 7.0),
    ("001220", 6.9),
    ("001221", 4.8),
    ("002001", 9.2),
    ("002011", 8.2),
    ("002021", 7.2),
    ("002101", 7.9),
    ("002111", 6.9),
    ("002121", 5.0),
    ("002201", 6.9),
    ("002211", 5.5),
    ("002221", 2.7),
    ("010000", 9.9),
    ("010001", 9.7),
    ("010010", 9.5),
    ("010011", 9.2),
    ("010020", 9.2),
    ("010021", 8.5),
    ("010100", 9.5),
    ("010101", 9.1),
    ("010110", 9.0),
    ("010111", 8.3),
    ("010120", 8.4),
    ("010121", 7.1),
    ("010200", 9.2),
    ("010201", 8.1),
    ("010210", 8.2),
    ("010211", 7.1),
    ("010220", 7.2),
    ("010221", 5.3),
    ("011000", 9.5),
    ("011001", 9.3),
    ("011010", 9.2),
    ("011011", 8.5),
    ("011020", 8.5),
    ("011021", 7.3),
    ("011100", 9.2),
    ("011101", 8.2),
    ("011110", 8.0),
    ("011111", 7.2),
    ("011120", 7.0),
    ("011121", 5.9),
    ("011200", 8.4),
    ("011201", 7.0),
    ("011210", 7.1),
    ("011211", 5.2),
    ("011220", 5.0),
    ("011221", 3.0),
    ("012001", 8.6),
    ("012011", 7.5),
    ("012021", 5.2),
    ("012101", 7.1),
    ("012111", 5.2),
    ("012121", 2.9),
    ("012201", 6.3),
    ("012211", 2.9),
    ("012221", 1.7),
    ("100000", 9.8),
    ("100001", 9.5),
    ("100010", 9.4),
    ("100011", 8.7),
    ("100020", 9.1),
    ("100021", 8.1),
    ("100100", 9.4),
    ("100101", 8.9),
    ("100110", 8.6),
    ("100111", 7.4),
    ("100120", 7.7),
    ("100121", 6.4),
    ("100200", 8.7),
    ("100201", 7.5),
    ("100210", 7.4),
    ("100211", 6.3),
    ("100220", 6.3),
    ("100221", 4.9),
    ("101000", 9.4),
    ("101001", 8.9),
    ("101010", 8.8),
    ("101011", 7.7),
    ("101020", 7.6),
    ("101021", 6.7),
    ("101100", 8.6),
    ("101101", 7.6),
    ("101110", 7.4),
    ("101111", 5.8),
    ("101120", 5.9),
    ("101121", 5.0),
    ("101200", 7.2),
    ("101201", 5.7),
    ("101210", 5.7),
    ("101211", 5.2),
    ("101220", 5.2),
    ("101221", 2.5),
    ("102001", 8.3),
    ("102011", 7.0),
    ("102021", 5.4),
    ("102101", 6.5),
    ("102111", 5.8),
    ("102121", 2.6),
    ("102201", 5.3),
    ("102211", 2.1),
    ("102221", 1.3),
    ("110000", 9.5),
    ("110001", 9.0),
    ("110010", 8.8),
    ("110011", 7.6),
    ("110020", 7.6),
    ("110021", 7.0),
    ("110100", 9.0),
    ("110101", 7.7),
    ("110110", 7.5),
    ("110111", 6.2),
    ("110120", 6.1),
    ("110121", 5.3),
    ("110200", 7.7),
    ("110201", 6.6),
    ("110210", 6.8),
    ("110211", 5.9),
    ("110220", 5.2),
    ("110221", 3.0),
    ("111000", 8.9),
    ("111001", 7.8),
    ("111010", 7.6),
    ("111011", 6.7),
    ("111020", 6.2),
    ("111021", 5.8),
    ("111100", 7.4),
    ("111101", 5.9),
    ("111110", 5.7),
    ("111111", 5.7),
    ("111120", 4.7),
    ("111121", 2.3),
    ("111200", 6.1),
    ("111201", 5.2),
    ("111210", 5.7),
    ("111211", 2.9),
    ("111220", 2.4),
    ("111221", 1.6),
    ("112001", 7.1),
    ("112011", 5.9),
    ("112021", 3.0),
    ("112101", 5.8),
    ("112111", 2.6),
    ("112121", 1.5),
    ("112201", 2.3),
    ("112211", 1.3),
    ("112221", 0.6),
    ("200000", 9.3),
    ("200001", 8.7),
    ("200010", 8.6),
    ("200011", 7.2),
    ("200020", 7.5),
    ("200021", 5.8),
    ("200100", 8.6),
    ("200101", 7.4),
    ("200110", 7.4),
    ("200111", 6.1),
    ("200120", 5.6),
    ("200121", 3.4),
    ("200200", 7.0),
    ("200201", 5.4),
    ("200210", 5.2),
    ("200211", 4.0),
    ("200220", 4.0),
    ("200221", 2.2),
    ("201000", 8.5),
    ("201001", 7.5),
    ("201010", 7.4),
    ("201011", 5.5),
    ("201020", 6.2),
    ("201021", 5.1),
    ("201100", 7.2),
    ("201101", 5.7),
    ("201110", 5.5),
    ("201111", 4.1),
    ("201120", 4.6),
    ("201121", 1.9),
    ("201200", 5.3),
    ("201201", 3.6),
    ("201210", 3.4),
    ("201211", 1.9),
    ("201220", 1.9),
    ("201221", 0.8),
    ("202001", 6.4),
    ("202011", 5.1),
    ("202021", 2.0),
    ("202101", 4.7),
    ("202111", 2.1),
    ("202121", 1.1),
    ("202201", 2.4),
    ("202211", 0.9),
    ("202221", 0.4),
    ("210000", 8.8),
    ("210001", 7.5),
    ("210010", 7.3),
    ("210011", 5.3),
    ("210020", 6.0),
    ("210021", 5.0),
    ("210100", 7.3),
    ("210101", 5.5),
    ("210110", 5.9),
    ("210111", 4.0),
    ("210120", 4.1),
    ("210121", 2.0),
    ("210200", 5.4),
    ("210201", 4.3),
    ("210210", 4.5),
    ("210211", 2.2),
    ("210220", 2.0),
    ("210221", 1.1),
    ("211000", 7.5),
    ("211001", 5.5),
    ("211010", 5.8),
    ("211011", 4.5),
    ("211020", 4.0),
    ("211021", 2.1),
    ("211100", 6.1),
    ("211101", 5.1),
    ("211110", 4.8),
    ("211111", 1.8),
    ("211120", 2.0),
    ("211121", 0.9),
    ("211200", 4.6),
    ("211201", 1.8),
    ("211210", 1.7),
    ("211211", 0.7),
    ("211220", 0.8),
    ("211221", 0.2),
    ("212001", 5.3),
    ("212011", 2.4),
    ("212021", 1.4),
    ("212101", 2.4),
    ("212111", 1.2),
    ("212121", 0.5),
    ("212201", 1.0),
    ("212211", 0.3),
    ("212221", 0.1),
];

fn lookup(mv: &[u8; 6]) -> Option<f64> {
    let key: String = mv.iter().map(|d| char::from(b'0' + d)).collect();
    LOOKUP
        .binary_search_by(|(k, _)| (*k).cmp(key.as_str()))
        .ok()
        .map(|i| LOOKUP[i].1)
}

/// A parsed vector.
struct Vector<'a> {
    values: HashMap<&'a str, &'a str>,
}

impl<'a> Vector<'a> {
    fn parse(vector: &'a str) -> Result<Vector<'a>, CvssError> {
        let rest = vector
            .trim()
            .strip_prefix("CVSS:4.0/")
            .ok_or(CvssError::NotV3)?;
        let mut values = HashMap::new();
        for part in rest.split('/') {
            let bad = || CvssError::BadMetric(part.to_string());
            let (k, v) = part.split_once(':').ok_or_else(bad)?;
            let (_, allowed) = METRICS.iter().find(|(m, _)| *m == k).ok_or_else(bad)?;
            if !allowed.contains(&v) || values.insert(k, v).is_some() {
                return Err(bad());
            }
        }
        for (m, _) in &METRICS[..MANDATORY] {
            if !values.contains_key(m) {
                return Err(CvssError::BadMetric((*m).to_string()));
            }
        }
        Ok(Vector { values })
    }

    /// The effective value of a metric: its modified (`M…`) value when
    /// set, the worst case for an unset threat or requirement metric.
    fn m(&self, metric: &str) -> &str {
        let get = |k: &str| self.values.get(k).copied().unwrap_or("X");
        let selected = get(metric);
        match (metric, selected) {
            ("E", "X") => return "A",
            ("CR" | "IR" | "AR", "X") => return "H",
            _ => {}
        }
        let modified = get(&format!("M{metric}"));
        if modified != "X" {
            return modified;
        }
        selected
    }

    fn is(&self, metric: &str, value: &str) -> bool {
        self.m(metric) == value
    }

    fn macro_vector(&self) -> [u8; 6] {
        let (av_n, pr_n, ui_n) = (self.is("AV", "N"), self.is("PR", "N"), self.is("UI", "N"));
        let eq1 = if av_n && pr_n && ui_n {
            0
        } else if (av_n || pr_n || ui_n) && !self.is("AV", "P") {
            1
        } else {
            2
        };
        let eq2 = if self.is("AC", "L") && self.is("AT", "N") {
            0
        } else {
            1
        };
        let (vc_h, vi_h, va_h) = (self.is("VC", "H"), self.is("VI", "H"), self.is("VA", "H"));
        let eq3 = if vc_h && vi_h {
            0
        } else if vc_h || vi_h || va_h {
            1
        } else {
            2
        };
        let eq4 = if self.is("MSI", "S") || self.is("MSA", "S") {
            0
        } else if self.is("SC", "H") || self.is("SI", "H") || self.is("SA", "H") {
            1
        } else {
            2
        };
        let eq5 = match self.m("E") {
            "P" => 1,
            "U" => 2,
            _ => 0,
        };
        let eq6 = if (self.is("CR", "H") && vc_h)
            || (self.is("IR", "H") && vi_h)
            || (self.is("AR", "H") && va_h)
        {
            0
        } else {
            1
        };
        [eq1, eq2, eq3, eq4, eq5, eq6]
    }
}

/// Severity level of a metric value (0 is the most severe), in steps of
/// 0.1 as the specification's distance computation uses them.
fn level(metric: &str, value: &str) -> f64 {
    let order: &[&str] = match metric {
        "AV" => &["N", "A", "L", "P"],
        "PR" => &["N", "L", "H"],
        "UI" => &["N", "P", "A"],
        "AC" => &["L", "H"],
        "AT" => &["N", "P"],
        "VC" | "VI" | "VA" => &["H", "L", "N"],
        // SC has no `S`: its levels start one step down.
        "SC" => &["", "H", "L", "N"],
        "SI" | "SA" => &["S", "H", "L", "N"],
        "CR" | "IR" | "AR" => &["H", "M", "L"],
        _ => &[],
    };
    const STEPS: [f64; 5] = [0.0, 0.1, 0.2, 0.3, 0.4];
    order
        .iter()
        .position(|v| *v == value)
        .and_then(|i| STEPS.get(i).copied())
        .unwrap_or(0.0)
}

/// Highest-severity vectors of each equivalence class (the specification's
/// "max composed" table), as `metric:value` lists.
fn max_composed(eq: usize, class: u8, eq6: u8) -> &'static [&'static str] {
    match (eq, class, eq6) {
        (1, 0, _) => &["AV:N/PR:N/UI:N"],
        (1, 1, _) => &["AV:A/PR:N/UI:N", "AV:N/PR:L/UI:N", "AV:N/PR:N/UI:P"],
        (1, 2, _) => &["AV:P/PR:N/UI:N", "AV:A/PR:L/UI:P"],
        (2, 0, _) => &["AC:L/AT:N"],
        (2, 1, _) => &["AC:H/AT:N", "AC:L/AT:P"],
        (3, 0, 0) => &["VC:H/VI:H/VA:H/CR:H/IR:H/AR:H"],
        (3, 0, 1) => &[
            "VC:H/VI:H/VA:L/CR:M/IR:M/AR:H",
            "VC:H/VI:H/VA:H/CR:M/IR:M/AR:M",
        ],
        (3, 1, 0) => &[
            "VC:L/VI:H/VA:H/CR:H/IR:H/AR:H",
            "VC:H/VI:L/VA:H/CR:H/IR:H/AR:H",
        ],
        (3, 1, 1) => &[
            "VC:L/VI:H/VA:L/CR:H/IR:M/AR:H",
            "VC:L/VI:H/VA:H/CR:H/IR:M/AR:M",
            "VC:H/VI:L/VA:H/CR:M/IR:H/AR:M",
            "VC:H/VI:L/VA:L/CR:M/IR:H/AR:H",
            "VC:L/VI:L/VA:H/CR:H/IR:H/AR:M",
        ],
        (3, 2, _) => &["VC:L/VI:L/VA:L/CR:H/IR:H/AR:H"],
        (4, 0, _) => &["SC:H/SI:S/SA:S"],
        (4, 1, _) => &["SC:H/SI:H/SA:H"],
        (4, 2, _) => &["SC:L/SI:L/SA:L"],
        _ => &[],
    }
}

/// Depth (in 0.1 steps) of each equivalence class: the specification's
/// "max severity" table.
fn max_severity(eq: usize, class: u8, eq6: u8) -> f64 {
    let steps = match (eq, class, eq6) {
        (1, 0, _) => 1,
        (1, 1, _) => 4,
        (1, 2, _) => 5,
        (2, 0, _) => 1,
        (2, 1, _) => 2,
        (3, 0, 0) => 7,
        (3, 0, 1) => 6,
        (3, 1, _) => 8,
        (3, 2, _) => 10,
        (4, 0, _) => 6,
        (4, 1, _) => 5,
        (4, 2, _) => 4,
        _ => 1,
    };
    f64::from(steps) * 0.1
}

/// Round half up to one decimal, robust to float noise (the calculator adds
/// 10⁻⁶ before rounding).
fn round1(x: f64) -> f64 {
    ((x + 1e-6) * 10.0).round() / 10.0
}

/// Computes the CVSS v4.0 score of `vector`.
pub fn cvss4_score(vector: &str) -> Result<f64, CvssError> {
    let v = Vector::parse(vector)?;
    if ["VC", "VI", "VA", "SC", "SI", "SA"]
        .iter()
        .all(|m| v.is(m, "N"))
    {
        return Ok(0.0);
    }
    let mv = v.macro_vector();
    let value = lookup(&mv).ok_or_else(|| CvssError::BadMetric(vector.to_string()))?;
    let lower = |i: usize| {
        let mut n = mv;
        n[i] += 1;
        lookup(&n)
    };
    let [eq1, eq2, eq3, eq4, _eq5, eq6] = mv;
    let lower_eq3eq6 = match (eq3, eq6) {
        (0, 0) => {
            let mut left = mv;
            left[5] += 1;
            let mut right = mv;
            right[2] += 1;
            match (lookup(&left), lookup(&right)) {
                (Some(l), Some(r)) => Some(l.max(r)),
                _ => None,
            }
        }
        (1, 0) => lower(5),
        (0 | 1, 1) => lower(2),
        _ => {
            let mut n = mv;
            n[2] += 1;
            n[5] += 1;
            lookup(&n)
        }
    };
    // The first highest-severity vector that the vector does not exceed.
    let metrics = [
        "AV", "PR", "UI", "AC", "AT", "VC", "VI", "VA", "SC", "SI", "SA", "CR", "IR", "AR",
    ];
    let mut distances = [0f64; 14];
    'outer: for a in max_composed(1, eq1, 0) {
        for b in max_composed(2, eq2, 0) {
            for c in max_composed(3, eq3, eq6) {
                for d in max_composed(4, eq4, 0) {
                    let max: HashMap<&str, &str> = [*a, *b, *c, *d]
                        .iter()
                        .flat_map(|s| s.split('/'))
                        .filter_map(|p| p.split_once(':'))
                        .collect();
                    for (i, m) in metrics.iter().enumerate() {
                        let top = max.get(m).copied().unwrap_or("X");
                        distances[i] = level(m, v.m(m)) - level(m, top);
                    }
                    if distances.iter().all(|d| *d >= 0.0) {
                        break 'outer;
                    }
                }
            }
        }
    }
    // Summed in the calculator's order (float addition is not associative).
    let d = |idx: &[usize]| idx.iter().fold(0.0, |acc, &i| acc + distances[i]);
    let current = [
        d(&[0, 1, 2]),
        d(&[3, 4]),
        d(&[5, 6, 7, 11, 12, 13]),
        d(&[8, 9, 10]),
    ];
    let lowers = [lower(0), lower(1), lower_eq3eq6, lower(3), lower(4)];
    let depths = [
        max_severity(1, eq1, 0),
        max_severity(2, eq2, 0),
        max_severity(3, eq3, eq6),
        max_severity(4, eq4, 0),
    ];
    let mut n = 0u32;
    let mut total = 0.0;
    for (i, low) in lowers.iter().enumerate() {
        let Some(low) = low else { continue };
        let available = value - low;
        if available < 0.0 {
            continue;
        }
        n += 1;
        // EQ5 (exploit maturity) has no depth: it only counts.
        if i < 4 {
            total += available * (current[i] / depths[i]);
        }
    }
    let mean = if n == 0 { 0.0 } else { total / f64::from(n) };
    Ok(round1((value - mean).clamp(0.0, 10.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specification_examples() {
        for (v, want) in [
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3),
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H", 10.0),
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0.0),
            ("CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 8.5),
            ("CVSS:4.0/AV:N/AC:H/AT:P/PR:L/UI:P/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N", 2.1),
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N", 8.7),
            ("CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N", 1.0),
            ("CVSS:4.0/AV:A/AC:L/AT:N/PR:N/UI:P/VC:H/VI:L/VA:L/SC:L/SI:L/SA:N", 7.0),
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U", 6.3),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:P/CR:L/IR:L/AR:L",
                7.9,
            ),
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N/MSI:S/MSA:S", 9.1),
            ("CVSS:4.0/AV:L/AC:H/AT:N/PR:N/UI:P/VC:H/VI:H/VA:N/SC:N/SI:N/SA:N/MAV:N/MPR:L", 7.4),
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N", 6.9),
            (
                "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/S:P/AU:Y/R:A/V:C/RE:H/U:Red",
                9.2,
            ),
            ("CVSS:4.0/AV:L/AC:L/AT:N/PR:H/UI:N/VC:N/VI:N/VA:N/SC:H/SI:N/SA:N", 5.9),
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:L/VI:N/VA:N/SC:L/SI:L/SA:L", 5.1),
        ] {
            assert_eq!(cvss4_score(v), Ok(want), "{v}");
        }
    }

    #[test]
    fn bad_vectors() {
        for v in [
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/SA:N",
            "CVSS:4.0/AV:Q/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:S/SA:N",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/ZZ:X",
            "CVSS:4.0/",
        ] {
            assert!(cvss4_score(v).is_err(), "{v}");
        }
    }
}
