//! The attack formulas against hand-computed cases, the gradient-sign attacks on targets whose
//! gradient sign is known, and C&W's promise: every example it calls successful is classified as
//! claimed by a fresh forward pass.

use advlab::attacks::cw::{cw_l2, update_constants, Adam, CwParams};
use advlab::attacks::gradient::{fgsm, pgd, FgsmParams, PgdParams};
use advlab::attacks::losses::{cross_entropy, from_tanh_space, margin_loss, to_tanh_space};
use advlab::attacks::{AttackTarget, Goal, ModelTarget, Silent};
use advlab::evaluate::{random_targets, AttackOptions, AttackSpec};
use advlab::inference::{argmax_rows, dataset_tensor, to_tensor};
use advlab::models::{load_model, Classifier, ModelManifest};
use advlab::samples::SamplePack;
use advlab::data::{DatasetKind, ImageShape};
use burn::prelude::*;

fn dev() -> Device {
    Device::flex()
}

fn vec1(t: Tensor<1>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
    }
}

#[test]
fn tanh_change_of_variables() {
    let d = dev();
    let x = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 0.25, 0.5, 1.0], [1, 1, 2, 2]), &d);
    let w = to_tanh_space(x.clone());
    let wv: Vec<f32> = w.clone().into_data().try_to_vec::<f32>().unwrap();
    // atanh(-0.4999995) = -0.549306; atanh(0) = 0.
    close(&wv[1..3], &[-0.549306, 0.0], 2e-6);
    // atanh(+-0.999999) = +-7.254329 in exact arithmetic; in f32, 1 - 0.999999 keeps only a few
    // significant bits, so the ends land within 0.05 of it (and still map back to 0 and 1).
    close(&[wv[0], wv[3]], &[-7.254329, 7.254329], 0.05);
    let back: Vec<f32> = from_tanh_space(w).into_data().try_to_vec::<f32>().unwrap();
    close(&back, &[0.0, 0.25, 0.5, 1.0], 1e-6);
    // Any w maps inside [0, 1].
    let wild = Tensor::<4>::from_data(TensorData::new(vec![-50.0f32, -1.0, 1.0, 50.0], [1, 1, 2, 2]), &d);
    let v: Vec<f32> = from_tanh_space(wild).into_data().try_to_vec::<f32>().unwrap();
    close(&v, &[0.0, 0.119203, 0.880797, 1.0], 1e-6);
}

#[test]
fn margin_loss_f6_by_hand() {
    let d = dev();
    let logits = || Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 3.0, 2.0], [1, 3]), &d);
    let onehot = |y: usize| Goal::untargeted(vec![y], 3).onehot(&d);
    // Untargeted, y = 1: Z_y - max_other = 3 - 2.
    close(&vec1(margin_loss(logits(), onehot(1), false, 0.0)), &[1.0], 1e-6);
    close(&vec1(margin_loss(logits(), onehot(1), false, 0.5)), &[1.5], 1e-6);
    // Untargeted, y = 0 is already misclassified: 1 - 3 < 0 -> 0.
    close(&vec1(margin_loss(logits(), onehot(0), false, 0.0)), &[0.0], 1e-6);
    // ... unless the confidence asks for a margin of more than 2.
    close(&vec1(margin_loss(logits(), onehot(0), false, 2.5)), &[0.5], 1e-6);
    // Targeted, t = 0: max_other - Z_t = 3 - 1.
    close(&vec1(margin_loss(logits(), onehot(0), true, 0.0)), &[2.0], 1e-6);
    // Targeted, t = 1 is reached: 2 - 3 < 0 -> 0; with kappa 2: 1.
    close(&vec1(margin_loss(logits(), onehot(1), true, 0.0)), &[0.0], 1e-6);
    close(&vec1(margin_loss(logits(), onehot(1), true, 2.0)), &[1.0], 1e-6);
}

#[test]
fn cross_entropy_by_hand() {
    let d = dev();
    let logits = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 3f32.ln(), 0.0, 0.0], [2, 2]), &d);
    let onehot = Goal::untargeted(vec![1, 0], 2).onehot(&d);
    // softmax([0, ln 3]) = [1/4, 3/4]; -ln(3/4) = 0.287682; -ln(1/2) = 0.693147.
    close(&vec1(cross_entropy(logits, onehot)), &[0.287682, 0.693147], 1e-5);
}

