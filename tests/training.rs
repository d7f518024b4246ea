//! Training on a small synthetic set the test makes: a run interrupted after its first epoch
//! resumes from the checkpoint and ends where the uninterrupted run ends; options that differ
//! from the checkpoint's are refused; the published manifest describes the weights.

use advlab::data::{Dataset, ImageShape, Splits};
use advlab::models::{load_model, DatasetKind, ModelManifest};
use advlab::train::{batch_pixels, blend, cosine_lr, publish, train, TrainOptions};
use burn::prelude::*;
use rand::SeedableRng;

fn synthetic(n: usize, seed: usize) -> Dataset {
    // Class c is a bright bar at row 2c: learnable in a couple of epochs.
    let shape = ImageShape::MNIST;
    let mut images = vec![0u8; n * shape.len()];
    let mut labels = Vec::new();
    for i in 0..n {
        let c = (i + seed) % 10;
        labels.push(c as u8);
        for x in 4..24 {
            images[i * 784 + (2 * c + 4) * 28 + x] = 255;
        }
        images[i * 784 + (i * 7) % 784] = 128;
    }
    Dataset { shape, images, labels }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("advlab-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn interrupted_training_resumes_to_the_same_weights() {
    let _turn = one_at_a_time();
    let splits = Splits { train: synthetic(96, 0), test: synthetic(40, 3) };
    let options = TrainOptions { epochs: 2, batch_size: 32, learning_rate: 3e-3, seed: 9, augment: false, new_phase: false, average_from: None };
    let d = Device::flex();
    let dir = tmp("resume");
    let ckpt = dir.join("run.ckpt");
    let after_one = dir.join("after-epoch-1.ckpt");
    let mut lines = Vec::new();
    let full = train(DatasetKind::Mnist, &splits, &options, &ckpt, &d, &mut |l: &str| {
        if l.starts_with("epoch 1/2") {
            std::fs::copy(&ckpt, &after_one).unwrap();
            std::fs::copy(&ckpt, dir.join("after-epoch-1-b.ckpt")).unwrap();
            std::fs::copy(&ckpt, dir.join("after-epoch-1-c.ckpt")).unwrap();
        }
        lines.push(l.to_string());
    })
    .unwrap();
    assert_eq!(full.meta.epochs_done, 2);
    assert_eq!(full.meta.accuracy_per_epoch.len(), 2);
    assert!(lines.iter().any(|l| l.contains("test accuracy")));
    // Resume from the copy made after epoch 1: only epoch 2 runs, and it ends at the same weights.
    let mut resumed_lines = Vec::new();
    let resumed = train(DatasetKind::Mnist, &splits, &options, &after_one, &d, &mut |l: &str| resumed_lines.push(l.to_string())).unwrap();
    assert!(resumed_lines[0].contains("resuming") && resumed_lines[0].contains("after epoch 1"), "{resumed_lines:?}");
    assert_eq!(resumed_lines.iter().filter(|l| l.starts_with("epoch ")).count(), 1);
    let x = advlab::inference::to_tensor(&synthetic(4, 1).image_f32(0), ImageShape::MNIST, &d);
    let a: Vec<f32> = full.model.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
    let b: Vec<f32> = resumed.model.forward(x).into_data().try_to_vec::<f32>().unwrap();
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() < 1e-4, "resumed run diverged: {a:?} vs {b:?}");
    }
    // Other settings on the same checkpoint are refused, not silently mixed.
    let other = TrainOptions { learning_rate: 1e-2, ..options.clone() };
    assert!(train(DatasetKind::Mnist, &splits, &other, &ckpt, &d, &mut |_: &str| {}).err().unwrap().contains("other settings"));
    // The schedule's length and augmentation may change on resume: logged, kept in the manifest.
    let longer = TrainOptions { epochs: 3, augment: true, ..options.clone() };
    let mut changed_lines = Vec::new();
    let changed = train(DatasetKind::Mnist, &splits, &longer, &dir.join("after-epoch-1-b.ckpt"), &d, &mut |l: &str| changed_lines.push(l.to_string())).unwrap();
    let expected = vec!["after epoch 1: schedule length changed from 2 to 3 epochs".to_string(), "after epoch 1: augmentation turned on".to_string()];
    assert_eq!(changed.meta.changes, expected);
    assert!(expected.iter().all(|e| changed_lines.contains(e)), "{changed_lines:?}");
    assert_eq!((changed.meta.epochs_done, changed_lines.iter().filter(|l| l.starts_with("epoch ")).count()), (3, 2));
    let sub = dir.join("changed");
    std::fs::create_dir_all(&sub).unwrap();
    assert_eq!(publish(&sub, DatasetKind::Mnist, &changed, splits.test.len()).unwrap().training.changes, expected);
    // A new cosine phase (warm restart) at the checkpoint, with its own peak learning rate.
    let phase = TrainOptions { epochs: 2, learning_rate: 1e-3, new_phase: true, ..options.clone() };
    let c = dir.join("after-epoch-1-c.ckpt");
    let restarted = train(DatasetKind::Mnist, &splits, &phase, &c, &d, &mut |_: &str| {}).unwrap();
    assert_eq!(restarted.meta.phase_start, 1);
    assert_eq!(restarted.meta.changes, vec!["after epoch 1: new cosine phase: learning rate 0.001 decaying to 0 by epoch 2".to_string()]);
    assert!((restarted.meta.options.learning_rate - 1e-3).abs() < 1e-15 && !restarted.meta.options.new_phase);
    let m = publish(&sub, DatasetKind::Mnist, &restarted, splits.test.len()).unwrap();
    assert!(m.training.schedule.contains("restarted after epoch 1"), "{}", m.training.schedule);
    // Resuming that finished phase (without the flag, same learning rate) changes nothing more.
    let again = train(DatasetKind::Mnist, &splits, &TrainOptions { new_phase: false, ..phase }, &c, &d, &mut |_: &str| {}).unwrap();
    assert_eq!((again.meta.phase_start, again.meta.changes.len()), (1, 1));
    // A corrupted checkpoint is reported.
    std::fs::write(&after_one, b"ADVCKPT1garbage").unwrap();
    assert!(train(DatasetKind::Mnist, &splits, &options, &after_one, &d, &mut |_: &str| {}).err().unwrap().contains("truncated or corrupted"));
    // Publishing writes weights whose hash and size the manifest records.
    let manifest = publish(&dir, DatasetKind::Mnist, &full, splits.test.len()).unwrap();
    let bytes = std::fs::read(dir.join(&manifest.weights)).unwrap();
    assert_eq!(bytes.len(), manifest.bytes);
    let reread = ModelManifest::parse(&std::fs::read_to_string(dir.join("mnist.json")).unwrap()).unwrap();
    // (Floats go through JSON text, which need not round-trip to the last bit.)
    assert_eq!((&reread.sha256, reread.bytes, reread.parameters, &reread.weights), (&manifest.sha256, manifest.bytes, 312_202, &manifest.weights));
    assert_eq!(reread.training.epochs, 2);
    for (a, b) in reread.training.accuracy_per_epoch.iter().zip(&full.meta.accuracy_per_epoch) {
        assert!((a - b).abs() < 1e-12);
    }
    assert!((reread.test_accuracy - full.meta.accuracy_per_epoch[1]).abs() < 1e-12);
    let published = load_model(&reread, &bytes, &d).unwrap();
    let x = advlab::inference::to_tensor(&synthetic(4, 2).image_f32(1), ImageShape::MNIST, &d);
    let p: Vec<f32> = published.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
    let q: Vec<f32> = full.model.forward(x).into_data().try_to_vec::<f32>().unwrap();
    assert!(p == q, "published weights differ from the trained model");
}

