//! Specialists+1 (case study 2): the class sets from a confusion matrix, pinned specialists, the
//! stacked ensemble forward against K separate forwards, He et al.'s vote and its detector, the
//! system built from its spelling, and the targeted adaptive attack on it.

use advlab::attacks::{AttackTarget, CwParams, Goal, Silent};
use advlab::data::DatasetKind;
use advlab::defenses::specialists::{calibrate_vote, confusion_matrix, confusion_set, membership, specialist_sets, vote, vote_dataset};
use advlab::engine::Engine;
use advlab::inference::{argmax_rows, dataset_tensor, read_f32};
use advlab::models::ensemble::{decode_ensemble, encode_ensemble, ConfusionRecord, SpecialistRecord, VoteThreshold, PINNED_LOGIT};
use advlab::models::manifest::sha256_hex;
use advlab::models::{Classifier, ClassifierConfig, Ensemble, EnsembleManifest};
use advlab::samples::SamplePack;
use advlab::system::{DetectorSpec, VoteRule};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use std::path::PathBuf;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn block<T>(f: impl std::future::Future<Output = Result<T, String>>) -> T {
    pollster::block_on(f).unwrap()
}

fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    block(read_f32(t))
}

#[test]
fn confusion_sets_cover_eighty_percent_with_the_class_itself() {
    // Class 0's confusions: 6 to class 3, 3 to class 5, 1 to class 7 (10 in all; its 90
    // correct ones on the diagonal do not count). 3 covers 60%, 3+5 covers 90% >= 80%.
    let mut row = vec![0u64; 10];
    (row[0], row[3], row[5], row[7]) = (90, 6, 3, 1);
    assert_eq!(confusion_set(&row, 0, 0.8), vec![0, 3, 5]);
    // Exactly 80% stops there; ties go to the lower class.
    let mut row = vec![0u64; 10];
    (row[2], row[4], row[6], row[9]) = (4, 4, 1, 1);
    assert_eq!(confusion_set(&row, 1, 0.8), vec![1, 2, 4]);
    assert_eq!(confusion_set(&row, 1, 0.3), vec![1, 2]);
    // Never confused: the class alone.
    assert_eq!(confusion_set(&[5, 0, 0], 0, 0.8), vec![0]);
    // The matrix from labels and adversarial classes.
    let m = confusion_matrix(&[0, 0, 1, 2, 2, 2], &[0, 1, 1, 0, 0, 1], 3);
    assert_eq!(m, vec![vec![1, 1, 0], vec![0, 1, 0], vec![2, 1, 0]]);
    // Sets of a 4-class matrix: U_i, then complements, duplicates merged, single classes and
    // the full set left out.
    let m = vec![
        vec![9, 5, 0, 0], // U_0 = {0,1}, complement {2,3}
        vec![5, 9, 0, 0], // U_1 = {0,1} (duplicate), complement {2,3} (duplicate)
        vec![1, 1, 9, 8], // 8 of 10 to class 3: U_2 = {2,3}, complement {0,1}: duplicates
        vec![0, 0, 0, 9], // never confused: {3} (one class) left out, complement {0,1,2}
    ];
    assert_eq!(specialist_sets(&m, 0.8), vec![vec![0, 1], vec![2, 3], vec![0, 1, 2]]);
}

/// He et al.'s rule written directly from its description, on probabilities [K][C] of one
/// image: the winner and the mean confidence of its voters.
fn oracle(probs: &[Vec<f32>], sets: &[Vec<usize>]) -> (usize, f32) {
    let classes = probs[0].len();
    let pred: Vec<usize> = probs.iter().map(|p| argmax_rows(p, classes)[0]).collect();
    let unanimous = (0..classes).find(|&c| sets.iter().enumerate().filter(|(_, s)| s.contains(&c)).all(|(k, _)| pred[k] == c));
    let winner = unanimous.unwrap_or_else(|| {
        let votes: Vec<usize> = (0..classes).map(|c| pred.iter().filter(|&&p| p == c).count()).collect();
        let most = *votes.iter().max().unwrap();
        // Ties: the generalist's class if tied, else the lowest.
        if votes[pred[0]] == most { pred[0] } else { votes.iter().position(|&v| v == most).unwrap() }
    });
    let conf: Vec<f32> = (0..probs.len()).filter(|&k| pred[k] == winner).map(|k| probs[k][winner]).collect();
    (winner, conf.iter().sum::<f32>() / conf.len() as f32)
}

