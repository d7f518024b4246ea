//! One detector of case study 3 from start to manifest: the adversarial examples (cached), the
//! training (Gong, Metzen) or the sample (Feinman), the threshold at 5% false positives on
//! benign held-out training images, the detection rate on held-out adversarial examples, and the
//! published file with its manifest.

use super::detector::{adversarial_examples, benign, fit, metzen_input, metzen_net, scores, write_atomic, Adversarial, BinaryData, DetectorOptions, NetCheckpoint};
use crate::data::Splits;
use crate::defenses::detectors::{FeinmanDetector, GongDetector, MetzenDetector};
use crate::defenses::squeeze::threshold_for_rate;
use crate::inference::{self, read_f32};
use crate::models::detectors::{encode_module, encode_sample, DetectorKind, DetectorManifest, KdeSampleInfo, MetzenLayer, MetzenNet};
use crate::models::manifest::{decode_weights, sha256_hex};
use crate::models::{Classifier, ClassifierConfig, ModelManifest, ModelSet};
use crate::target::Detector;
use burn::prelude::*;
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// A detector's threshold and what it gives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Calibration {
    pub threshold: f32,
    pub margin: f32,
    pub false_positive_rate: f64,
    pub calibration_images: usize,
    pub false_positive_images: usize,
    /// Share of the held-out adversarial examples (validation images) it flags, CW and FGSM.
    pub detection_cw: f64,
    pub detection_fgsm: f64,
    pub validation_cw: usize,
    pub validation_fgsm: usize,
}

fn median(v: &[f32]) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[s.len() / 2]
}

/// Sets the threshold at 5% false positives on the threshold half of the benign held-out
/// images, measures the rate on the other half and the detection of the validation images'
/// adversarial examples. `detector`'s own threshold is not read.
pub fn calibrate(detector: &dyn Detector, splits: &Splits, adv: &Adversarial, o: &DetectorOptions, device: &Device) -> Result<Calibration, String> {
    let shape = splits.train.shape;
    let fit_scores = scores(detector, &benign(&splits.train, o.threshold_range()), shape, device)?;
    let check = scores(detector, &benign(&splits.train, o.false_positive_range()), shape, device)?;
    if fit_scores.is_empty() || check.is_empty() {
        return Err("no benign held-out images to set the threshold on".into());
    }
    let threshold = threshold_for_rate(&fit_scores, 0.05);
    let above = |s: &[f32]| s.iter().filter(|v| **v > threshold).count();
    let (pixels, n_cw, n_fgsm) = adv.examples(o.validation_range());
    let adv_scores = scores(detector, &pixels, shape, device)?;
    let rate = |s: &[f32]| if s.is_empty() { f64::NAN } else { above(s) as f64 / s.len() as f64 };
    Ok(Calibration {
        threshold,
        // A tenth of the way back to a typical benign score (never 0: rounding would undo it).
        margin: (0.1 * (threshold - median(&fit_scores))).max(1e-3),
        false_positive_rate: rate(&check),
        calibration_images: fit_scores.len(),
        false_positive_images: check.len(),
        detection_cw: rate(&adv_scores[..n_cw]),
        detection_fgsm: rate(&adv_scores[n_cw..n_cw + n_fgsm]),
        validation_cw: n_cw,
        validation_fgsm: n_fgsm,
    })
}

/// Benign pixels of the training images of `range` the classifier gets right, and the examples
/// that fooled it there: what Gong's and Metzen's networks learn from.
fn binary_data(splits: &Splits, adv: &Adversarial, range: std::ops::Range<usize>) -> BinaryData {
    let kept: Vec<usize> = range.clone().filter(|&i| adv.clean_correct[i]).collect();
    let benign: Vec<f32> = kept.iter().flat_map(|&i| splits.train.image_f32(i)).collect();
    let (pixels, images, _) = adv.examples_of(range);
    BinaryData::new(benign, &kept, &pixels, &images, splits.train.shape)
}

