//! Defended systems as data (spelling, composition, verdicts), the attacks' one sign convention
//! against them, and the evaluation protocol (each system on its own images) with its records,
//! on the committed MNIST model, its calibration and its sample pack.

use advlab::attacks::gradient::{fgsm, pgd, FgsmParams, PgdParams};
use advlab::attacks::{AttackOutput, AttackSpec, CwParams, Goal, Silent};
use advlab::data::{Dataset, DatasetKind, ImageShape};
use advlab::defenses::squeeze::detector_score;
use advlab::engine::Engine;
use advlab::evaluate::{evaluate, first_accepted, targets_for, Plan};
use advlab::inference::{argmax_rows, dataset_tensor, read_f32, to_tensor};
use advlab::records::{parse_records, report_markdown, summarise, RunInfo};
use advlab::samples::SamplePack;
use advlab::system::{DefendedSystem, DetectorSpec};
use advlab::target::AttackTarget;
use burn::prelude::*;
use std::path::PathBuf;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The committed MNIST classifier with its feature-squeezing calibration, on the CPU.
fn engine() -> Engine {
    let mut e = Engine::new(Device::flex());
    e.models.load_from_dir(&models(), "mnist").unwrap();
    e.load_squeeze(&std::fs::read_to_string(models().join("mnist-squeeze.json")).unwrap()).unwrap();
    e
}

fn pack() -> Dataset {
    let pack = SamplePack::parse(&std::fs::read_to_string(models().join("mnist-samples.json")).unwrap()).unwrap();
    pack.dataset(&std::fs::read(models().join(&pack.file)).unwrap()).unwrap()
}

fn block<T>(f: impl std::future::Future<Output = Result<T, String>>) -> T {
    pollster::block_on(f).unwrap()
}

#[test]
fn spelling_composes_preprocessing_and_detectors() {
    let e = engine();
    let config = e.squeeze_config(DatasetKind::Mnist).unwrap().clone();
    let sha = e.generalist(DatasetKind::Mnist).unwrap().manifest.sha256.clone();
    let spec = e.system(DatasetKind::Mnist, "bit-depth+median+detector").unwrap();
    assert_eq!(spec.name, "bit-depth+median+detector");
    assert_eq!(spec.preprocess, vec![config.bit_depth, config.median], "in the order given");
    assert_eq!(spec.classifiers[0].sha256, sha);
    match &spec.detectors[..] {
        [DetectorSpec::FeatureSqueezing { squeezers, threshold, model_sha256, .. }] => {
            assert_eq!((squeezers, *threshold, model_sha256), (&config.squeezers, config.threshold, &sha));
        }
        other => panic!("{other:?}"),
    }
    // The description is data: it round-trips through JSON and is accepted as a spelling.
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(e.system(DatasetKind::Mnist, &json).unwrap(), spec);
    let bare = e.system(DatasetKind::Mnist, "none").unwrap();
    assert!(bare.is_bare() && bare.preprocess.is_empty() && bare.detectors.is_empty());
    assert_eq!(e.system(DatasetKind::Mnist, "").unwrap(), bare);
    for (bad, says) in [("bit-depth+jpeg", "unknown defense 'jpeg'"), ("median+median", "appears twice"), ("none+detector", "cannot be combined")] {
        let err = e.system(DatasetKind::Mnist, bad).unwrap_err();
        assert!(err.contains(says), "{bad}: {err}");
    }
    // Built against other weights than it names, or with a threshold calibrated on others: refused.
    let mut stale = spec.clone();
    stale.classifiers[0].sha256 = "00".repeat(32);
    assert!(stale.build(&e.models).err().unwrap().contains("other weights"));
    let mut stale = spec.clone();
    let DetectorSpec::FeatureSqueezing { model_sha256, .. } = &mut stale.detectors[0] else { panic!("the detector part is feature squeezing") };
    *model_sha256 = "11".repeat(32);
    assert!(stale.build(&e.models).err().unwrap().contains("calibrated on another model"));
    // The presets say what the page can offer.
    let presets = e.presets(DatasetKind::Mnist);
    assert!(presets.iter().any(|p| p.name == "bit-depth+median+detector" && p.available));
}