/// Probabilities of a member with a set: softmax over its classes of the given scores.
fn member_probs(scores: &[f32], set: &[usize]) -> Vec<f32> {
    let z: Vec<f32> = (0..scores.len()).map(|c| if set.contains(&c) { scores[c].exp() } else { 0.0 }).collect();
    let s: f32 = z.iter().sum();
    z.iter().map(|v| v / s).collect()
}

fn run_vote(images: &[Vec<Vec<f32>>], sets: &[Vec<usize>]) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let d = Device::flex();
    let (n, k, c) = (images.len(), sets.len(), images[0][0].len());
    let mut v = vec![0f32; k * n * c];
    for (i, img) in images.iter().enumerate() {
        for m in 0..k {
            v[(m * n + i) * c..(m * n + i + 1) * c].copy_from_slice(&img[m]);
        }
    }
    let out = vote(Tensor::from_data(TensorData::new(v, [k, n, c]), &d), membership(sets, c, &d));
    let logits = read(out.logits);
    (argmax_rows(&logits, c), read(out.confidence), read(softmax(Tensor::<2>::from_data(TensorData::new(logits, [n, c]), &d), 1)))
}

#[test]
fn the_vote_of_he_et_al_on_hand_made_members() {
    let sets = vec![vec![0, 1, 2, 3], vec![0, 1], vec![2, 3], vec![1, 2]];
    let p = |scores: [f32; 4], k: usize| member_probs(&scores, &sets[k]);
    // 1. Unanimous: every member holding class 1 (0, 1, 3) predicts 1; member 2 (without 1)
    // predicts 3. Class 1 wins with those three voting; confidence their mean p(1).
    let unanimous = vec![p([0.0, 3.0, 1.0, 0.0], 0), p([0.0, 2.0, 0.0, 0.0], 1), p([0.0, 0.0, 0.0, 1.0], 2), p([0.0, 1.0, 0.0, 0.0], 3)];
    // 2. No unanimity: member 0 predicts 3, member 1 predicts 0, members 2 and 3 predict 2
    // (class 2 is held by 0, 2, 3 and member 0 dissents; 3 by 0 and 2, and member 2 dissents).
    // All vote: class 2 has two votes of four.
    let majority = vec![p([0.0, 0.0, 1.0, 2.0], 0), p([1.0, 0.0, 0.0, 0.0], 1), p([0.0, 0.0, 2.0, 0.0], 2), p([0.0, 0.0, 1.0, 0.0], 3)];
    // 3. Unanimity beats a larger count: class 0 is held by members 0 and 1, both predict 0;
    // two members without 0 both vote 2.
    let sets3 = vec![vec![0, 1, 2], vec![0, 1], vec![1, 2], vec![1, 2]];
    let unan_small = vec![
        member_probs(&[2.0, 0.0, 1.9], &sets3[0]),
        member_probs(&[1.0, 0.0, 0.0], &sets3[1]),
        member_probs(&[0.0, 0.0, 1.0], &sets3[2]),
        member_probs(&[0.0, 0.0, 1.0], &sets3[3]),
    ];
    // 4. Ties. Each member votes for another class (1, 0, 3, 2), none unanimous: a four-way tie
    // goes to the generalist's class (1).
    let tie = vec![p([0.0, 1.0, 0.0, 0.0], 0), p([1.0, 0.0, 0.0, 0.0], 1), p([0.0, 0.0, 0.0, 1.0], 2), p([0.0, 0.0, 1.0, 0.0], 3)];
    let (w, conf, shares) = run_vote(&[unanimous.clone(), majority.clone(), tie], &sets);
    assert_eq!(w[0], 1);
    let want = (unanimous[0][1] + unanimous[1][1] + unanimous[3][1]) / 3.0;
    assert!((conf[0] - want).abs() < 1e-6, "{} vs {want}", conf[0]);
    assert!((shares[1] - 1.0).abs() < 1e-3, "the counted votes are all for 1: {:?}", &shares[..4]);
    assert_eq!(w[1], 2);
    assert!((conf[1] - (majority[2][2] + majority[3][2]) / 2.0).abs() < 1e-6);
    assert!((shares[4 + 2] - 0.5).abs() < 1e-3 && (shares[4] - 0.25).abs() < 1e-3, "vote shares {:?}", &shares[4..8]);
    assert_eq!(w[2], 1, "four-way tie: the generalist's class");
    let (w3, _, _) = run_vote(&[unan_small], &sets3);
    assert_eq!(w3[0], 0, "a unanimous class wins over one with more votes");
    // A 2-2 tie between 0 and 2 with the generalist voting 4: the lowest class (0).
    let sets5 = vec![(0..5).collect::<Vec<_>>(), vec![0, 1, 4], vec![0, 1], vec![2, 3, 4], vec![2, 3]];
    let tie_low: Vec<Vec<f32>> = [[0.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0]]
        .iter()
        .zip(&sets5)
        .map(|(z, s)| member_probs(z, s))
        .collect();
    assert_eq!(run_vote(&[tie_low.clone()], &sets5).0[0], 0);
    assert_eq!(oracle(&tie_low, &sets5).0, 0);
    // Against the oracle on many random members.
    let mut seed = 7u64;
    let mut rnd = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32) * 4.0
    };
    let sets = vec![(0..10).collect::<Vec<_>>(), vec![0, 3, 5], vec![1, 2, 4, 6, 7, 8, 9], vec![4, 9], vec![0, 1, 2, 3, 5, 6, 7, 8], vec![3, 5, 8]];
    let images: Vec<Vec<Vec<f32>>> = (0..300).map(|_| sets.iter().map(|s| member_probs(&(0..10).map(|_| rnd()).collect::<Vec<_>>(), s)).collect()).collect();
    let (w, conf, _) = run_vote(&images, &sets);
    for (i, img) in images.iter().enumerate() {
        let (ow, oc) = oracle(img, &sets);
        assert_eq!(w[i], ow, "image {i}");
        assert!((conf[i] - oc).abs() < 1e-5, "image {i}: {} vs {oc}", conf[i]);
    }
}