/// What publishing needs: the file's bytes, its description, threshold and training record.
pub struct Trained {
    pub kind: DetectorKind,
    pub bytes: Vec<u8>,
    pub extension: &'static str,
    pub architecture: String,
    pub gong: Option<ClassifierConfig>,
    pub metzen_layer: Option<MetzenLayer>,
    pub kde: Option<KdeSampleInfo>,
    pub calibration: Calibration,
    pub training: serde_json::Value,
}

/// Trains (or resumes) one detector against the classifier `generalist` (its manifest and weights).
pub fn train_detector(kind: DetectorKind, generalist: (&ModelManifest, &[u8]), splits: &Splits, o: &DetectorOptions, checkpoints: &Path, device: &Device, log: &mut dyn FnMut(&str)) -> Result<Trained, String> {
    let (manifest, bytes) = generalist;
    let config = ClassifierConfig::for_dataset(manifest.dataset);
    if o.images <= o.validation || o.kde_start() + o.per_class_tried.iter().chain([&o.per_class]).max().copied().unwrap_or(0) * 10 > splits.train.len() {
        return Err(format!("{} training images cannot hold {} attacked + {} held-out images and the KDE pool", splits.train.len(), o.images, o.held_out));
    }
    let classifier = decode_weights(&config, bytes, device).map_err(|e| e.to_string())?;
    let train_device = device.clone().autodiff();
    let grad_classifier = decode_weights(&config, bytes, &train_device).map_err(|e| e.to_string())?.freeze();
    let cache = checkpoints.join(format!("{}-detectors", manifest.dataset.name()));
    let adv = adversarial_examples(&classifier, &grad_classifier, &manifest.sha256, &splits.train, o, &cache, device, log)?;
    let (cw_rate, fgsm_rate) = adv.success_rates();
    let (_, fit_cw, fit_fgsm) = adv.examples(o.fit_range());
    let adversarial = json!({
        "attacked_training_images": o.images,
        "correctly_classified": adv.clean_correct.iter().filter(|c| **c).count(),
        "cw": format!("CW-L2 untargeted, one round of {} Adam steps at c = {}, learning rate {}", o.cw_steps, o.cw_const, o.cw_learning_rate),
        "fgsm": format!("FGSM untargeted, epsilon {}", o.fgsm_epsilon),
        "cw_success_rate": cw_rate,
        "fgsm_success_rate": fgsm_rate,
        "seconds": adv.seconds,
        "detector_training_examples": { "images": o.fit_range().len(), "cw": fit_cw, "fgsm": fit_fgsm },
    });
    let state_path = |name: &str| checkpoints.join(format!("{}-{name}-state.json", manifest.dataset.name()));
    let start = Instant::now();
    let trained = match kind {
        DetectorKind::Gong => {
            let data = binary_data(splits, &adv, o.fit_range());
            log(&format!("gong: {} examples ({} benign)", data.len(), data.labels.iter().filter(|l| **l == 0).count()));
            // Gong et al. train the classifier's architecture from scratch; starting from the
            // classifier's weights (a fresh two-output layer) is what a few epochs on a few
            // thousand examples can afford.
            let init = decode_weights(&config, bytes, &train_device).map_err(|e| e.to_string())?.with_new_head(2, &train_device);
            let ckpt = NetCheckpoint { weights: cache.join("gong.safetensors"), state: state_path("gong") };
            let (model, state) = fit(init, &|m: &Classifier, x| m.forward(x), &|x| x, &data, o, &ckpt, &train_device, log)?;
            let gong_config = ClassifierConfig { classes: 2, ..config.clone() };
            let file = encode_module(&model).map_err(|e| e.to_string())?;
            let plain = crate::models::detectors::decode_module(gong_config.init(device), &file).map_err(|e| e.to_string())?;
            let calibration = calibrate(&GongDetector { model: &plain, grad_model: &plain, threshold: 0.0, margin: 0.0 }, splits, &adv, o, device)?;
            Trained {
                kind,
                bytes: file,
                extension: "safetensors",
                architecture: format!("{} with 2 outputs (benign, adversarial), on the input image; started from the classifier's weights", config.describe()),
                gong: Some(gong_config),
                metzen_layer: None,
                kde: None,
                calibration,
                training: json!({ "adversarial": adversarial, "network": state, "options": o }),
            }
        }
        DetectorKind::Metzen => {
            let data = binary_data(splits, &adv, o.fit_range());
            let mut tried = Vec::new();
            for layer in [MetzenLayer::Block2, MetzenLayer::Block1] {
                log(&format!("metzen {layer:?}: {} examples", data.len()));
                let name = format!("metzen-{layer:?}").to_lowercase();
                let ckpt = NetCheckpoint { weights: cache.join(format!("{name}.safetensors")), state: state_path(&name) };
                let input = metzen_input(&classifier, layer);
                let (net, state) = fit(metzen_net(layer, &config, &train_device), &|m: &MetzenNet, x| m.forward(x), &input, &data, o, &ckpt, &train_device, log)?;
                let file = encode_module(&net).map_err(|e| e.to_string())?;
                let plain = crate::models::detectors::decode_module(metzen_net(layer, &config, device), &file).map_err(|e| e.to_string())?;
                let d = MetzenDetector { net: &plain, grad_net: &plain, layer, classifier: &classifier, grad_classifier: &classifier, threshold: 0.0, margin: 0.0 };
                let calibration = calibrate(&d, splits, &adv, o, device)?;
                log(&format!("metzen {layer:?}: threshold {:.4}, validation detection CW {:.3}, FGSM {:.3}", calibration.threshold, calibration.detection_cw, calibration.detection_fgsm));
                tried.push((layer, file, calibration, state));
            }
            // The layer whose subnetwork detects more of the held-out examples (mean of both attacks).
            let score = |c: &Calibration| c.detection_cw + c.detection_fgsm;
            let best = if score(&tried[0].2) >= score(&tried[1].2) { 0 } else { 1 };
            let layers: Vec<serde_json::Value> = tried
                .iter()
                .map(|(l, _, c, s)| json!({ "layer": l, "threshold": c.threshold, "false_positive_rate": c.false_positive_rate, "detection_cw": c.detection_cw, "detection_fgsm": c.detection_fgsm, "network": s }))
                .collect();
            let (layer, file, calibration, _) = tried.swap_remove(best);
            Trained {
                kind,
                bytes: file,
                extension: "safetensors",
                architecture: MetzenNet::describe(layer, layer.channels(&config)),
                gong: None,
                metzen_layer: Some(layer),
                kde: None,
                calibration,
                training: json!({ "adversarial": adversarial, "layers_tried": layers, "chosen": layer, "options": o }),
            }
        }
        DetectorKind::Feinman => feinman(&classifier, &config, splits, &adv, o, adversarial, device, log)?,
    };
    let mut trained = trained;
    if let Some(t) = trained.training.as_object_mut() {
        t.insert("seconds".into(), json!(start.elapsed().as_secs_f64()));
    }
    Ok(trained)
}