fn close(a: &[f32], b: &[f32], tolerance: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tolerance)
}

/// Training seeds the device's random numbers (dropout) per epoch; two runs at once would
/// draw from the same generator, so the tests that train take turns.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    TRAINING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every weight of a module, in its parameters' order.
fn weights(model: &advlab::models::Classifier) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().iter::<f32>());
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

#[test]
fn blending_weights_by_hand() {
    let d = Device::flex();
    let config = advlab::models::ClassifierConfig::for_dataset(DatasetKind::Mnist);
    let (a, b, c) = (config.init(&d), config.init(&d), config.init(&d));
    let (wa, wb, wc) = (weights(&a), weights(&b), weights(&c));
    assert_ne!(wa, wb);
    // weight 0 keeps the average, weight 1 takes the current weights, 1/2 the midpoint.
    assert!(close(&weights(&blend(a.clone(), &b, 0.0)), &wa, 0.0));
    assert!(close(&weights(&blend(a.clone(), &b, 1.0)), &wb, 1e-6));
    let mid = weights(&blend(a.clone(), &b, 0.5));
    // The running mean with weights 1/2 then 1/3 is the plain mean of three snapshots.
    let mean3 = weights(&blend(blend(a.clone(), &b, 0.5), &c, 1.0 / 3.0));
    let mut checked = 0;
    for i in 0..wa.len() {
        if wa[i] == wb[i] {
            continue;
        }
        assert!((mid[i] - (wa[i] + wb[i]) / 2.0).abs() < 1e-6, "{i}: {} vs {} {}", mid[i], wa[i], wb[i]);
        assert!((mean3[i] - (wa[i] + wb[i] + wc[i]) / 3.0).abs() < 1e-6);
        checked += 1;
    }
    assert!(checked > 300_000, "{checked} weights compared");
}