fn generalist() -> (Engine, Classifier) {
    let mut e = Engine::new(Device::flex());
    let g = e.models.load_from_dir(&models(), "mnist").unwrap().model.clone();
    (e, g)
}

fn pack() -> advlab::data::Dataset {
    let pack = SamplePack::parse(&std::fs::read_to_string(models().join("mnist-samples.json")).unwrap()).unwrap();
    pack.dataset(&std::fs::read(models().join(&pack.file)).unwrap()).unwrap()
}

fn pack_images(n: usize, d: &Device) -> (Tensor<4>, Vec<usize>) {
    let data = pack();
    (dataset_tensor(&data, 0, n, d), data.labels[..n].iter().map(|&l| l as usize).collect())
}

#[test]
fn pinned_specialists_and_the_stacked_forward_equal_separate_forwards() {
    let (e, g) = generalist();
    let d = e.device().clone();
    let (x, _) = pack_images(12, &d);
    let set = vec![1, 4, 7];
    let s = g.clone().pin_outside(&set);
    let (zg, zs) = (read(g.forward(x.clone())), read(s.forward(x.clone())));
    for i in 0..12 {
        for c in 0..10 {
            if set.contains(&c) {
                assert_eq!(zs[i * 10 + c], zg[i * 10 + c], "kept classes are the generalist's");
            } else {
                assert_eq!(zs[i * 10 + c], PINNED_LOGIT);
            }
        }
    }
    // Members with unrelated weights (two untrained nets, seeded) so that a mixed-up group
    // or a transposed block would show.
    d.seed(3);
    let config = ClassifierConfig::mnist();
    let (r1, r2) = (config.init(&d).pin_outside(&[0, 2, 3, 5, 8]), config.init(&d));
    let members = [&g, &s, &r1, &r2];
    let stacked = Ensemble::stack(&members);
    assert_eq!(stacked.members(), 4);
    let all = read(stacked.forward(x.clone()));
    for (k, m) in members.iter().enumerate() {
        let one = read(m.forward(x.clone()));
        let part = &all[k * 120..(k + 1) * 120];
        let worst = one.iter().zip(part).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "member {k}: max |difference| {worst}");
    }
    // The weights file round-trips; a file of other members is refused.
    let bytes = encode_ensemble(&Ensemble::stack(&[&s, &r1])).unwrap();
    let back = decode_ensemble(&config, 2, &bytes, &d).unwrap();
    let want = read(Ensemble::stack(&[&s, &r1]).forward(x.clone()));
    assert_eq!(read(back.forward(x)), want);
    assert!(decode_ensemble(&config, 3, &bytes, &d).is_err());
}

