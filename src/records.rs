//! Attack records that reproduce and can be checked by others: each names the weights' sha256,
//! the data source, the defended system's full description, every attack parameter and, per
//! image, the test index, label, target, success and L2; and the Markdown tables of
//! `lab report` (non-default parameters visible in each row).

use crate::evaluate::{AttackSpec, Evaluated};
use crate::system::{DetectorSpec, SystemSpec};

/// The figures of one attack run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AttackRecord {
    pub dataset: String,
    pub model: String,
    /// The system attacked, as spelled (`none`, `detector`, `bit-depth+median+detector`, ...).
    #[serde(default = "bare_system")]
    pub defense: String,
    /// The system's full description (classifiers with their weights' sha256, preprocessing,
    /// detectors with their thresholds); absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemSpec>,
    /// sha256 of the attacked classifier's weights.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_sha256: String,
    /// Where the images came from (the data set's directory, or the sample pack).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// How the images were chosen.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Aimed at the defense itself (He et al.), or made on the bare model and judged by it.
    #[serde(default)]
    pub adaptive: bool,
    pub attack: AttackSpec,
    pub targeted: bool,
    pub images: usize,
    pub success_rate: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub mean_l2: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub median_l2: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub mean_linf: f64,
    /// Fraction of all images whose 8-bit rounded example still fools the system.
    pub rounded_success_rate: f64,
    pub seconds: f64,
    /// Non-adaptive runs on a system with detectors: of the examples that fooled the bare model
    /// (`made`), how many the system flags (`detected`), as the detectors' authors report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
    /// Per image: enough for another implementation to attack the same images with the same
    /// targets and compare.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_image: Vec<ImageResult>,
}

/// One image of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageResult {
    /// Index in the test split.
    pub index: usize,
    pub label: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<usize>,
    pub success: bool,
    /// Distance of the returned example (0 where the attack failed).
    pub l2: f32,
    /// The system's class for the returned example.
    pub predicted: usize,
    /// Systems with detectors: whether any flags the returned example, and each detector's
    /// score on it and on the benign original (in the order of `system.detectors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub benign_scores: Vec<f32>,
    /// Non-adaptive runs: whether the example made on the bare model fooled the bare model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_success: Option<bool>,
}

/// A detection rate: `detected` of `made` examples.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    pub made: usize,
    pub detected: usize,
}

impl Detection {
    pub fn rate(&self) -> f64 {
        if self.made == 0 { f64::NAN } else { self.detected as f64 / self.made as f64 }
    }
}

/// JSON has no NaN: serde_json writes a distortion over no success as null; read it back as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn bare_system() -> String {
    "none".into()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.len() % 2 == 1 { s[s.len() / 2] } else { (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0 }
}

/// Where a record's images came from and which system it measured.
pub struct RunInfo<'a> {
    pub dataset: &'a str,
    /// How the table names the system.
    pub model: &'a str,
    pub model_sha256: &'a str,
    pub data: &'a str,
    pub system: &'a SystemSpec,
    pub adaptive: bool,
    pub targeted: bool,
}

/// The protocol every record of `lab attack` follows.
pub const PROTOCOL: &str = "first N test images the system classifies correctly and does not flag";

/// Summarises one system's evaluation into a record.
pub fn summarise(info: &RunInfo, spec: &AttackSpec, run: &Evaluated) -> AttackRecord {
    let out = &run.output;
    let pick = |v: &[f32]| -> Vec<f64> { v.iter().zip(&out.success).filter(|(_, s)| **s).map(|(x, _)| *x as f64).collect() };
    let l2 = pick(&out.l2);
    let li = pick(&out.linf);
    let n = out.success.len().max(1) as f64;
    let has_detectors = !info.system.detectors.is_empty();
    let per_image = run
        .indices
        .iter()
        .enumerate()
        .map(|(k, &index)| ImageResult {
            index,
            label: run.goal.labels[k],
            target: run.goal.targets.as_ref().map(|t| t[k]),
            success: out.success[k],
            l2: out.l2[k],
            predicted: out.predicted[k],
            flagged: has_detectors.then(|| run.readings[k].flagged),
            scores: run.readings.get(k).map(|r| r.scores.clone()).unwrap_or_default(),
            benign_scores: run.benign.get(k).map(|r| r.scores.clone()).unwrap_or_default(),
            made_success: run.made.as_ref().map(|m| m[k]),
        })
        .collect();
    let detection = match (&run.made, has_detectors) {
        (Some(made), true) => Some(Detection {
            made: made.iter().filter(|m| **m).count(),
            detected: made.iter().zip(&run.readings).filter(|(m, r)| **m && r.flagged).count(),
        }),
        _ => None,
    };
    AttackRecord {
        dataset: info.dataset.into(),
        model: info.model.into(),
        defense: info.system.name.clone(),
        system: Some(info.system.clone()),
        model_sha256: info.model_sha256.into(),
        data: info.data.into(),
        protocol: PROTOCOL.into(),
        adaptive: info.adaptive && !info.system.is_bare(),
        attack: spec.clone(),
        targeted: info.targeted,
        images: out.success.len(),
        success_rate: out.success.iter().filter(|s| **s).count() as f64 / n,
        mean_l2: mean(&l2),
        median_l2: median(&l2),
        mean_linf: mean(&li),
        rounded_success_rate: run.rounded.iter().filter(|s| **s).count() as f64 / n,
        seconds: run.seconds,
        detection,
        per_image,
    }
}