/// Feinman et al.: hidden activations of benign training images after the held-out ones, the
/// first `k` of each class for each size tried; the published sample has `o.per_class`.
#[allow(clippy::too_many_arguments)]
fn feinman(classifier: &Classifier, config: &ClassifierConfig, splits: &Splits, adv: &Adversarial, o: &DetectorOptions, adversarial: serde_json::Value, device: &Device, log: &mut dyn FnMut(&str)) -> Result<Trained, String> {
    let most = o.per_class_tried.iter().copied().chain([o.per_class]).max().unwrap_or(0);
    let classes = config.classes;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for i in o.kde_start()..splits.train.len() {
        let c = splits.train.labels[i] as usize;
        if by_class[c].len() < most {
            by_class[c].push(i);
        }
        if by_class.iter().all(|v| v.len() == most) {
            break;
        }
    }
    // Hidden activations of the pool, class after class.
    let pool: Vec<usize> = by_class.concat();
    let data = splits.train.select(&pool);
    let mut hidden = Vec::with_capacity(pool.len() * config.dense);
    for s in (0..data.len()).step_by(200) {
        let x = inference::dataset_tensor(&data, s, (s + 200).min(data.len()), device);
        hidden.extend(pollster::block_on(read_f32(classifier.activations(x).hidden))?);
    }
    let sample_of = |k: usize| -> Vec<f32> {
        (0..classes).flat_map(|c| hidden[(c * most) * config.dense..(c * most + k) * config.dense].iter().copied()).collect::<Vec<f32>>()
    };
    let mut sizes = Vec::new();
    let mut chosen = None;
    let mut tried: Vec<usize> = o.per_class_tried.clone();
    if !tried.contains(&o.per_class) {
        tried.push(o.per_class);
    }
    for &k in &tried {
        let values = sample_of(k);
        let info = KdeSampleInfo { bandwidth: o.bandwidth, per_class: k, classes, dims: config.dense };
        let sample = Tensor::<2>::from_data(TensorData::new(values.clone(), [classes * k, config.dense]), device);
        let d = FeinmanDetector { sample: &sample, grad_sample: &sample, info: info.clone(), classifier, grad_classifier: classifier, threshold: 0.0, margin: 0.0 };
        let c = calibrate(&d, splits, adv, o, device)?;
        log(&format!("feinman {k} per class: threshold {:.3}, false positives {:.3}, validation detection CW {:.3}, FGSM {:.3}", c.threshold, c.false_positive_rate, c.detection_cw, c.detection_fgsm));
        sizes.push(json!({ "per_class": k, "bytes": values.len() * 4, "threshold": c.threshold, "false_positive_rate": c.false_positive_rate, "detection_cw": c.detection_cw, "detection_fgsm": c.detection_fgsm }));
        if k == o.per_class {
            chosen = Some((values, info, c));
        }
    }
    let (values, info, calibration) = chosen.expect("the published size is among those tried");
    Ok(Trained {
        kind: DetectorKind::Feinman,
        bytes: encode_sample(&values),
        extension: "bin",
        architecture: format!(
            "Gaussian kernel density (bandwidth {}) on the classifier's last hidden layer ({} values), over {} benign training images per class; score: negative log density at the predicted class",
            o.bandwidth, config.dense, info.per_class
        ),
        gong: None,
        metzen_layer: None,
        kde: Some(info),
        calibration,
        training: json!({ "adversarial": adversarial, "sample": format!("the first {} training images of each class from training image {} on (after the held-out images)", o.per_class, o.kde_start()), "sizes_tried": sizes, "options": o }),
    })
}