/// An ensemble manifest + weights of specialists made by pinning the generalist (no training:
/// the vote and the system are what is under test).
fn synthetic(e: &Engine, g: &Classifier, sets: &[Vec<usize>], min_confidence: f32) -> (EnsembleManifest, Vec<u8>) {
    let members: Vec<Classifier> = sets.iter().map(|s| g.clone().pin_outside(s)).collect();
    let refs: Vec<&Classifier> = members.iter().collect();
    let bytes = encode_ensemble(&Ensemble::stack(&refs)).unwrap();
    let gm = &e.generalist(DatasetKind::Mnist).unwrap().manifest;
    let record = |s: &Vec<usize>| SpecialistRecord { classes: s.clone(), test_accuracy: 0.0, test_images: 0, training_images: 0, epochs: 0, seconds: 0.0 };
    let manifest = EnsembleManifest {
        dataset: DatasetKind::Mnist,
        generalist: "mnist".into(),
        generalist_sha256: gm.sha256.clone(),
        weights: "mnist-specialists.safetensors".into(),
        sha256: sha256_hex(&bytes),
        bytes: bytes.len(),
        specialists: sets.iter().map(record).collect(),
        confusion: ConfusionRecord { matrix: vec![vec![0; 10]; 10], fgsm_epsilon: 0.2, images: 0, coverage: 0.8 },
        training: "pinned copies of the generalist (test)".into(),
        seconds: 0.0,
        detector: Some(VoteThreshold { min_confidence, false_positive_rate: 0.05, calibration_images: 0 }),
        vote_test_accuracy: None,
        timing: None,
    };
    (manifest, bytes)
}

