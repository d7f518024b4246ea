//! Attack records: the detection rate of examples made on the bare model, the detectors'
//! readings per image, and their Markdown table (hand-made runs, checked by hand).

use advlab::attacks::{AttackOutput, CwParams, Goal};
use advlab::data::DatasetKind;
use advlab::evaluate::{AttackSpec, Evaluated, Reading};
use advlab::records::{report_markdown, summarise, Detection, RunInfo};
use advlab::system::{ClassifierRef, DetectorSpec, SystemSpec, VoteRule};

fn specialists() -> SystemSpec {
    let mut s = SystemSpec::bare(DatasetKind::Mnist, ClassifierRef { name: "mnist".into(), sha256: "ab".repeat(32) });
    s.name = "specialists".into();
    s.vote = VoteRule::Specialists { sets: vec![(0..10).collect()] };
    s.detectors.push(DetectorSpec::VoteConfidence { min_confidence: 0.999, ensemble_sha256: "cd".repeat(32), false_positive_rate: 0.05, calibration_images: 500 });
    s
}

/// Four images: the bare model's examples fool the bare model on images 0, 1 and 3; the vote
/// flags images 1 and 2; so the system is fooled on image 0 and 3 only, and 1 of the 3
/// examples that fooled the bare model is detected.
fn run() -> Evaluated {
    let reading = |flagged, conf: f32| Reading { flagged, scores: vec![1.0 - conf] };
    Evaluated {
        indices: vec![3, 5, 8, 13],
        goal: Goal::targeted(vec![1, 2, 3, 4], vec![7, 7, 7, 7], 10),
        output: AttackOutput {
            images: vec![0.0; 4 * 784],
            success: vec![true, false, false, true],
            l2: vec![1.0, 0.0, 0.0, 3.0],
            linf: vec![0.1, 0.0, 0.0, 0.3],
            predicted: vec![7, 7, 3, 7],
            cancelled: false,
        },
        rounded: vec![true, false, false, false],
        seconds: 2.0,
        readings: vec![reading(false, 0.9995), reading(true, 0.6), reading(true, 0.5), reading(false, 0.9999)],
        benign: vec![reading(false, 0.9991), reading(false, 0.9993), reading(false, 0.9995), reading(false, 0.9997)],
        made: Some(vec![true, true, false, true]),
    }
}

#[test]
fn a_non_adaptive_record_counts_what_the_detector_catches_of_what_fooled_the_bare_model() {
    let spec = AttackSpec::Cw(CwParams::default());
    let system = specialists();
    let info = RunInfo { dataset: "mnist", model: "mnist.safetensors + specialists", model_sha256: "ab", data: "test", system: &system, adaptive: false, targeted: true };
    let r = summarise(&info, &spec, &run());
    assert_eq!(r.detection, Some(Detection { made: 3, detected: 1 }));
    assert!((r.detection.unwrap().rate() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(r.success_rate, 0.5);
    assert_eq!(r.per_image[1].flagged, Some(true));
    assert_eq!(r.per_image[2].made_success, Some(false));
    assert!((r.per_image[0].scores[0] - 0.0005).abs() < 1e-6);
    assert!((r.per_image[3].benign_scores[0] - 0.0003).abs() < 1e-6);
    // The record round-trips through JSON (what `lab report` reads back).
    let back: advlab::records::AttackRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.detection, r.detection);
    assert_eq!(back.per_image, r.per_image);

    let md = report_markdown(&[r]);
    assert!(md.contains("### Detectors"), "{md}");
    let row = md.lines().find(|l| l.contains("33% (1 of 3)")).unwrap_or_else(|| panic!("no detection row in\n{md}"));
    // The vote-confidence detector reads as a confidence: threshold 0.999 (not 0.001); on the
    // examples that fooled the bare model (images 0, 1 and 3: 0.9995, 0.6, 0.9999) mean
    // 0.86647, on the benign originals 0.9994.
    assert!(row.contains("vote confidence (flagged below)"), "{row}");
    assert!(row.contains("| 0.99900 |"), "{row}");
    assert!(row.contains("| 0.86647 | 0.99940 |"), "{row}");
}

#[test]
fn adaptive_runs_and_systems_without_detectors_report_no_detection_rate() {
    let spec = AttackSpec::Cw(CwParams::default());
    let system = specialists();
    let mut adaptive = run();
    adaptive.made = None;
    let info = RunInfo { dataset: "mnist", model: "m", model_sha256: "ab", data: "test", system: &system, adaptive: true, targeted: true };
    let r = summarise(&info, &spec, &adaptive);
    assert_eq!(r.detection, None);
    assert_eq!(r.per_image[0].made_success, None);
    assert_eq!(r.per_image[1].flagged, Some(true), "readings are recorded all the same");
    let bare = SystemSpec::bare(DatasetKind::Mnist, ClassifierRef { name: "mnist".into(), sha256: "ab".repeat(32) });
    let mut plain = run();
    plain.readings = vec![Reading::default(); 4];
    plain.benign = vec![Reading::default(); 4];
    let info = RunInfo { system: &bare, adaptive: false, ..info };
    let r = summarise(&info, &spec, &plain);
    assert_eq!(r.detection, None);
    assert_eq!(r.per_image[0].flagged, None);
    assert!(r.per_image[0].scores.is_empty());
    assert!(!report_markdown(&[r]).contains("### Detectors"));
}