/// Writes `<dir>/<dataset>-<kind>.<ext>` and its manifest.
pub fn publish(dir: &Path, generalist: &ModelManifest, t: Trained, o: &DetectorOptions) -> Result<DetectorManifest, String> {
    let stem = t.kind.file_stem(generalist.dataset);
    let weights = format!("{stem}.{}", t.extension);
    write_atomic(&dir.join(&weights), &t.bytes)?;
    let c = &t.calibration;
    let mut training = t.training;
    if let Some(obj) = training.as_object_mut() {
        obj.insert("validation".into(), json!({ "images": o.validation_range(), "cw_examples": c.validation_cw, "fgsm_examples": c.validation_fgsm, "detection_cw": c.detection_cw, "detection_fgsm": c.detection_fgsm }));
        obj.insert("held_out".into(), json!({ "threshold_images": o.threshold_range(), "false_positive_images": o.false_positive_range() }));
    }
    let manifest = DetectorManifest {
        dataset: generalist.dataset,
        kind: t.kind,
        architecture: t.architecture,
        classifier: ModelSet::name_of(generalist).to_string(),
        classifier_sha256: generalist.sha256.clone(),
        sha256: sha256_hex(&t.bytes),
        bytes: t.bytes.len(),
        weights,
        gong: t.gong,
        metzen_layer: t.metzen_layer,
        kde: t.kde,
        threshold: c.threshold,
        margin: c.margin,
        false_positive_rate: c.false_positive_rate,
        calibration_images: c.calibration_images,
        false_positive_images: c.false_positive_images,
        training,
    };
    write_atomic(&dir.join(format!("{stem}.json")), (manifest.to_json() + "\n").as_bytes())?;
    Ok(manifest)
}