#[test]
fn constant_search_follows_carlini_wagner() {
    let mut c = vec![1e-3, 1e-3, 0.5, 0.5];
    let mut lo = vec![0.0, 0.0, 0.1, 0.1];
    let mut hi = vec![1e10, 1e10, 1.0, 1.0];
    update_constants(&mut c, &mut lo, &mut hi, &[false, true, false, true]);
    // No upper bound and no success: x10. Success: the bound is set, then bisect.
    close(&c.iter().map(|v| *v as f32).collect::<Vec<_>>(), &[1e-2, 5e-4, 0.75, 0.3], 1e-7);
    assert_eq!(lo[0], 1e-3);
    assert_eq!(hi[1], 1e-3);
    assert_eq!(lo[2], 0.5);
    assert_eq!(hi[3], 0.5);
}

#[test]
fn adam_matches_tensorflow_first_step() {
    // TF's Adam: the first step moves every coordinate by lr * g / (|g| + eps') ~ lr * sign(g).
    let d = dev();
    let w = Tensor::<4>::zeros([1, 1, 1, 2], &d);
    let g = Tensor::<4>::from_data(TensorData::new(vec![0.5f32, -2.0], [1, 1, 1, 2]), &d);
    let mut adam = Adam::new(0.01, &w);
    let w1: Vec<f32> = adam.step(w, g).into_data().try_to_vec::<f32>().unwrap();
    close(&w1, &[-0.01, 0.01], 1e-6);
}

/// A target whose logits are [sum(x) - bias, 0]: the gradient sign is known everywhere.
struct SumTarget {
    bias: f32,
}

impl SumTarget {
    fn logits_of(&self, x: Tensor<4>) -> Tensor<2> {
        let n = x.dims()[0];
        let s = x.reshape([n as i32, -1]).sum_dim(1);
        Tensor::cat(vec![s.clone().sub_scalar(self.bias), s.zeros_like()], 1)
    }
}

impl AttackTarget for SumTarget {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.logits_of(x)
    }
    fn system_logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.logits_of(x)
    }
}

fn image(v: f32, d: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(vec![v; 4], [1, 1, 2, 2]), d)
}

#[test]
fn fgsm_steps_against_the_gradient_sign() {
    let d = dev();
    // sum = 0.24 > bias 0.1: class 0. Untargeted FGSM raises the loss of class 0, i.e. lowers
    // every pixel by epsilon (clipped at 0): sum 0 < 0.1, class 1.
    let t = SumTarget { bias: 0.1 };
    let out = pollster::block_on(fgsm(&t, image(0.06, &d), &Goal::untargeted(vec![0], 2), &FgsmParams { epsilon: 0.1 }, &mut Silent)).unwrap();
    assert_eq!(out.success, vec![true]);
    assert_eq!(out.predicted, vec![1]);
    close(&out.images, &[0.0; 4], 1e-7);
    close(&out.l2, &[0.12], 1e-6);
    close(&out.linf, &[0.06], 1e-6);
    // Targeted at class 1 moves the same way; a too small epsilon fails and returns the image.
    let out = pollster::block_on(fgsm(&t, image(0.06, &d), &Goal::targeted(vec![0], vec![1], 2), &FgsmParams { epsilon: 0.01 }, &mut Silent)).unwrap();
    assert_eq!(out.success, vec![false]);
    close(&out.images, &[0.06; 4], 1e-7);
    assert_eq!(out.l2, vec![0.0]);
}

#[test]
fn pgd_stays_inside_the_epsilon_ball() {
    let d = dev();
    // sum 2.0 > 1.9: class 0. Ten steps of 0.01 would reach 0.4 per pixel; the ball of 0.03
    // stops them at 0.47 (sum 1.88 < 1.9: class 1).
    let t = SumTarget { bias: 1.9 };
    let params = PgdParams { epsilon: 0.03, step_size: 0.01, steps: 10, random_start: false };
    let out = pollster::block_on(pgd(&t, image(0.5, &d), &Goal::untargeted(vec![0], 2), &params, &mut Silent)).unwrap();
    assert_eq!(out.success, vec![true]);
    close(&out.images, &[0.47; 4], 1e-6);
    close(&out.linf, &[0.03], 1e-6);
    // With a random start every pixel still ends inside the ball and inside [0, 1].
    let params = PgdParams { epsilon: 0.03, step_size: 0.01, steps: 3, random_start: true };
    let out = pollster::block_on(pgd(&t, image(0.99, &d), &Goal::untargeted(vec![0], 2), &params, &mut Silent)).unwrap();
    assert!(out.images.iter().all(|v| (0.96 - 1e-6..=1.0).contains(v)), "{:?}", out.images);
}

