//! The classifiers' architectures, their weight files and manifests, and the committed models:
//! every one must still decode and classify its sample pack as recorded (stale weights are a
//! known way for web demos to break).

use advlab::inference::{argmax_rows, dataset_tensor, probabilities, to_tensor};
use advlab::models::manifest::{decode_weights, encode_weights, sha256_hex};
use advlab::models::{load_model, ClassifierConfig, DatasetKind, ModelError, ModelManifest};
use advlab::samples::SamplePack;
use burn::prelude::*;
use burn::module::Module;
use std::path::Path;

#[test]
fn architectures_have_carlini_wagner_parameter_counts() {
    let d = Device::flex();
    // conv 320 + 9,248 + 18,496 + 36,928; dense 205,000 + 40,200 + 2,010.
    assert_eq!(ClassifierConfig::mnist().init(&d).num_params(), 312_202);
    // conv 1,792 + 36,928 + 73,856 + 147,584; dense 819,456 + 65,792 + 2,570.
    assert_eq!(ClassifierConfig::cifar10().init(&d).num_params(), 1_147_978);
    assert_eq!(ClassifierConfig::mnist().feature_side(), 4);
    assert_eq!(ClassifierConfig::cifar10().feature_side(), 5);
}

#[test]
fn forward_shapes_and_feature_taps() {
    let d = Device::flex();
    let m = ClassifierConfig::cifar10().init(&d);
    let x = Tensor::<4>::zeros([2, 3, 32, 32], &d);
    assert_eq!(m.forward(x.clone()).dims(), [2, 10]);
    assert_eq!(m.features(x.clone()).dims(), [2, 128 * 25]);
    assert_eq!(m.hidden(x).dims(), [2, 256]);
}

fn manifest_for(bytes: &[u8]) -> ModelManifest {
    let config = ClassifierConfig::mnist();
    let json = serde_json::json!({
        "dataset": "mnist", "architecture": config.describe(), "config": config, "classes": ["0","1","2","3","4","5","6","7","8","9"],
        "input": [1, 28, 28], "weights": "w.safetensors", "sha256": sha256_hex(bytes), "bytes": bytes.len(), "parameters": 312202,
        "test_accuracy": 0.0, "test_images": 0,
        "training": {"epochs": 0, "batch_size": 1, "optimizer": "", "learning_rate": 0.0, "schedule": "", "augmentation": "", "seed": 0,
                     "seconds": 0.0, "images_per_second": 0.0, "accuracy_per_epoch": []}
    });
    ModelManifest::parse(&json.to_string()).unwrap()
}

#[test]
fn weights_round_trip_and_bad_files_are_reported() {
    let d = Device::flex();
    d.seed(3);
    let model = ClassifierConfig::mnist().init(&d);
    let bytes = encode_weights(&model).unwrap();
    let manifest = manifest_for(&bytes);
    let loaded = load_model(&manifest, &bytes, &d).unwrap();
    let x = to_tensor(&vec![0.3; 784], DatasetKind::Mnist.shape(), &d);
    let a: Vec<f32> = model.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
    let b: Vec<f32> = loaded.forward(x).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    // One flipped byte: the hash says so.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(load_model(&manifest, &flipped, &d), Err(ModelError::HashMismatch { .. })));
    assert!(load_model(&manifest, &flipped, &d).unwrap_err().to_string().contains("corrupted or stale"));
    // Truncated or garbage files that claim the right hash still fail clearly.
    for bad in [bytes[..bytes.len() / 2].to_vec(), b"not safetensors at all".to_vec(), vec![1, 2, 3]] {
        let m = manifest_for(&bad);
        let err = load_model(&m, &bad, &d).unwrap_err().to_string();
        assert!(err.contains("weights do not fit") || err.contains("safetensors"), "{err}");
    }
    // CIFAR weights are not an MNIST model.
    let cifar = encode_weights(&ClassifierConfig::cifar10().init(&d)).unwrap();
    let err = decode_weights(&ClassifierConfig::mnist(), &cifar, &d).unwrap_err().to_string();
    assert!(err.contains("hape") || err.contains("mismatch"), "{err}");
    // A manifest for another architecture is refused.
    let mut json: serde_json::Value = serde_json::from_str(&manifest.to_json()).unwrap();
    json["config"]["dense"] = 100.into();
    assert!(ModelManifest::parse(&json.to_string()).unwrap_err().to_string().contains("architecture"));
}

#[test]
fn every_committed_model_decodes_and_classifies_its_sample_pack_as_recorded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let d = Device::flex();
    let mut checked = Vec::new();
    for kind in [DatasetKind::Mnist, DatasetKind::Cifar10] {
        let mpath = dir.join(format!("{}.json", kind.name()));
        if !mpath.exists() {
            continue;
        }
        let manifest = ModelManifest::parse(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
        let bytes = std::fs::read(dir.join(&manifest.weights)).unwrap();
        assert_eq!(bytes.len(), manifest.bytes);
        let model = load_model(&manifest, &bytes, &d).unwrap_or_else(|e| panic!("{}: {e}", mpath.display()));
        assert_eq!(model.num_params(), manifest.parameters);
        let pack = SamplePack::parse(&std::fs::read_to_string(dir.join(format!("{}-samples.json", kind.name()))).unwrap()).unwrap();
        let data = pack.dataset(&std::fs::read(dir.join(&pack.file)).unwrap()).unwrap();
        let probs = pollster::block_on(probabilities(&model, dataset_tensor(&data, 0, data.len(), &d))).unwrap();
        let predicted: Vec<u8> = argmax_rows(&probs, 10).iter().map(|&p| p as u8).collect();
        assert_eq!(predicted, pack.predicted, "{}: the committed weights no longer give the recorded predictions", kind.name());
        let correct = predicted.iter().zip(&pack.labels).filter(|(p, l)| p == l).count();
        // 100 samples vary by a few points around the test accuracy; far below it means trouble.
        let expected = manifest.test_accuracy * data.len() as f64;
        assert!(correct as f64 >= expected - 0.15 * data.len() as f64, "{}: only {correct}/{} samples right (test accuracy {})", kind.name(), data.len(), manifest.test_accuracy);
        checked.push(kind);
    }
    assert!(checked.contains(&DatasetKind::Mnist), "the MNIST model must be committed in models/");
}