#[test]
fn weight_averaging_publishes_the_mean_and_resumes() {
    let _turn = one_at_a_time();
    let splits = Splits { train: synthetic(96, 0), test: synthetic(40, 3) };
    let options = TrainOptions { epochs: 3, batch_size: 32, learning_rate: 3e-3, seed: 4, augment: false, new_phase: false, average_from: Some(1) };
    let d = Device::flex();
    let dir = tmp("average");
    let ckpt = dir.join("run.ckpt");
    let (after1, after2) = (dir.join("after-1.ckpt"), dir.join("after-2.ckpt"));
    let mut lines = Vec::new();
    let mut snapshots = Vec::new();
    let full = train(DatasetKind::Mnist, &splits, &options, &ckpt, &d, &mut |l: &str| {
        for (e, p) in [(1, &after1), (2, &after2)] {
            if l.starts_with(&format!("epoch {e}/3")) {
                std::fs::copy(&ckpt, p).unwrap();
            }
        }
        lines.push(l.to_string());
    })
    .unwrap();
    assert_eq!(full.meta.averaged_epochs(), Some((2, 3)));
    assert_eq!(full.meta.average_accuracy_per_epoch.len(), 2);
    assert!(!lines.iter().find(|l| l.starts_with("epoch 1/3")).unwrap().contains("mean"), "{lines:?}");
    assert!(lines.iter().find(|l| l.starts_with("epoch 3/3")).unwrap().contains("mean of the weights after epochs 2-3"), "{lines:?}");
    // The outcome is the mean of the weights after epochs 2 and 3, taken from the checkpoints.
    let config = advlab::models::ClassifierConfig::for_dataset(DatasetKind::Mnist);
    for p in [&after2, &ckpt] {
        snapshots.push(advlab::train::load_checkpoint(p, &config, &d, &d).unwrap().model);
    }
    let mean = weights(&blend(snapshots[0].clone(), &snapshots[1], 0.5));
    let got = weights(&full.model);
    assert!(close(&mean, &got, 1e-6));
    // Resumed after epoch 2 (the checkpoint carries the running mean): the same mean.
    let resumed = train(DatasetKind::Mnist, &splits, &TrainOptions { average_from: None, ..options.clone() }, &after2, &d, &mut |_: &str| {}).unwrap();
    assert!(close(&weights(&resumed.model), &got, 1e-5));
    // The manifest's accuracy is the mean's, and the change list says what was published.
    let m = publish(&dir, DatasetKind::Mnist, &full, splits.test.len()).unwrap();
    assert_eq!(m.test_accuracy, full.meta.average_accuracy_per_epoch[1]);
    assert!(m.training.changes.last().unwrap().starts_with("published: the mean of the weights after epochs 2-3"), "{:?}", m.training.changes);
    // Turned on at resume, but not for epochs already done; not twice with another start.
    let plain = TrainOptions { average_from: None, ..options.clone() };
    let plain_ckpt = dir.join("plain.ckpt");
    train(DatasetKind::Mnist, &splits, &TrainOptions { epochs: 2, ..plain.clone() }, &plain_ckpt, &d, &mut |_: &str| {}).unwrap();
    let early = train(DatasetKind::Mnist, &splits, &TrainOptions { epochs: 3, average_from: Some(1), ..plain.clone() }, &plain_ckpt, &d, &mut |_: &str| {});
    assert!(early.err().unwrap().contains("weights after them are gone"));
    let late = train(DatasetKind::Mnist, &splits, &TrainOptions { epochs: 4, average_from: Some(2), ..plain.clone() }, &plain_ckpt, &d, &mut |_: &str| {}).unwrap();
    assert_eq!(late.meta.averaged_epochs(), Some((3, 4)));
    assert!(late.meta.changes.contains(&"after epoch 2: weight averaging on: the published weights will be the mean of the weights after epochs 3-4".to_string()), "{:?}", late.meta.changes);
    // A later start on resume restarts the mean there: the outcome is then the last epoch's weights.
    let restart_ckpt = dir.join("restart.ckpt");
    train(DatasetKind::Mnist, &splits, &TrainOptions { epochs: 2, average_from: Some(0), ..plain.clone() }, &restart_ckpt, &d, &mut |_: &str| {}).unwrap();
    let earlier = train(DatasetKind::Mnist, &splits, &TrainOptions { epochs: 3, average_from: Some(1), ..plain.clone() }, &restart_ckpt, &d, &mut |_: &str| {});
    assert!(earlier.err().unwrap().contains("weights after them are gone"));
    let restarted = train(DatasetKind::Mnist, &splits, &TrainOptions { epochs: 3, average_from: Some(2), ..plain }, &restart_ckpt, &d, &mut |_: &str| {}).unwrap();
    assert_eq!(restarted.meta.averaged_epochs(), Some((3, 3)));
    assert_eq!(restarted.meta.average_accuracy_per_epoch.len(), 1);
    let last = restarted.meta.changes.last().unwrap();
    assert!(last.starts_with("after epoch 2: weight averaging restarted: the published weights will be the mean of the weights after epochs 3-3 (the mean of epochs 1-2, test accuracy"), "{last}");
    let own = restarted.meta.accuracy_per_epoch[2];
    assert_eq!(restarted.test_accuracy(), own);
}