/// The committed MNIST model and its sample pack (an untrained net is too flat for a short run).
fn committed_mnist(d: &Device) -> (Classifier, Classifier, advlab::data::Dataset) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let manifest = ModelManifest::parse(&std::fs::read_to_string(dir.join("mnist.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join(&manifest.weights)).unwrap();
    let model = load_model(&manifest, &bytes, d).unwrap();
    let grad_model = load_model(&manifest, &bytes, &d.clone().autodiff()).unwrap().freeze();
    let pack = SamplePack::parse(&std::fs::read_to_string(dir.join("mnist-samples.json")).unwrap()).unwrap();
    let data = pack.dataset(&std::fs::read(dir.join(&pack.file)).unwrap()).unwrap();
    (model, grad_model, data)
}

#[test]
fn cw_successes_are_confirmed_by_a_fresh_forward_pass() {
    let d = dev();
    let (model, grad_model, data) = committed_mnist(&d);
    let target = ModelTarget { grad_model: &grad_model, model: &model };
    let shape = ImageShape::MNIST;
    let n = 4;
    let x = dataset_tensor(&data, 0, n, &d);
    let pixels: Vec<f32> = (0..n).flat_map(|i| data.image_f32(i)).collect();
    let labels: Vec<usize> = data.labels[..n].iter().map(|&l| l as usize).collect();
    // A short run without the early abort (which checks every steps/10 and would stop at once).
    let params = CwParams { steps: 150, binary_search_steps: 3, initial_const: 1.0, abort_early: false, ..CwParams::default() };
    for goal in [Goal::untargeted(labels.clone(), 10), Goal::targeted(labels.clone(), random_targets(&labels, 10, 3), 10)] {
        let out = pollster::block_on(cw_l2(&target, x.clone(), &goal, &params, &mut Silent)).unwrap();
        assert!(out.success.iter().filter(|s| **s).count() >= n / 2, "C&W found too little: {:?}", out.success);
        let fresh: Vec<f32> = model.forward(to_tensor(&out.images, shape, &d)).into_data().try_to_vec::<f32>().unwrap();
        let fresh = argmax_rows(&fresh, 10);
        for i in 0..n {
            let img = &out.images[i * shape.len()..(i + 1) * shape.len()];
            assert!(img.iter().all(|v| (0.0..=1.0).contains(v)));
            let orig = &pixels[i * shape.len()..(i + 1) * shape.len()];
            let l2 = img.iter().zip(orig).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
            assert!((l2 - out.l2[i]).abs() < 1e-3, "reported L2 {} vs recomputed {l2}", out.l2[i]);
            assert_eq!(fresh[i], out.predicted[i]);
            if out.success[i] {
                match &goal.targets {
                    Some(t) => assert_eq!(fresh[i], t[i], "claimed targeted success"),
                    None => assert_ne!(fresh[i], labels[i], "claimed untargeted success"),
                }
            } else {
                assert_eq!(l2, 0.0, "a failure returns the original image");
            }
        }
    }
}

#[test]
fn random_targets_are_other_classes() {
    let labels: Vec<usize> = (0..200).map(|i| i % 10).collect();
    let t = random_targets(&labels, 10, 5);
    assert!(labels.iter().zip(&t).all(|(l, t)| l != t && *t < 10));
    assert_eq!(t, random_targets(&labels, 10, 5), "seeded");
    let mut seen = [false; 10];
    t.iter().for_each(|&c| seen[c] = true);
    assert!(seen.iter().all(|s| *s));
}

#[test]
fn attack_options_fill_defaults_and_reject_nonsense() {
    let spec = AttackSpec::build("pgd", &AttackOptions { epsilon: Some(0.2), ..Default::default() }, DatasetKind::Mnist).unwrap();
    match spec {
        AttackSpec::Pgd(p) => {
            assert_eq!(p.epsilon, 0.2);
            assert_eq!(p.step_size, 0.05);
            assert_eq!(p.steps, 40);
        }
        _ => panic!(),
    }
    match AttackSpec::build("cw", &AttackOptions::default(), DatasetKind::Mnist).unwrap() {
        AttackSpec::Cw(p) => {
            assert_eq!((p.steps, p.binary_search_steps, p.initial_const, p.confidence, p.learning_rate), (1000, 9, 1e-3, 0.0, 1e-2));
        }
        _ => panic!(),
    }
    assert!(AttackSpec::build("fgsm", &AttackOptions { epsilon: Some(-1.0), ..Default::default() }, DatasetKind::Mnist).is_err());
    assert!(AttackSpec::build("cw", &AttackOptions { steps: Some(0), ..Default::default() }, DatasetKind::Mnist).is_err());
    assert!(AttackSpec::build("deepfool", &AttackOptions::default(), DatasetKind::Mnist).unwrap_err().contains("unknown attack"));
}

/// The same classifier behind a detector that flags everything.
struct FlagsAll(SumTarget);

impl AttackTarget for FlagsAll {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.0.logits_of(x)
    }
    fn system_logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.0.logits_of(x)
    }
    fn system_flags(&self, x: Tensor<4>) -> Option<Tensor<1, Bool>> {
        let n = x.dims()[0];
        Some(Tensor::<1, Bool>::from_data(TensorData::new(vec![true; n], [n]), &x.device()))
    }
}