#[test]
fn the_specialists_system_votes_flags_by_confidence_and_refuses_what_does_not_fit() {
    let (mut e, g) = generalist();
    let d = e.device().clone();
    assert!(e.system(DatasetKind::Mnist, "specialists").unwrap_err().contains("not loaded"));
    let sets = vec![vec![0, 2, 3, 5, 8], vec![1, 4, 6, 7, 9], vec![3, 5, 8], vec![4, 9]];
    let (manifest, bytes) = synthetic(&e, &g, &sets, 0.999);
    e.models.insert_ensemble(manifest.clone(), &bytes).unwrap();
    let spec = e.system(DatasetKind::Mnist, "specialists").unwrap();
    let member_sets = manifest.member_sets(10);
    assert_eq!(spec.vote, VoteRule::Specialists { sets: member_sets.clone() });
    assert_eq!(spec.classifiers[1].sha256, manifest.sha256);
    assert!(matches!(spec.detectors[..], [DetectorSpec::VoteConfidence { .. }]));
    assert_eq!(e.system(DatasetKind::Mnist, &serde_json::to_string(&spec).unwrap()).unwrap(), spec, "the description round-trips");
    assert!(e.system(DatasetKind::Mnist, "specialists+detector").unwrap_err().contains("system of its own"));
    let mut stale = spec.clone();
    stale.classifiers[1].sha256 = "00".repeat(32);
    assert!(stale.build(&e.models).err().unwrap().contains("other weights"));
    let mut other_sets = spec.clone();
    other_sets.vote = VoteRule::Specialists { sets: vec![(0..10).collect()] };
    assert!(other_sets.build(&e.models).err().unwrap().contains("other class sets"));

    let system = spec.build(&e.models).unwrap();
    let (x, _) = pack_images(40, &d);
    // The system's class is the oracle's winner on the members' probabilities; flags are
    // "mean confidence below the minimum".
    let probs = read(softmax(system.ensemble().unwrap().forward(x.clone()), 2));
    let classes = argmax_rows(&read(system.system_logits(x.clone())), 10);
    let flags: Vec<bool> = system.system_flags(x.clone()).unwrap().into_data().try_to_vec::<bool>().unwrap();
    let judged = block(system.judge(x.clone()));
    let k = member_sets.len();
    let mut flagged = 0;
    for i in 0..40 {
        let img: Vec<Vec<f32>> = (0..k).map(|m| probs[(m * 40 + i) * 10..(m * 40 + i + 1) * 10].to_vec()).collect();
        let (w, conf) = oracle(&img, &member_sets);
        assert_eq!(classes[i], w, "image {i}");
        assert_eq!(flags[i], conf < 0.999, "image {i}: confidence {conf}");
        assert_eq!((judged[i].predicted, judged[i].flagged), (w, flags[i]));
        assert!((judged[i].detectors[0].score - (1.0 - conf)).abs() < 1e-5);
        flagged += flags[i] as usize;
    }
    assert!(flagged > 0 && flagged < 40, "a threshold of 0.999 flags some benign images, not all: {flagged}");
    // The panel's report of one image agrees with the verdict.
    for i in [0usize, 7] {
        let r = block(advlab::defenses::specialists::report(system.vote().unwrap(), x.clone().slice([i..i + 1])));
        assert_eq!((r.winner, r.flagged), (judged[i].predicted, judged[i].flagged), "image {i}");
        assert_eq!(r.members.len(), k);
        let voters: Vec<&advlab::defenses::specialists::MemberVote> = r.members.iter().filter(|m| m.counted && m.vote == r.winner).collect();
        let mean = voters.iter().map(|m| m.confidence).sum::<f32>() / voters.len() as f32;
        assert!((mean - r.confidence).abs() < 1e-5, "image {i}: {r:?}");
        assert_eq!(r.unanimous, r.members.iter().all(|m| !m.classes.contains(&r.winner) || m.vote == r.winner));
    }
    // Calibration as `lab train specialists` runs it: the first half sets the minimum so that
    // at most 5% of it falls below, the second half measures the rate.
    let v = system.vote().unwrap();
    let held = pack().slice(0, 40);
    let t = block(calibrate_vote(v, &held, &d));
    let (winners, conf) = block(vote_dataset(v, &held, &d));
    assert_eq!(winners, classes);
    assert_eq!(t.calibration_images, 20);
    // Flagged as the detector flags: score 1 - confidence above 1 - the minimum.
    let below = |c: &f32| 1.0 - c > 1.0 - t.min_confidence;
    assert!(conf[..20].iter().filter(|c| below(c)).count() <= 1, "5% of 20: {t:?} {conf:?}");
    assert!(conf[..20].iter().any(|c| 1.0 - c == 1.0 - t.min_confidence), "the threshold is one of the fitted scores");
    let rate = conf[20..].iter().filter(|c| below(c)).count() as f64 / 20.0;
    assert!((t.false_positive_rate - rate).abs() < 1e-9, "{t:?} vs {rate}");
}