#[test]
fn a_composed_system_classifies_the_preprocessed_input_and_flags_by_its_detectors() {
    let e = engine();
    let data = pack();
    let d = e.device().clone();
    let model = &e.generalist(DatasetKind::Mnist).unwrap().model;
    let config = e.squeeze_config(DatasetKind::Mnist).unwrap().clone();
    let x = dataset_tensor(&data, 0, 8, &d);
    // Some images flagged, some not: half of them as FGSM examples made on the bare model
    // (the detector flags almost all of those).
    let bare = e.system(DatasetKind::Mnist, "none").unwrap().build(&e.models).unwrap();
    let goal = Goal::untargeted(data.labels[4..8].iter().map(|&l| l as usize).collect(), 10);
    let made = block(fgsm(&Iterate(&bare), x.clone().slice([4..8]), &goal, &FgsmParams { epsilon: 0.3 }, &mut Silent));
    let x = Tensor::cat(vec![x.slice([0..4]), to_tensor(&made.images, ImageShape::MNIST, &d)], 0);
    let spec = e.system(DatasetKind::Mnist, "median+detector").unwrap();
    let system = spec.build(&e.models).unwrap();
    let want = block(read_f32(model.forward(config.median.apply(x.clone()))));
    let got = block(read_f32(system.system_logits(x.clone())));
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
    let scores = block(read_f32(detector_score(model, x.clone(), &config.squeezers)));
    let flags: Vec<bool> = system.system_flags(x.clone()).unwrap().into_data().try_to_vec::<bool>().unwrap();
    assert_eq!(flags, scores.iter().map(|s| *s > config.threshold).collect::<Vec<_>>(), "the detector looks at the input itself");
    let judged = block(system.judge(x.clone()));
    let classes = argmax_rows(&want, 10);
    for (i, j) in judged.iter().enumerate() {
        assert_eq!(j.predicted, classes[i]);
        assert_eq!(j.flagged, flags[i]);
        assert!((j.detectors[0].score - scores[i]).abs() < 1e-5);
        assert!((j.probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
    assert!(flags.iter().any(|f| *f) && !flags.iter().all(|f| *f), "some flagged, some not: {scores:?}");
    // A system of preprocessing only flags nothing.
    assert!(e.system(DatasetKind::Mnist, "bit-depth+median").unwrap().build(&e.models).unwrap().system_flags(x).is_none());
}

/// A system whose verdict always counts as fooled (class 9 for inputs labelled otherwise), so
/// gradient-sign attacks return their last iterate whatever it is: the direction they moved.
struct Iterate<'a>(&'a DefendedSystem<'a>);

impl AttackTarget for Iterate<'_> {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.0.logits(x)
    }
    fn attack_loss(&self, x: Tensor<4>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        self.0.attack_loss(x, term)
    }
    fn system_logits(&self, x: Tensor<4>) -> Tensor<2> {
        let n = x.dims()[0];
        let mut v = vec![0f32; n * 10];
        (0..n).for_each(|i| v[i * 10 + 9] = 1.0);
        Tensor::from_data(TensorData::new(v, [n, 10]), &x.device())
    }
}

/// The first `n` pack images labelled other than 9 that `system` accepts.
fn accepted(system: &DefendedSystem, data: &Dataset, n: usize) -> Dataset {
    let chosen = block(first_accepted(system, data, data.len(), &system.device()));
    let chosen: Vec<usize> = chosen.into_iter().filter(|&i| data.labels[i] != 9).take(n).collect();
    data.select(&chosen)
}

#[test]
fn gradient_sign_attacks_lower_the_detector_penalty_they_are_given() {
    let e = engine();
    let d = e.device().clone();
    let detector = e.system(DatasetKind::Mnist, "detector").unwrap().build(&e.models).unwrap();
    let bare = e.system(DatasetKind::Mnist, "none").unwrap().build(&e.models).unwrap();
    let data = accepted(&detector, &pack(), 8);
    let x = dataset_tensor(&data, 0, data.len(), &d);
    let goal = Goal::untargeted(data.labels.iter().map(|&l| l as usize).collect(), 10);
    let config = e.squeeze_config(DatasetKind::Mnist).unwrap();
    let model = &e.generalist(DatasetKind::Mnist).unwrap().model;
    let score = |o: &AttackOutput| block(read_f32(detector_score(model, to_tensor(&o.images, ImageShape::MNIST, &d), &config.squeezers)));
    let flagged = |s: &[f32]| s.iter().filter(|v| **v > config.threshold).count();
    // PGD: once a squeezed view drifts away, the hinge is active and the adaptive steps must
    // descend it (they climbed it before the convention was fixed).
    let params = PgdParams { epsilon: 0.3, step_size: 0.02, steps: 20, random_start: false };
    let adaptive = block(pgd(&Iterate(&detector), x.clone(), &goal, &params, &mut Silent));
    let plain = block(pgd(&Iterate(&bare), x.clone(), &goal, &params, &mut Silent));
    let (sa, sp) = (score(&adaptive), score(&plain));
    eprintln!("PGD detector scores adaptive {sa:?}, non-adaptive {sp:?} (threshold {})", config.threshold);
    assert!(flagged(&sa) <= flagged(&sp), "adaptive PGD flagged {} vs {}", flagged(&sa), flagged(&sp));
    assert!(sa.iter().sum::<f32>() < sp.iter().sum::<f32>(), "adaptive PGD raised the detector's score");
    // FGSM: the same convention (a single step).
    let adaptive = block(fgsm(&Iterate(&detector), x.clone(), &goal, &FgsmParams { epsilon: 0.3 }, &mut Silent));
    let plain = block(fgsm(&Iterate(&bare), x, &goal, &FgsmParams { epsilon: 0.3 }, &mut Silent));
    assert!(flagged(&score(&adaptive)) <= flagged(&score(&plain)));
}

#[test]
fn adaptive_attacks_are_flagged_no_more_often_and_cw_fools_each_defense_at_least_as_often() {
    let e = engine();
    let d = e.device().clone();
    let bare = e.system(DatasetKind::Mnist, "none").unwrap().build(&e.models).unwrap();
    let attacks = [
        AttackSpec::Fgsm(FgsmParams { epsilon: 0.3 }),
        AttackSpec::Pgd(PgdParams { epsilon: 0.3, step_size: 0.02, steps: 20, random_start: false }),
        AttackSpec::Cw(CwParams { steps: 100, binary_search_steps: 2, initial_const: 1.0, learning_rate: 0.05, ..CwParams::default() }),
    ];
    for defense in ["bit-depth", "median", "detector", "bit-depth+detector"] {
        let system = e.system(DatasetKind::Mnist, defense).unwrap().build(&e.models).unwrap();
        let data = accepted(&system, &pack(), 6);
        let x = dataset_tensor(&data, 0, data.len(), &d);
        let goal = Goal::untargeted(data.labels.iter().map(|&l| l as usize).collect(), 10);
        for spec in &attacks {
            let made = block(spec.run(&bare, x.clone(), &goal, &mut Silent));
            let non_adaptive = block(advlab::attacks::judge(&system, made, &goal, ImageShape::MNIST, &d));
            let adaptive = block(spec.run(&system, x.clone(), &goal, &mut Silent));
            let flagged = |o: &AttackOutput| match system.system_flags(to_tensor(&o.images, ImageShape::MNIST, &d)) {
                Some(f) => f.into_data().try_to_vec::<bool>().unwrap().iter().filter(|f| **f).count(),
                None => 0,
            };
            let (na, ad) = (non_adaptive.success.iter().filter(|s| **s).count(), adaptive.success.iter().filter(|s| **s).count());
            eprintln!("{defense} {}: successes non-adaptive {na}, adaptive {ad}; flagged {} vs {}", spec.name(), flagged(&non_adaptive), flagged(&adaptive));
            // The examples an attack returns are flagged no more often when it aims at the
            // defense; C&W, which optimises through it, also fools it at least as often (a
            // single straight-through FGSM step need not).
            assert!(flagged(&adaptive) <= flagged(&non_adaptive), "{defense} {}", spec.name());
            if let AttackSpec::Cw(_) = spec {
                assert!(ad >= na, "{defense} {}: adaptive {ad} < non-adaptive {na}", spec.name());
            }
        }
    }
}

#[test]
fn each_system_is_evaluated_on_images_it_gets_right_and_does_not_flag() {
    let e = engine();
    let d = e.device().clone();
    let data = pack();
    let bare = e.system(DatasetKind::Mnist, "none").unwrap().build(&e.models).unwrap();
    let median = e.system(DatasetKind::Mnist, "median").unwrap().build(&e.models).unwrap();
    // The protocol: every image before the last chosen one that is left out, the system gets
    // wrong (or flags); every chosen one it gets right.
    let chosen_median = block(first_accepted(&median, &data, 30, &d));
    let judged = block(median.judge(dataset_tensor(&data, 0, data.len(), &d)));
    for i in 0..=*chosen_median.last().unwrap() {
        let right = judged[i].predicted == data.labels[i] as usize && !judged[i].flagged;
        assert_eq!(chosen_median.contains(&i), right, "image {i}");
    }
    // A detector that flags many benign images (its threshold lowered): the flagged ones are left
    // out even though the system classifies them correctly.
    let mut strict = e.system(DatasetKind::Mnist, "detector").unwrap();
    if let DetectorSpec::FeatureSqueezing { threshold, .. } = &mut strict.detectors[0] {
        *threshold = 0.002;
    }
    let strict = strict.build(&e.models).unwrap();
    let chosen_strict = block(first_accepted(&strict, &data, 30, &d));
    let judged = block(strict.judge(dataset_tensor(&data, 0, data.len(), &d)));
    let last = *chosen_strict.last().unwrap();
    assert!((0..=last).any(|i| judged[i].flagged && judged[i].predicted == data.labels[i] as usize), "some correctly classified images are flagged");
    for i in 0..=last {
        let right = judged[i].predicted == data.labels[i] as usize && !judged[i].flagged;
        assert_eq!(chosen_strict.contains(&i), right, "image {i}: flagged {}", judged[i].flagged);
    }
    let chosen_bare = block(first_accepted(&bare, &data, 30, &d));
    // Targets depend on the image, not on the batch it is in.
    let labels: Vec<usize> = chosen_bare.iter().map(|&i| data.labels[i] as usize).collect();
    let t = targets_for(&chosen_bare, &labels, 10, 7);
    assert!(t.iter().zip(&labels).all(|(t, l)| t != l));
    assert_eq!(targets_for(&chosen_bare[5..], &labels[5..], 10, 7), t[5..].to_vec());
    // A non-adaptive targeted FGSM: made once on the union of both systems' images, each
    // system judging its own, with a record per system that names every image.
    let spec = AttackSpec::Fgsm(FgsmParams { epsilon: 0.3 });
    let systems: Vec<&dyn AttackTarget> = vec![&bare, &median];
    let chosen = vec![chosen_bare.clone(), chosen_median.clone()];
    let plan = Plan { spec: &spec, systems: &systems, bare: &bare, adaptive: false, chosen: &chosen, targeted: true, seed: 7, classes: 10, batch_size: 7 };
    let runs = block(evaluate(&plan, &data, &mut |_| Silent, &d));
    assert_eq!(runs[0].indices, chosen_bare);
    assert_eq!(runs[1].indices, chosen_median);
    assert_eq!(runs[0].goal.targets.as_deref(), Some(&t[..]));
    let sha = &e.generalist(DatasetKind::Mnist).unwrap().manifest.sha256;
    let mut lines = String::new();
    for (system, run) in [&bare, &median].iter().zip(&runs) {
        let info = RunInfo { dataset: "mnist", model: &system.spec.name, model_sha256: sha, data: "sample pack", system: &system.spec, adaptive: false, targeted: true };
        let r = summarise(&info, &spec, run);
        assert_eq!(r.per_image.len(), run.indices.len());
        for (k, p) in r.per_image.iter().enumerate() {
            assert_eq!((p.index, p.label, p.target), (run.indices[k], data.labels[run.indices[k]] as usize, Some(run.goal.targets.as_ref().unwrap()[k])));
            assert_eq!(p.success, run.output.success[k]);
        }
        assert_eq!(r.system.as_ref().unwrap(), &system.spec);
        lines += &(serde_json::to_string(&r).unwrap() + "\n");
    }
    // Records read back, and the table names the attack.
    let back = parse_records(&lines, "test").unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[1].defense, "median");
    assert!(report_markdown(&back).contains("FGSM eps=0.3"));
}

