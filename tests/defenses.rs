//! Feature-squeezing defenses: the detector's score against a direct computation, the
//! threshold rule, and the system verdicts the attacks are judged by.

use advlab::defenses::squeeze::{detector_score, threshold_for_rate};
use advlab::defenses::{SqueezeConfig, SqueezeDetector};
use advlab::target::Detector;
use advlab::models::{ClassifierConfig, DatasetKind};
use advlab::squeezers::Squeezer;
use burn::prelude::*;
use burn::tensor::activation::softmax;

fn v<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn threshold_flags_the_requested_fraction() {
    let scores: Vec<f32> = (1..=100).map(|i| i as f32 / 100.0).collect();
    // 5% of 100 benign scores above the threshold: the 95th value.
    let t = threshold_for_rate(&scores, 0.05);
    assert_eq!(t, 0.95);
    assert_eq!(scores.iter().filter(|s| **s > t).count(), 5);
    assert_eq!(threshold_for_rate(&[0.3], 0.05), 0.3);
}

#[test]
fn detector_score_is_the_largest_l1_between_softmaxes() {
    let d = Device::flex();
    d.seed(11);
    let model = ClassifierConfig::mnist().init(&d);
    let x = Tensor::<4>::from_data(TensorData::new((0..2 * 784).map(|i| (i % 17) as f32 / 16.0).collect::<Vec<_>>(), [2, 1, 28, 28]), &d);
    let squeezers = vec![Squeezer::BitDepth { bits: 1 }, Squeezer::Median { width: 2, height: 2 }];
    let score = v(detector_score(&model, x.clone(), &squeezers));
    let p = v(softmax(model.forward(x.clone()), 1));
    let mut expected = vec![0f32; 2];
    for s in &squeezers {
        let q = v(softmax(model.forward(s.apply(x.clone())), 1));
        for i in 0..2 {
            let l1: f32 = (0..10).map(|c| (p[i * 10 + c] - q[i * 10 + c]).abs()).sum();
            expected[i] = expected[i].max(l1);
        }
    }
    assert!(score.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-6), "{score:?} vs {expected:?}");

    // As a detector: flags exactly the images whose score is over the threshold; its adaptive
    // penalty is zero when all distances are well under it.
    let (sq, _, _) = SqueezeConfig::squeezers_for(DatasetKind::Mnist);
    let mid = (score[0] + score[1]) / 2.0;
    let ad = d.clone().autodiff();
    let grad_model = advlab::models::manifest::decode_weights(&ClassifierConfig::mnist(), &advlab::models::manifest::encode_weights(&model).unwrap(), &ad).unwrap().freeze();
    let det = SqueezeDetector { squeezers: sq.clone(), threshold: mid, grad_model: &grad_model, model: &model };
    assert!(det.name().contains("1-bit depth + 2x2 median"), "{}", det.name());
    let flags: Vec<bool> = det.flags(x.clone()).into_data().try_to_vec::<bool>().unwrap();
    assert_eq!(flags, vec![score[0] > mid, score[1] > mid]);
    let penalty = v(det.penalty(x.clone().autodiff()).inner());
    assert!(penalty.iter().all(|p| *p >= 0.0));
    let relaxed = SqueezeDetector { squeezers: sq.clone(), threshold: 100.0, grad_model: &grad_model, model: &model };
    assert!(v(relaxed.penalty(x.clone().autodiff()).inner()).iter().all(|p| *p == 0.0));
    // Its adaptive terms score every squeezed view it classifies (here with a term that sums
    // the logits, and no penalty under a high threshold); the system adds the image's own term.
    let sum_logits = |l: Tensor<2>| l.sum_dim(1).squeeze_dim::<1>(1);
    let got = v(relaxed.adaptive_loss(x.clone().autodiff(), None, &sum_logits).inner());
    let mut want = vec![0f32; 2];
    for s in &sq {
        for (w, t) in want.iter_mut().zip(v(model.forward(s.apply(x.clone())).sum_dim(1).squeeze_dim::<1>(1))) {
            *w += t;
        }
    }
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4), "{got:?} vs {want:?}");
    // Under the calibrated threshold the penalty joins in, as the hinges' sum; handing over
    // the image's logits changes nothing.
    let with_penalty = v(det.adaptive_loss(x.clone().autodiff(), None, &sum_logits).inner());
    let shared = v(det.adaptive_loss(x.clone().autodiff(), Some(grad_model.forward(x.clone().autodiff())), &sum_logits).inner());
    let pen = v(det.penalty(x.clone().autodiff()).inner());
    assert!(with_penalty.iter().zip(&want).zip(&pen).all(|((a, b), p)| (a - b - p).abs() < 1e-3), "{with_penalty:?} {want:?} {pen:?}");
    assert!(with_penalty.iter().zip(&shared).all(|(a, b)| (a - b).abs() < 1e-5));
    assert!(pen.iter().any(|p| *p > 0.0), "one image is over the threshold, so its penalty is positive");
}

#[test]
fn a_threshold_is_refused_for_other_weights() {
    let (sq, bit, med) = SqueezeConfig::squeezers_for(DatasetKind::Cifar10);
    let config = SqueezeConfig { dataset: DatasetKind::Cifar10, squeezers: sq, threshold: 0.5, false_positive_rate: 0.05, calibration_images: 10, bit_depth: bit, median: med, model_sha256: "ab".repeat(32) };
    assert!(config.check_model(&"ab".repeat(32)).is_ok());
    let err = config.check_model(&"cd".repeat(32)).unwrap_err();
    assert!(err.contains("calibrated on another model") && err.contains("abababababab") && err.contains("cdcdcdcdcdcd"), "{err}");
    assert!(err.contains("lab defend cifar10"), "{err}");
    // A configuration from before the hash was recorded cannot be parsed at all.
    let mut json: serde_json::Value = serde_json::to_value(&config).unwrap();
    json.as_object_mut().unwrap().remove("model_sha256");
    assert!(serde_json::from_value::<SqueezeConfig>(json).is_err());
}