#[test]
fn the_targeted_adaptive_attack_makes_every_holder_vote_for_the_target() {
    let (mut e, g) = generalist();
    let d = e.device().clone();
    let sets = vec![vec![0, 2, 3, 5, 8], vec![1, 4, 6, 7, 9], vec![3, 5, 8], vec![4, 9], vec![0, 1, 2, 6, 7]];
    let (manifest, bytes) = synthetic(&e, &g, &sets, 0.9);
    e.models.insert_ensemble(manifest, &bytes).unwrap();
    let system = e.system(DatasetKind::Mnist, "specialists").unwrap().build(&e.models).unwrap();
    let (x, labels) = pack_images(3, &d);
    let targets: Vec<usize> = labels.iter().map(|l| (l + 3) % 10).collect();
    let goal = Goal::targeted(labels.clone(), targets.clone(), 10);
    let params = CwParams { steps: 150, binary_search_steps: 3, initial_const: 1.0, confidence: 5.0, learning_rate: 0.05, ..CwParams::default() };
    let out = block(advlab::attacks::cw::cw_l2(&system, x, &goal, &params, &mut Silent));
    assert!(out.success.iter().all(|s| *s), "{out:?}");
    let adv = advlab::inference::to_tensor(&out.images, advlab::data::ImageShape::MNIST, &d);
    let judged = block(system.judge(adv.clone()));
    let probs = read(softmax(system.ensemble().unwrap().forward(adv), 2));
    let member_sets: Vec<Vec<usize>> = std::iter::once((0..10).collect()).chain(sets).collect();
    for (i, j) in judged.iter().enumerate() {
        assert_eq!((j.predicted, j.flagged), (targets[i], false), "image {i}");
        // Unanimous: every member holding the target predicts it.
        for (m, s) in member_sets.iter().enumerate() {
            if s.contains(&targets[i]) {
                let row = &probs[(m * 3 + i) * 10..(m * 3 + i + 1) * 10];
                assert_eq!(argmax_rows(row, 10)[0], targets[i], "image {i}, member {m}");
            }
        }
    }
    eprintln!("adaptive C&W on Specialists+1: L2 {:?}", out.l2);
}

