//! Case study 3's detectors (Gong, Metzen, Feinman): their formulas on small hand-checked cases,
//! their networks' shapes, loading with its checks, the spelling of systems that combine them,
//! the one-forward adaptive loss against the detectors' own, and the engine's panel, on the
//! committed CIFAR-10 classifier with small detectors made here (the trained ones are checked
//! when they are committed).

use advlab::data::DatasetKind;
use advlab::defenses::detectors::{hinge, kde_log_density, logit_gap, predicted_mask};
use advlab::engine::Engine;
use advlab::inference::read_f32;
use advlab::models::detectors::{encode_module, encode_sample, DetectorKind, DetectorManifest, KdeSampleInfo, MetzenLayer, MetzenNet};
use advlab::models::manifest::sha256_hex;
use advlab::models::ClassifierConfig;
use advlab::system::{DetectorSpec, LearnedDetectorSpec};
use advlab::target::AttackTarget;
use burn::prelude::*;
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

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

fn t1(v: &[f32]) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
}

fn t2(v: &[f32], rows: usize) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v.to_vec(), [rows, v.len() / rows]), &Device::flex())
}

#[test]
fn logit_gap_hinge_and_predicted_mask() {
    // log-odds of "adversarial": z1 - z0.
    assert_eq!(read(logit_gap(t2(&[1.0, 3.0, 2.0, -1.0], 2))), vec![2.0, -3.0]);
    // max(score - (threshold - margin), 0) with threshold 1, margin 0.2: quiet by 0.5 -> 0;
    // 1.0 over -> 1.2; exactly at the threshold -> the margin.
    close(&read(hinge(t1(&[0.5, 2.0, 1.0, 0.8]), 1.0, 0.2)), &[0.0, 1.2, 0.2, 0.0], 1e-6);
    // One-hot rows at the largest logit.
    assert_eq!(read(predicted_mask(t2(&[1.0, 5.0, 2.0, 3.0, 0.0, -1.0], 2))), vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
}

/// Two classes, two sample points each, one dimension, 2 sigma^2 = 1:
/// class 0 at {0, 2}, class 1 at {10, 12}.
fn tiny_kde() -> (Tensor<2>, KdeSampleInfo) {
    let sigma = (0.5f32).sqrt();
    (t2(&[0.0, 2.0, 10.0, 12.0], 4), KdeSampleInfo { bandwidth: sigma, per_class: 2, classes: 2, dims: 1 })
}

#[test]
fn kernel_density_matches_the_formula_and_stays_finite() {
    let (sample, info) = tiny_kde();
    // log((1/k) sum exp(-(h - s)^2)) - (d/2) log(2 pi sigma^2), with 2 pi sigma^2 = pi.
    let norm = 0.5 * std::f32::consts::PI.ln();
    let class0 = t2(&[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], 3);
    let h = t2(&[1.0, 0.0, 100.0], 3);
    let got = read(kde_log_density(h, sample.clone(), class0, &info));
    let expected = [
        // h = 1: both at distance 1: log(e^-1) = -1.
        -1.0 - norm,
        // h = 0: distances 0 and 2: log((1 + e^-4) / 2).
        ((1.0 + (-4.0f32).exp()) / 2.0).ln() - norm,
        // h = 100: each kernel underflows in f32 (e^-9604), the log-sum-exp does not.
        -9604.0 + (1.0 + (-396.0f32).exp()).ln() - 2f32.ln() - norm,
    ];
    close(&got, &expected, 1e-5);
    // The mask picks the class: h = 11 under class 1 (distances 1, 1) is -1 - norm.
    close(&read(kde_log_density(t2(&[11.0], 1), sample, t2(&[0.0, 1.0], 1), &info)), &[-1.0 - norm], 1e-5);
}

#[test]
fn kernel_density_is_differentiable_through_the_kernel_sum() {
    let (sample, info) = tiny_kde();
    let device = Device::flex().autodiff();
    let h = Tensor::<2>::from_data(TensorData::new(vec![0.5f32], [1, 1]), &device).require_grad();
    let sample = Tensor::<2>::from_data(sample.into_data(), &device);
    let mask = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 2]), &device);
    let grads = kde_log_density(h.clone(), sample, mask, &info).sum().backward();
    let g = read(h.grad(&grads).unwrap().inner().reshape([1]))[0];
    // d/dh logsumexp(-(h)^2, -(h - 2)^2) at h = 0.5: the kernels' weights w_i times -2 (h - s_i):
    // w0 (-1) + w1 (3), w ~ softmax(-0.25, -2.25).
    let (a, b) = ((-0.25f32).exp(), (-2.25f32).exp());
    let expected = (-a + 3.0 * b) / (a + b);
    assert!((g - expected).abs() < 1e-4, "{g} vs {expected}");
}