#[test]
fn non_adaptive_examples_are_judged_by_the_defended_system() {
    let d = dev();
    let bare = SumTarget { bias: 0.1 };
    let goal = Goal::untargeted(vec![0], 2);
    let out = pollster::block_on(fgsm(&bare, image(0.06, &d), &goal, &FgsmParams { epsilon: 0.1 }, &mut Silent)).unwrap();
    assert_eq!(out.success, vec![true]);
    // The same example against a system that also fools nothing past its detector.
    let judged = pollster::block_on(advlab::attacks::judge(&FlagsAll(SumTarget { bias: 0.1 }), out.clone(), &goal, ImageShape { channels: 1, height: 2, width: 2 }, &d)).unwrap();
    assert_eq!(judged.success, vec![false]);
    assert_eq!(judged.images, out.images, "the caught example is kept");
    assert_eq!(judged.l2, out.l2);
    assert!(judged.mean_l2().is_nan(), "no success, no mean distortion");
    assert_eq!(judged.predicted, vec![1], "the system still classifies it as 1, but flags it");
    // Judged by the bare system itself, nothing changes.
    let same = pollster::block_on(advlab::attacks::judge(&bare, out.clone(), &goal, ImageShape { channels: 1, height: 2, width: 2 }, &d)).unwrap();
    assert_eq!(same.success, out.success);
    assert_eq!(same.l2, out.l2);
}

#[test]
fn many_constants_at_once_attack_one_image_as_a_batch() {
    let d = dev();
    let (model, grad_model, data) = committed_mnist(&d);
    let target = ModelTarget { grad_model: &grad_model, model: &model };
    let x = dataset_tensor(&data, 0, 1, &d);
    let label = data.labels[0] as usize;
    // Constants 0.01, 0.1, 1 and 10 in one round: the larger ones succeed within 300 steps
    // (pixels at 0 or 1 sit where tanh is flat, so C&W needs a few hundred steps to move them).
    let params = CwParams { steps: 300, binary_search_steps: 1, initial_const: 1e-2, abort_early: false, constants_at_once: 4, ..CwParams::default() };
    let spec = AttackSpec::Cw(params);
    let out = pollster::block_on(spec.run(&target, x, &Goal::untargeted(vec![label], 10), &mut Silent)).unwrap();
    assert_eq!(out.success, vec![true]);
    assert_eq!(out.images.len(), 784);
    let fresh: Vec<f32> = model.forward(to_tensor(&out.images, ImageShape::MNIST, &d)).into_data().try_to_vec::<f32>().unwrap();
    assert_ne!(argmax_rows(&fresh, 10)[0], label);
    assert_eq!(argmax_rows(&fresh, 10)[0], out.predicted[0]);
    let orig = data.image_f32(0);
    let l2 = out.images.iter().zip(&orig).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
    assert!((l2 - out.l2[0]).abs() < 1e-3);
}