#[test]
fn the_page_gets_its_attack_defaults_from_the_library() {
    let d = advlab::engine::attack_defaults(DatasetKind::Mnist);
    assert_eq!((d["cw"]["steps"].as_u64(), d["cw"]["binary_search_steps"].as_u64()), (Some(100), Some(3)));
    assert_eq!((d["cw"]["initial_const"].as_f64(), d["cw"]["learning_rate"].as_f64()), (Some(1.0), Some(0.05)));
    assert_eq!((d["pgd"]["steps"].as_u64(), d["pgd"]["epsilon"].as_f64()), (Some(40), Some(0.3f32 as f64)));
    assert_eq!(d["fgsm"]["epsilon"].as_f64(), Some(0.3f32 as f64));
    assert!(d["fgsm"].get("attack").is_none(), "keyed by attack, parameters only");
    // CIFAR-10's L-infinity budget is its own (8/255), and the command line keeps C&W's.
    let c = advlab::engine::attack_defaults(DatasetKind::Cifar10);
    assert!((c["fgsm"]["epsilon"].as_f64().unwrap() - 8.0 / 255.0).abs() < 1e-6);
    match &AttackSpec::defaults(DatasetKind::Mnist)[0] {
        AttackSpec::Cw(p) => assert_eq!((p.steps, p.binary_search_steps), (1000, 9)),
        other => panic!("{other:?}"),
    }
}