/// Reads JSON-lines records (`lab attack --json`), naming the line of a bad one.
pub fn parse_records(text: &str, source: &str) -> Result<Vec<AttackRecord>, String> {
    let mut all = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        all.push(serde_json::from_str(line).map_err(|e| format!("{source}:{}: not an attack record: {e}", i + 1))?);
    }
    Ok(all)
}


/// A Markdown table: a header row, its rule, and one row per entry.
fn markdown_table(columns: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut md = line(&columns.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    md += &format!("|{}|\n", vec!["---"; columns.len()].join("|"));
    for r in rows {
        md += &line(r);
    }
    md
}

/// The records as Markdown: every run, then the adaptive attacks next to the bare model.
pub fn report_markdown(all: &[AttackRecord]) -> String {
    let dist = |v: f64| if v.is_finite() { format!("{v:.3}") } else { "-".into() };
    let pct = |v: f64| format!("{:.0}%", 100.0 * v);
    let goal = |t: bool| if t { "targeted (random other class)" } else { "untargeted" }.to_string();
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|r| {
            vec![
                r.dataset.clone(),
                r.model.clone(),
                r.attack.name(),
                goal(r.targeted),
                r.images.to_string(),
                pct(r.success_rate),
                dist(r.mean_l2),
                dist(r.median_l2),
                dist(r.mean_linf),
                pct(r.rounded_success_rate),
                format!("{:.0} s", r.seconds),
            ]
        })
        .collect();
    let mut md = markdown_table(
        &["data set", "system", "attack", "goal", "images", "success", "mean L2", "median L2", "mean L-inf", "still adversarial as 8-bit PNG", "time"],
        &rows,
    );
    md += &detection_markdown(all);
    let adaptive: Vec<&AttackRecord> = all.iter().filter(|r| r.adaptive).collect();
    if adaptive.is_empty() {
        return md;
    }
    let rows: Vec<Vec<String>> = adaptive
        .iter()
        .map(|r| {
            // The baseline: the same attack and goal on the bare model, with the same budget when
            // there is such a run (restarts aside: they only rerun failures), else the last one.
            let bare: Vec<&AttackRecord> = all
                .iter()
                .filter(|b| b.dataset == r.dataset && b.defense == "none" && b.targeted == r.targeted && std::mem::discriminant(&b.attack) == std::mem::discriminant(&r.attack))
                .collect();
            let base = bare.iter().rev().find(|b| same_budget(&b.attack, &r.attack)).or(bare.last());
            let (base_l2, change) = match base {
                Some(b) if b.mean_l2.is_finite() && r.mean_l2.is_finite() => (dist(b.mean_l2), format!("{:+.0}%", 100.0 * (r.mean_l2 / b.mean_l2 - 1.0))),
                Some(b) => (dist(b.mean_l2), "-".into()),
                None => ("-".into(), "-".into()),
            };
            // An ensemble against the strongest of its parts (the one that took the largest mean
            // L2 to break adaptively), as He et al. compare them.
            let part = all
                .iter()
                .filter(|p| p.dataset == r.dataset && p.adaptive && p.targeted == r.targeted && ensemble_parts(&r.defense).contains(&p.defense.as_str()) && p.mean_l2.is_finite())
                .max_by(|a, b| a.mean_l2.total_cmp(&b.mean_l2));
            let (part_l2, part_change) = match part {
                Some(p) if r.mean_l2.is_finite() => (format!("{} ({})", dist(p.mean_l2), p.defense), format!("{:+.0}%", 100.0 * (r.mean_l2 / p.mean_l2 - 1.0))),
                _ => ("-".into(), "-".into()),
            };
            vec![
                r.dataset.clone(),
                r.defense.clone(),
                r.attack.name(),
                goal(r.targeted),
                r.images.to_string(),
                pct(r.success_rate),
                dist(r.mean_l2),
                base_l2,
                change,
                part_l2,
                part_change,
                paper_figure(&r.dataset, &r.defense).to_string(),
            ]
        })
        .collect();
    md += "\n### Adaptive attacks (He et al.) next to the same attack on the bare model\n\n";
    md += &markdown_table(
        &["data set", "defense", "attack", "goal", "images", "success", "mean L2", "bare model's mean L2", "change", "strongest part's mean L2", "change", "He et al."],
        &rows,
    );
    md
}