#[test]
fn augmentation_shifts_and_flips_within_bounds() {
    let shape = ImageShape::CIFAR10;
    let img: Vec<u8> = (0..shape.len()).map(|i| (i % 251) as u8 + 1).collect();
    let data = Dataset { shape, images: img.clone(), labels: vec![0] };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let plain = batch_pixels(&data, &[0], false, &mut rng);
    assert!(plain.iter().zip(&img).all(|(a, b)| *a == *b as f32 / 255.0));
    for _ in 0..20 {
        let aug = batch_pixels(&data, &[0], true, &mut rng);
        // Every value is either padding (0) or a pixel of the image; at most 4 rows/columns of
        // padding appear, so most of the image survives.
        let zeros = aug.iter().filter(|v| **v == 0.0).count();
        assert!(zeros <= 3 * (32 * 8 + 8 * 32), "{zeros} padded values");
        assert!(aug.iter().all(|v| *v == 0.0 || img.contains(&((v * 255.0).round() as u8))));
    }
}

#[test]
fn cosine_schedule_by_hand() {
    assert_eq!(cosine_lr(1e-3, 0, 100), 1e-3);
    assert!((cosine_lr(1e-3, 50, 100) - 5e-4).abs() < 1e-12);
    assert!(cosine_lr(1e-3, 100, 100).abs() < 1e-12);
}