#[test]
fn activations_of_one_forward_are_the_classifiers_layers() {
    let device = Device::flex();
    let config = ClassifierConfig::cifar10();
    let model = config.init(&device);
    let x = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Uniform(0.0, 1.0), &device);
    let acts = model.activations(x.clone());
    assert_eq!(acts.block1.dims(), [2, 64, 14, 14]);
    assert_eq!(acts.block2.dims(), [2, 128, 5, 5]);
    assert_eq!(acts.hidden.dims(), [2, 256]);
    close(&read(acts.logits.reshape([-1])), &read(model.forward(x.clone()).reshape([-1])), 1e-5);
    close(&read(acts.hidden.reshape([-1])), &read(model.hidden(x.clone()).reshape([-1])), 1e-5);
    // Metzen's subnetwork on either block gives two logits per image.
    for (layer, maps) in [(MetzenLayer::Block1, acts.block1.clone()), (MetzenLayer::Block2, acts.block2.clone())] {
        let net = MetzenNet::init(layer.channels(&config), &device);
        assert_eq!(net.forward(maps).dims(), [2, 2]);
    }
    // Gong's network: the same features, a fresh two-output head.
    let gong = config.init(&device).with_new_head(2, &device);
    assert_eq!(gong.forward(x).dims(), [2, 2]);
}

/// The committed CIFAR-10 classifier with three small detectors made here (random weights; a
/// sample of 3 per class from random hidden vectors), thresholds chosen by hand.
fn engine_with_detectors() -> (Engine, Vec<(String, Vec<u8>)>) {
    let mut e = Engine::new(Device::flex());
    e.models.load_from_dir(&models(), "cifar10").unwrap();
    e.load_squeeze(&std::fs::read_to_string(models().join("cifar10-squeeze.json")).unwrap()).unwrap();
    let sha = e.generalist(DatasetKind::Cifar10).unwrap().manifest.sha256.clone();
    let device = Device::flex();
    let config = ClassifierConfig::cifar10();
    let gong_config = ClassifierConfig { classes: 2, ..config.clone() };
    let files = vec![
        (DetectorKind::Gong, encode_module(&gong_config.init(&device)).unwrap()),
        (DetectorKind::Metzen, encode_module(&MetzenNet::init(128, &device)).unwrap()),
        (DetectorKind::Feinman, encode_sample(&(0..30 * 256).map(|i| ((i * 7919) % 100) as f32 / 50.0).collect::<Vec<_>>())),
    ];
    let mut out = Vec::new();
    for (kind, bytes) in files {
        let m = DetectorManifest {
            dataset: DatasetKind::Cifar10,
            kind,
            architecture: "test".into(),
            classifier: "cifar10".into(),
            classifier_sha256: sha.clone(),
            weights: format!("cifar10-{}.{}", kind.name(), if kind == DetectorKind::Feinman { "bin" } else { "safetensors" }),
            sha256: sha256_hex(&bytes),
            bytes: bytes.len(),
            gong: (kind == DetectorKind::Gong).then(|| gong_config.clone()),
            metzen_layer: (kind == DetectorKind::Metzen).then_some(MetzenLayer::Block2),
            kde: (kind == DetectorKind::Feinman).then(|| KdeSampleInfo { bandwidth: 0.26, per_class: 3, classes: 10, dims: 256 }),
            threshold: 0.0,
            margin: 0.1,
            false_positive_rate: 0.05,
            calibration_images: 10,
            false_positive_images: 10,
            training: serde_json::json!({}),
        };
        let json = m.to_json();
        e.load_detector(&json, &bytes).unwrap();
        out.push((json, bytes));
    }
    (e, out)
}