#[test]
fn goal_subset_and_output_merge_by_hand() {
    let goal = Goal::targeted(vec![1, 2, 3], vec![4, 5, 6], 10);
    let sub = goal.subset(&[2, 0]);
    assert_eq!((sub.labels.clone(), sub.targets.clone(), sub.classes), (vec![3, 1], Some(vec![6, 4]), 10));
    assert_eq!(Goal::untargeted(vec![7, 8], 10).subset(&[1]).targets, None);
    // Three 2-pixel images; the rerun of images 2 and 0 fooled image 0 only.
    let mut out = advlab::attacks::AttackOutput {
        images: vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0],
        success: vec![false, true, false],
        l2: vec![0.0, 0.5, 0.0],
        linf: vec![0.0, 0.4, 0.0],
        predicted: vec![1, 9, 3],
        cancelled: false,
    };
    let rerun = advlab::attacks::AttackOutput {
        images: vec![2.0, 2.0, 0.25, 0.5],
        success: vec![false, true],
        l2: vec![0.0, 0.7],
        linf: vec![0.0, 0.5],
        predicted: vec![3, 6],
        cancelled: false,
    };
    out.merge(&[2, 0], rerun);
    assert_eq!(out.images, vec![0.25, 0.5, 1.0, 1.0, 2.0, 2.0]);
    assert_eq!(out.success, vec![true, true, false]);
    assert_eq!((out.l2, out.linf, out.predicted), (vec![0.7, 0.5, 0.0], vec![0.5, 0.4, 0.0], vec![6, 9, 3]));
}

#[test]
fn restarts_rerun_the_images_not_fooled_and_keep_every_claim_true() {
    let d = dev();
    let (model, grad_model, data) = committed_mnist(&d);
    let target = ModelTarget { grad_model: &grad_model, model: &model };
    let n = 6;
    let x = dataset_tensor(&data, 0, n, &d);
    let labels: Vec<usize> = (0..n).map(|i| data.labels[i] as usize).collect();
    let goal = Goal::untargeted(labels.clone(), 10);
    // A budget too small for some images, so the restarts have work to do.
    let base = CwParams { steps: 40, binary_search_steps: 1, initial_const: 0.5, learning_rate: 0.05, abort_early: false, ..CwParams::default() };
    let once = pollster::block_on(AttackSpec::Cw(base.clone()).run(&target, x.clone(), &goal, &mut Silent)).unwrap();
    let spec = AttackSpec::Cw(CwParams { restarts: 3, ..base }); // restarts within RESTART_NOISE
    let out = pollster::block_on(spec.run(&target, x, &goal, &mut Silent)).unwrap();
    // The first run is the same; restarts only add successes.
    for i in 0..n {
        assert!(out.success[i] || !once.success[i], "image {i} lost its success");
        if once.success[i] {
            assert_eq!(out.l2[i], once.l2[i], "image {i} was rerun although fooled");
        }
    }
    // Every claimed success holds on a fresh forward pass of the image returned in its place.
    let fresh: Vec<f32> = model.forward(to_tensor(&out.images, ImageShape::MNIST, &d)).into_data().try_to_vec::<f32>().unwrap();
    let predicted = argmax_rows(&fresh, 10);
    for i in 0..n {
        let orig = data.image_f32(i);
        let img = &out.images[i * 784..(i + 1) * 784];
        if out.success[i] {
            assert_ne!(predicted[i], labels[i], "image {i}");
            assert_eq!(predicted[i], out.predicted[i], "image {i}");
            let l2 = img.iter().zip(&orig).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
            assert!((l2 - out.l2[i]).abs() < 1e-3, "image {i}: {l2} vs {}", out.l2[i]);
        } else {
            assert_eq!(img, &orig[..], "a failed image comes back as the original");
        }
    }
    eprintln!("successes without restarts {}, with 3 restarts {}", once.success.iter().filter(|s| **s).count(), out.success.iter().filter(|s| **s).count());
}