#[test]
fn training_the_specialists_resumes_and_publishes_pinned_members_the_model_set_accepts() {
    use advlab::data::Splits;
    use advlab::train::specialists::{publish_specialists, train_specialists, SpecialistOptions, SpecialistPaths};
    let (mut e, _) = generalist();
    let d = e.device().clone();
    let manifest = e.generalist(DatasetKind::Mnist).unwrap().manifest.clone();
    let bytes = std::fs::read(models().join(&manifest.weights)).unwrap();
    // The sample pack stands in for both splits (the pipeline is under test, not the figures).
    let splits = Splits { train: pack(), test: pack() };
    let dir = std::env::temp_dir().join(format!("advlab-specialists-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let paths = SpecialistPaths::under(&dir.join("checkpoints"), DatasetKind::Mnist);
    let options = SpecialistOptions { batch_size: 16, max_images: Some(16), ..SpecialistOptions::default() };
    let mut lines = Vec::new();
    let state = train_specialists((&manifest, &bytes), &splits, &options, &paths, &d, &mut |l| lines.push(l.to_string())).unwrap();
    let k = state.sets.len();
    assert!(k >= 2 && state.done.iter().all(|r| r.is_some()));
    assert_eq!(state.confusion.matrix.iter().flatten().sum::<u64>(), 100, "one FGSM example per training image");
    for (set, (record, _)) in state.sets.iter().zip(state.done.iter().flatten()) {
        assert_eq!(&record.classes, set);
        let of_set = splits.test.labels.iter().filter(|l| set.contains(&(**l as usize))).count();
        assert_eq!(record.training_images, of_set.min(16), "at most 16 of its classes' images");
        assert_eq!(record.test_images, of_set);
    }
    // Resumed: nothing is trained again; other sets settings are refused.
    let mut again = Vec::new();
    train_specialists((&manifest, &bytes), &splits, &options, &paths, &d, &mut |l| again.push(l.to_string())).unwrap();
    assert!(again.iter().all(|l| !l.starts_with("specialist ")), "{again:?}");
    assert!(again[0].contains(&format!("{k} of {k} specialists done")));
    let other = SpecialistOptions { coverage: 0.9, ..options.clone() };
    assert!(train_specialists((&manifest, &bytes), &splits, &other, &paths, &d, &mut |_| {}).unwrap_err().contains("other settings"));
    // Published: the model set stacks them behind the generalist, each pinned outside its set.
    let ens = publish_specialists(&dir, &manifest, &state, &paths, &d).unwrap();
    let weights = std::fs::read(dir.join(&ens.weights)).unwrap();
    let loaded = e.models.insert_ensemble(ens.clone(), &weights).unwrap();
    assert_eq!(loaded.model.members(), k + 1);
    let (x, _) = pack_images(4, &d);
    let z = read(loaded.model.forward(x));
    for (m, set) in ens.member_sets(10).iter().enumerate() {
        for i in 0..4 {
            for c in 0..10 {
                assert_eq!(z[(m * 4 + i) * 10 + c] == PINNED_LOGIT, !set.contains(&c), "member {m}, class {c}");
            }
        }
    }
    let mut tampered = weights.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(e.models.insert_ensemble(ens, &tampered).is_err(), "a changed weights file is refused");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_page_api_offers_the_ensemble_for_download_checks_it_and_reports_the_vote() {
    let (mut e, g) = generalist();
    // Before loading: offered, with the manifest the page downloads; nothing to build yet.
    let offered = e.presets(DatasetKind::Mnist).into_iter().find(|p| p.name == "specialists").expect("offered on MNIST");
    assert!(!offered.available);
    assert_eq!(offered.download.as_deref(), Some("mnist-specialists.json"));
    assert!(!e.presets(DatasetKind::Cifar10).iter().any(|p| p.name == "specialists"), "MNIST's case study only");
    let sets = vec![vec![0, 2, 3, 5, 8], vec![1, 4, 6, 7, 9], vec![3, 5, 8]];
    let (manifest, bytes) = synthetic(&e, &g, &sets, 0.99);
    let json = serde_json::to_string(&manifest).unwrap();
    // Corrupted weights, a manifest that is not one, an uncalibrated detector: clear refusals.
    let mut bad = bytes.clone();
    bad[100] ^= 1;
    assert!(e.load_specialists(&json, &bad).unwrap_err().contains("sha256"), "a corrupted file fails its hash");
    assert!(e.load_specialists("{", &bytes).unwrap_err().contains("not valid"));
    let mut uncalibrated = manifest.clone();
    uncalibrated.detector = None;
    assert!(e.load_specialists(&serde_json::to_string(&uncalibrated).unwrap(), &bytes).unwrap_err().contains("not calibrated"));
    assert!(e.vote_report(DatasetKind::Mnist, &[0.0; 784]).await_err().contains("not loaded"));
    e.load_specialists(&json, &bytes).unwrap();
    let loaded = e.presets(DatasetKind::Mnist).into_iter().find(|p| p.name == "specialists").unwrap();
    assert!(loaded.available && loaded.download.is_none() && loaded.reason.is_none());
    // The panel's report is the system's verdict; the judgement says the score reads as a confidence.
    let data = pack();
    let pixels: Vec<f32> = data.images[..784].iter().map(|&v| v as f32 / 255.0).collect();
    let pixels = &pixels[..];
    let r = block(e.vote_report(DatasetKind::Mnist, pixels));
    let (_, j) = block(e.judge(DatasetKind::Mnist, pixels, "specialists"));
    assert_eq!((r.winner, r.flagged), (j.predicted, j.flagged));
    assert_eq!(r.members.len(), sets.len() + 1);
    assert_eq!(j.detectors[0].shown_as, "confidence");
    assert!((1.0 - j.detectors[0].score - r.confidence).abs() < 1e-5);
    assert!(e.vote_report(DatasetKind::Mnist, &pixels[..10]).await_err().contains("expected 784"));
}

/// The error of a future that must fail.
trait AwaitErr {
    fn await_err(self) -> String;
}

impl<T, F: std::future::Future<Output = Result<T, String>>> AwaitErr for F {
    fn await_err(self) -> String {
        match pollster::block_on(self) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }
}