fn sample_images(n: usize) -> Vec<f32> {
    (0..n * 3 * 32 * 32).map(|i| ((i * 2654435761usize) % 256) as f32 / 255.0).collect()
}

#[test]
fn spelling_combines_the_detectors_and_refuses_what_it_cannot_build() {
    let (e, _) = engine_with_detectors();
    let spec = e.system(DatasetKind::Cifar10, "detector+gong+metzen+feinman").unwrap();
    assert_eq!(spec.name, "detector+gong+metzen+feinman");
    let kinds: Vec<Option<DetectorKind>> = spec.detectors.iter().map(|d| d.as_learned().map(|(k, _)| k)).collect();
    assert_eq!(kinds, vec![None, Some(DetectorKind::Gong), Some(DetectorKind::Metzen), Some(DetectorKind::Feinman)]);
    // A description is data: its JSON names the kind and is accepted back.
    let json = serde_json::to_string(&spec).unwrap();
    assert!(json.contains(r#""kind":"feinman""#), "{json}");
    assert_eq!(e.system(DatasetKind::Cifar10, &json).unwrap(), spec);
    spec.build(&e.models).unwrap();
    let err = |s: &str| e.system(DatasetKind::Cifar10, s).unwrap_err();
    assert!(err("gong+gong").contains("appears twice"), "{}", err("gong+gong"));
    assert!(err("gong+kde").contains("unknown defense 'kde'"), "{}", err("gong+kde"));
    assert!(err("none+metzen").contains("cannot be combined"));
    // Not loaded: the message says how to get it.
    let mut bare = Engine::new(Device::flex());
    bare.models.load_from_dir(&models(), "cifar10").unwrap();
    let msg = bare.system(DatasetKind::Cifar10, "metzen").unwrap_err();
    assert!(msg.contains("not loaded") && msg.contains("lab train detector metzen"), "{msg}");
    // A description whose detector was trained on other classifier weights is refused when built.
    let mut other = spec.clone();
    if let DetectorSpec::Gong(s) = &mut other.detectors[1] {
        s.model_sha256 = "0".repeat(64);
    }
    assert!(other.build(&e.models).err().unwrap().contains("other weights of the classifier"));
    let mut stale = spec.clone();
    if let DetectorSpec::Feinman(LearnedDetectorSpec { sha256, .. }) = &mut stale.detectors[3] {
        *sha256 = "f".repeat(64);
    }
    assert!(stale.build(&e.models).err().unwrap().contains("other feinman detector weights"));
}

#[test]
fn loading_checks_the_files_against_their_manifests() {
    let (mut e, files) = engine_with_detectors();
    let (json, bytes) = &files[1];
    let mut corrupted = bytes.clone();
    corrupted[100] ^= 1;
    let msg = e.load_detector(json, &corrupted).unwrap_err();
    assert!(msg.contains("metzen") && msg.contains("corrupted or stale"), "{msg}");
    let msg = e.load_detector(json, &bytes[..bytes.len() / 2]).unwrap_err();
    assert!(msg.contains("corrupted or stale"), "{msg}");
    // A sample whose size does not fit its description (sha256 matching the wrong bytes).
    let (json, bytes) = &files[2];
    let mut m = DetectorManifest::parse(json).unwrap();
    m.kde.as_mut().unwrap().per_class = 4;
    let msg = e.load_detector(&m.to_json(), bytes).unwrap_err();
    assert!(msg.contains("KDE sample has"), "{msg}");
    // A manifest without its kind's settings, or not JSON at all.
    let mut m = DetectorManifest::parse(&files[0].0).unwrap();
    m.gong = None;
    assert!(e.load_detector(&m.to_json(), &files[0].1).unwrap_err().contains("settings are missing"));
    assert!(e.load_detector("{", &files[0].1).unwrap_err().contains("not valid"));
    // Trained on other classifier weights.
    let mut m = DetectorManifest::parse(&files[0].0).unwrap();
    m.classifier_sha256 = "0".repeat(64);
    assert!(e.load_detector(&m.to_json(), &files[0].1).unwrap_err().contains("other weights"));
    // Before the classifier: a clear order.
    let mut empty = Engine::new(Device::flex());
    assert!(empty.load_detector(&files[0].0, &files[0].1).unwrap_err().contains("load the cifar10 model before"));
}

#[test]
fn one_forward_feeds_every_detector_and_the_ensemble_flags_when_any_does() {
    let (e, _) = engine_with_detectors();
    let pixels = sample_images(3);
    let x = e.tensor(DatasetKind::Cifar10, &pixels, 3).unwrap();
    let all = e.system(DatasetKind::Cifar10, "gong+metzen+feinman").unwrap().build(&e.models).unwrap();
    let parts: Vec<_> = ["gong", "metzen", "feinman"].iter().map(|p| e.system(DatasetKind::Cifar10, p).unwrap().build(&e.models).unwrap()).collect();
    // The OR of the parts' flags, and each score the same alone and in the ensemble (shared
    // activations against the detector's own forward).
    let flags: Vec<f32> = read(all.system_flags(x.clone()).unwrap().float());
    let mut any = vec![0.0f32; 3];
    for (k, p) in parts.iter().enumerate() {
        let f = read(p.system_flags(x.clone()).unwrap().float());
        any = any.iter().zip(&f).map(|(a, b)| a.max(*b)).collect();
        close(&read(p.detectors()[0].score(x.clone())), &read(all.detectors()[k].score(x.clone())), 1e-5);
    }
    assert_eq!(flags, any);
    // The adaptive loss with one shared forward equals the classifier's term plus each
    // detector's hinge computed on its own.
    let xg = x.clone().autodiff();
    let term = |logits: Tensor<2>| logits.narrow(1, 0, 1).reshape([-1]);
    let shared = read(all.attack_loss(xg.clone(), &term).inner());
    let logits = e.generalist(DatasetKind::Cifar10).unwrap().grad_model.forward(xg.clone());
    let mut separate = read(term(logits).inner());
    for d in all.detectors() {
        let h = read(d.adaptive_loss(xg.clone(), None, &term).inner());
        separate = separate.iter().zip(&h).map(|(a, b)| a + b).collect();
    }
    close(&shared, &separate, 1e-4);
    // The hinge is zero exactly where the detector is quiet with its margin to spare.
    for d in all.detectors() {
        let s = read(d.score(x.clone()));
        let h = read(d.adaptive_loss(xg.clone(), None, &term).inner());
        for (s, h) in s.iter().zip(&h) {
            assert!((*h == 0.0) == (*s <= d.threshold() - 0.1), "score {s}, hinge {h}");
        }
    }
}

#[test]
fn engine_panel_presets_and_downloads() {
    let (e, _) = engine_with_detectors();
    let pixels = sample_images(1);
    let r = block(e.detector_report(DatasetKind::Cifar10, &pixels, "detector+gong+metzen+feinman"));
    let names: Vec<&str> = r.detectors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["detector", "gong", "metzen", "feinman"]);
    assert_eq!(r.flagged, r.detectors.iter().any(|d| d.flagged));
    for d in &r.detectors {
        assert_eq!(d.flagged, d.score > d.threshold, "{d:?}");
    }
    assert!(r.detectors[3].label.contains("Feinman") && r.detectors[3].reading.contains("density"));
    assert_eq!(r.probs.len(), 10);
    assert!(block_err(e.detector_report(DatasetKind::Cifar10, &pixels, "none")).contains("no detector"));
    let presets = e.presets(DatasetKind::Cifar10);
    for name in ["gong", "metzen", "feinman", "gong+metzen+feinman", "detector+gong+metzen+feinman"] {
        let p = presets.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no preset {name}"));
        assert!(p.available, "{p:?}");
    }
    assert!(e.detector_presets(DatasetKind::Mnist).is_empty());
    // Without the files: the presets say they are downloaded, and which.
    let mut bare = Engine::new(Device::flex());
    bare.models.load_from_dir(&models(), "cifar10").unwrap();
    assert_eq!(bare.detector_downloads(DatasetKind::Cifar10, "detector+gong+feinman").unwrap(), ["cifar10-gong.json", "cifar10-feinman.json"]);
    assert!(bare.detector_downloads(DatasetKind::Cifar10, "gong+kde").is_err());
    let p = bare.detector_presets(DatasetKind::Cifar10);
    assert!(!p[3].available && p[3].reason.as_deref().unwrap().contains("cifar10-metzen.json"), "{:?}", p[3]);
}

fn block_err<T: std::fmt::Debug>(f: impl std::future::Future<Output = Result<T, String>>) -> String {
    pollster::block_on(f).unwrap_err()
}

#[test]
fn committed_detectors_load_and_flag_few_benign_samples() {
    let mut e = Engine::new(Device::flex());
    e.models.load_from_dir(&models(), "cifar10").unwrap();
    let sha = e.generalist(DatasetKind::Cifar10).unwrap().manifest.sha256.clone();
    for kind in DetectorKind::ALL {
        let d = e.models.load_detector_from_dir(&models(), DatasetKind::Cifar10, kind).unwrap();
        let m = &d.manifest;
        assert_eq!(m.classifier_sha256, sha);
        // Thresholds at 5% of benign held-out training images; the other half measured near it.
        assert!((0.0..=0.1).contains(&m.false_positive_rate), "{kind:?}: {}", m.false_positive_rate);
        assert!(m.calibration_images >= 100 && m.margin > 0.0);
    }
    // The sample pack (the first 100 test images, never used in training): the ensemble flags a
    // few of them (three detectors at ~5% each), not most.
    let pack = advlab::samples::SamplePack::parse(&std::fs::read_to_string(models().join("cifar10-samples.json")).unwrap()).unwrap();
    let data = pack.dataset(&std::fs::read(models().join(&pack.file)).unwrap()).unwrap();
    let x = advlab::inference::dataset_tensor(&data, 0, data.len(), &Device::flex());
    let system = e.system(DatasetKind::Cifar10, "gong+metzen+feinman").unwrap().build(&e.models).unwrap();
    let flagged = read(system.system_flags(x).unwrap().float()).iter().sum::<f32>() / data.len() as f32;
    assert!(flagged < 0.35, "{flagged} of benign test images flagged");
}

#[test]
fn training_batches_keep_an_images_versions_together_and_ranges_do_not_overlap() {
    use advlab::train::detector::{BinaryData, DetectorOptions};
    use rand::SeedableRng;
    let shape = DatasetKind::Cifar10.shape();
    // Images 0..5 benign; adversarial versions of 0, 0 (CW and FGSM), 2, 4.
    let benign_images = [0, 1, 2, 3, 4];
    let adversarial_images = [0, 2, 4, 0];
    let data = BinaryData::new(vec![0.0; 5 * shape.len()], &benign_images, &vec![1.0; 4 * shape.len()], &adversarial_images, shape);
    assert_eq!(data.labels, vec![0, 0, 0, 0, 0, 1, 1, 1, 1]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let batches = data.batches(4, &mut rng);
    let mut seen: Vec<usize> = batches.concat();
    seen.sort_unstable();
    assert_eq!(seen, (0..9).collect::<Vec<_>>(), "every example once");
    for b in &batches {
        // Whole images: image 0's three examples (positions 0, 5, 8) share a batch.
        let has = |k: usize| b.contains(&k);
        assert_eq!(has(0), has(5));
        assert_eq!(has(0), has(8));
        assert_eq!(has(2), has(6));
        assert!(b.len() <= 4, "{batches:?}");
    }
    // Training, validation, threshold, false-positive and KDE images follow each other.
    let o = DetectorOptions { images: 1000, validation: 200, held_out: 1000, ..DetectorOptions::default() };
    assert_eq!((o.fit_range(), o.validation_range()), (0..800, 800..1000));
    assert_eq!((o.threshold_range(), o.false_positive_range(), o.kde_start()), (1000..1500, 1500..2000, 2000));
}