/// What the detectors of each run read: for non-adaptive runs the detection rate (of the
/// examples that fooled the bare model, the share the system flags), and for every run each
/// detector's mean reading on the adversarial examples (non-adaptive: all that fooled the bare
/// model; adaptive: the successful ones) next to the benign originals. The vote-confidence detector of Specialists+1 reads as a confidence (1 - score).
fn detection_markdown(all: &[AttackRecord]) -> String {
    let with: Vec<(&AttackRecord, &SystemSpec)> = all.iter().filter_map(|r| r.system.as_ref().filter(|s| !s.detectors.is_empty()).map(|s| (r, s))).collect();
    if with.is_empty() {
        return String::new();
    }
    let mean = |v: Vec<f64>| if v.is_empty() { "-".to_string() } else { format!("{:.5}", v.iter().sum::<f64>() / v.len() as f64) };
    let mut rows = Vec::new();
    for (r, s) in &with {
        for (d, spec) in s.detectors.iter().enumerate() {
            let read = |x: f32| if matches!(spec, DetectorSpec::VoteConfidence { .. }) { 1.0 - x as f64 } else { x as f64 };
            // The adversarial examples: for a non-adaptive run every example that fooled the bare
            // model (those the detector is there to catch, flagged or not), else the successful ones.
            let adversarial = |i: &&ImageResult| i.made_success.unwrap_or(i.success);
            let adv: Vec<f64> = r.per_image.iter().filter(adversarial).filter_map(|i| i.scores.get(d)).map(|&x| read(x)).collect();
            let benign: Vec<f64> = r.per_image.iter().filter_map(|i| i.benign_scores.get(d)).map(|&x| read(x)).collect();
            let (rate, made) = match r.detection {
                Some(det) if d == 0 && det.made > 0 => (format!("{:.0}% ({} of {})", 100.0 * det.rate(), det.detected, det.made), det.made.to_string()),
                Some(det) if d == 0 => ("- (no example fooled the bare model)".into(), det.made.to_string()),
                _ => ("".into(), "".into()),
            };
            rows.push(vec![
                r.dataset.clone(),
                r.defense.clone(),
                format!("{}{}", r.attack.name(), if r.adaptive { " (adaptive)" } else { " (made on the bare model)" }),
                made,
                rate,
                spec.reading().to_string(),
                format!("{:.5}", read(spec.threshold())),
                mean(adv),
                mean(benign),
            ]);
        }
    }
    let mut md = "\n### Detectors: detection of the examples made on the bare model, and what each detector reads\n\n".to_string();
    md += &markdown_table(
        &["data set", "system", "attack", "examples that fool the bare model", "detected by the system", "detector reads", "threshold", "mean on adversarial examples", "mean on benign originals"],
        &rows,
    );
    md
}

/// The defenses an ensemble is made of: the parts of a composed system, and for Xu et al.'s
/// detector alone, the bit-depth and the median squeezers it combines.
fn ensemble_parts(defense: &str) -> Vec<&str> {
    match defense {
        "detector" => vec!["bit-depth", "median"],
        d if d.contains('+') => d.split('+').collect(),
        _ => vec![],
    }
}

fn same_budget(a: &AttackSpec, b: &AttackSpec) -> bool {
    match (a, b) {
        (AttackSpec::Cw(a), AttackSpec::Cw(b)) => {
            (a.steps, a.binary_search_steps, a.initial_const, a.learning_rate, a.confidence) == (b.steps, b.binary_search_steps, b.initial_const, b.learning_rate, b.confidence)
        }
        (a, b) => a.name() == b.name(),
    }
}

/// What He et al. (2017) report: for feature squeezing, adaptive attacks succeed on 99-100% and
/// breaking the ensemble takes +23% (MNIST) and -36% (CIFAR-10) mean L2 relative to its parts;
/// their targeted attack on Specialists+1 succeeds on 100% with +6% mean L2 over the generalist;
/// on the OR-ensemble of Gong's, Metzen's and Feinman's detectors, 100% with +60% mean L2.
fn paper_figure(dataset: &str, defense: &str) -> &'static str {
    match (dataset, defense) {
        ("mnist", "detector") => "99-100%, L2 +23%",
        ("cifar10", "detector") => "99-100%, L2 -36%",
        ("mnist", "specialists") => "100%, L2 +6%",
        ("cifar10", "gong+metzen+feinman") => "100%, L2 +60%",
        (_, "bit-depth" | "median") => "99-100%",
        _ => "",
    }
}

