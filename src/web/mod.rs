//! The only file that touches wasm-bindgen: converts types and errors between JavaScript and
//! the library. Runs inside a module Web Worker (web/worker.js); every call returns a Result so
//! a failure becomes a JS exception with a message, never a panic that kills the instance.

use crate::attacks::{self, AttackTarget, Goal, ModelTarget, Observer, Progress};
use crate::defenses::squeeze::detector_score;
use crate::defenses::{defended_system, SqueezeConfig};
use crate::squeezers::Squeezer;
use crate::evaluate::{run_against, AttackOptions, AttackSpec};
use crate::models::{load_model, Classifier, DatasetKind, ModelManifest};
use crate::{inference, preprocess};
use burn::prelude::*;
use js_sys::{Float32Array, Uint8Array};
use std::collections::HashMap;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Plain JS objects (not Maps) and plain numbers, whatever the Rust value.
fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)
}

fn set(obj: &JsValue, key: &str, value: &JsValue) -> Result<(), JsError> {
    js_sys::Reflect::set(obj, &key.into(), value).map(|_| ()).map_err(|_| JsError::new("cannot build the result object"))
}

/// A loaded classifier: plain for predictions, frozen on the autodiff device for attacks.
pub(crate) struct LoadedModel {
    pub manifest: ModelManifest,
    pub model: Classifier,
    pub attack_model: Classifier,
    /// The feature-squeezing defenses calibrated for this model, once loaded.
    pub squeeze: Option<SqueezeConfig>,
}

#[wasm_bindgen]
pub struct Lab {
    device: Device,
    backend: String,
    note: String,
    models: HashMap<DatasetKind, LoadedModel>,
}

fn dataset(name: &str) -> Result<DatasetKind, JsError> {
    DatasetKind::parse(name).map_err(js_err)
}

#[wasm_bindgen]
impl Lab {
    /// Starts the compute device: WebGPU when asked for and available, else burn's Flex CPU
    /// backend inside wasm. A missing adapter is not an error: the note says why.
    pub async fn create(prefer_webgpu: bool) -> Result<Lab, JsError> {
        let (device, backend, note) = if prefer_webgpu {
            match Device::wgpu_options().graphics_api(burn::tensor::wgpu::WgpuBackend::WebGpu).init_async().await {
                Ok(d) => (d, "webgpu", "WebGPU adapter of this browser".to_string()),
                Err(e) => (Device::flex(), "cpu", format!("WebGPU is not available ({e:?}); running on the CPU inside WebAssembly")),
            }
        } else {
            (Device::flex(), "cpu", "WebGPU was not requested; running on the CPU inside WebAssembly".to_string())
        };
        Ok(Lab { device, backend: backend.into(), note, models: HashMap::new() })
    }

    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    pub fn backend_note(&self) -> String {
        self.note.clone()
    }

    /// Checks the weights against the manifest (sha256, tensor shapes) and keeps the model.
    /// Returns {dataset, classes, input}.
    pub fn load_model(&mut self, manifest_json: &str, weights: &[u8]) -> Result<JsValue, JsError> {
        let manifest = ModelManifest::parse(manifest_json).map_err(js_err)?;
        let model = load_model(&manifest, weights, &self.device).map_err(js_err)?;
        // Attacks need gradients with respect to the input only: frozen weights, dropout off.
        let attack_model = load_model(&manifest, weights, &self.device.clone().autodiff()).map_err(js_err)?.freeze();
        let info = serde_json::json!({
            "dataset": manifest.dataset.name(),
            "classes": manifest.classes,
            "input": manifest.input,
            "test_accuracy": manifest.test_accuracy,
            "architecture": manifest.architecture,
        });
        self.models.insert(manifest.dataset, LoadedModel { manifest, model, attack_model, squeeze: None });
        to_js(&info)
    }

    pub(crate) fn loaded(&self, name: &str) -> Result<&LoadedModel, JsError> {
        let kind = dataset(name)?;
        self.models.get(&kind).ok_or_else(|| JsError::new(&format!("the {} model is not loaded yet", kind.name())))
    }

    /// Softmax probabilities for one image (CHW, [0, 1]).
    pub async fn predict(&self, dataset_name: &str, pixels: Float32Array) -> Result<Float32Array, JsError> {
        let loaded = self.loaded(dataset_name)?;
        let shape = loaded.manifest.dataset.shape();
        let pixels = pixels.to_vec();
        if pixels.len() != shape.len() {
            return Err(JsError::new(&format!("expected {} pixel values, got {}", shape.len(), pixels.len())));
        }
        let x = inference::to_tensor(&pixels, shape, &self.device);
        let probs = inference::probabilities(&loaded.model, x).await.map_err(js_err)?;
        Ok(Float32Array::from(&probs[..]))
    }
}

/// What the page asks of an attack.
#[derive(serde::Deserialize)]
struct AttackRequest {
    attack: String,
    #[serde(default)]
    targeted: bool,
    target: Option<usize>,
    /// none, bit-depth, median or detector
    #[serde(default)]
    defense: String,
    /// Aim at the defense itself (He et al.) rather than at the bare model.
    #[serde(default)]
    adaptive: bool,
    #[serde(flatten)]
    options: AttackOptions,
}

/// Hands progress to a JS callback by the clock (a few reports a second: each costs a
/// read-back) and awaits its answer, which also lets the worker see a "cancel" message.
struct JsObserver {
    callback: js_sys::Function,
    last_ms: f64,
    interval_ms: f64,
}

impl Observer for JsObserver {
    fn due(&mut self, _step: usize) -> bool {
        let now = js_sys::Date::now();
        if now - self.last_ms >= self.interval_ms {
            self.last_ms = now;
            true
        } else {
            false
        }
    }

    async fn report(&mut self, progress: Progress) -> bool {
        let Ok(obj) = to_js(&progress) else { return true };
        let _ = js_sys::Reflect::set(&obj, &"image".into(), &Float32Array::from(&progress.image[..]));
        let answer = match self.callback.call1(&JsValue::NULL, &obj) {
            Ok(v) => v,
            Err(_) => return false,
        };
        let answer = match answer.dyn_into::<js_sys::Promise>() {
            Ok(promise) => match wasm_bindgen_futures::JsFuture::from(promise).await {
                Ok(v) => v,
                Err(_) => return false,
            },
            Err(v) => v,
        };
        answer.as_bool().unwrap_or(true)
    }
}

#[wasm_bindgen]
impl Lab {
    /// Attacks one image. The untargeted goal is to leave the class the model gives now (a
    /// drawn digit has no label); a targeted one names the class to reach. Returns
    /// {success, cancelled, image, l2, linf, probs, predicted, original_predicted,
    ///  rounded: {predicted, probs, still_adversarial}}.
    pub async fn attack(&self, dataset_name: &str, pixels: Float32Array, params: JsValue, on_progress: js_sys::Function) -> Result<JsValue, JsError> {
        let loaded = self.loaded(dataset_name)?;
        let shape = loaded.manifest.dataset.shape();
        let classes = loaded.manifest.classes.len();
        let pixels = pixels.to_vec();
        if pixels.len() != shape.len() {
            return Err(JsError::new(&format!("expected {} pixel values, got {}", shape.len(), pixels.len())));
        }
        let request: AttackRequest = serde_wasm_bindgen::from_value(params).map_err(|e| js_err(format!("attack parameters: {e}")))?;
        let spec = AttackSpec::build(&request.attack, &request.options).map_err(js_err)?;
        let x = inference::to_tensor(&pixels, shape, &self.device);
        let before = inference::probabilities(&loaded.model, x.clone()).await.map_err(js_err)?;
        let original = inference::argmax_rows(&before, classes)[0];
        let goal = match (request.targeted, request.target) {
            (true, Some(t)) if t < classes && t != original => Goal::targeted(vec![original], vec![t], classes),
            (true, Some(t)) => return Err(JsError::new(&format!("target class {t} must be another class than the current prediction ({original})"))),
            (true, None) => return Err(JsError::new("a targeted attack needs a target class")),
            (false, _) => Goal::untargeted(vec![original], classes),
        };
        let system = defended_system(&request.defense, loaded.squeeze.as_ref(), &loaded.attack_model, &loaded.model).map_err(js_err)?;
        let target = system.as_ref();
        let bare = ModelTarget { grad_model: &loaded.attack_model, model: &loaded.model };
        let mut observer = JsObserver { callback: on_progress, last_ms: 0.0, interval_ms: 200.0 };
        let defense = if request.defense.is_empty() { "none" } else { request.defense.as_str() };
        // Non-adaptive against a defense: the example is made on the bare model, then judged by
        // the defended system; the page shows both verdicts.
        let adaptive = request.adaptive || defense == "none";
        let against = run_against(&spec, &[target], &bare, adaptive, x, &goal, shape, &mut observer).await.map_err(js_err)?;
        let (out, bare_out) = (&against.judged[0], against.bare.as_ref());
        let obj = self.describe(target, out, &goal, shape, classes).await?;
        for (k, v) in [("original_predicted", JsValue::from(original as u32)), ("attack", spec.name().into()), ("defense", defense.into()), ("adaptive", request.adaptive.into())] {
            set(&obj, k, &v)?;
        }
        if let Some(made) = bare_out {
            let b = self.describe(&bare, made, &goal, shape, classes).await?;
            for (k, v) in [("original_predicted", JsValue::from(original as u32)), ("attack", spec.name().into()), ("defense", "none".into()), ("adaptive", false.into())] {
                set(&b, k, &v)?;
            }
            set(&obj, "bare", &b)?;
        }
        Ok(obj)
    }
}

impl Lab {
    /// An attack's (single-image) output as the page shows it, by `target`'s verdict: a failed
    /// image comes back as the original, a cancelled run as its best so far; predictions are the
    /// system's (for a preprocessing defense: of the squeezed image); the 8-bit check says
    /// whether the rounded image (what a PNG holds) still does what the goal asks.
    async fn describe(&self, target: &dyn AttackTarget, out: &attacks::AttackOutput, goal: &Goal, shape: crate::data::ImageShape, classes: usize) -> Result<JsValue, JsError> {
        let system_probs = |pixels: &[f32]| {
            let t = inference::to_tensor(pixels, shape, &self.device);
            inference::read_f32(burn::tensor::activation::softmax(target.system_logits(t), 1))
        };
        let probs = system_probs(&out.images).await.map_err(js_err)?;
        let rounded = preprocess::quantize_8bit(&out.images);
        let rounded_probs = system_probs(&rounded).await.map_err(js_err)?;
        let rounded_pred = inference::argmax_rows(&rounded_probs, classes)[0];
        let still = attacks::succeeded(target, inference::to_tensor(&rounded, shape, &self.device), goal.onehot(&self.device), goal.is_targeted(), 0.0);
        let still = out.success[0] && inference::read_f32(still.float()).await.map_err(js_err)?[0] > 0.5;
        let obj = to_js(&serde_json::json!({
            "success": out.success[0],
            "cancelled": out.cancelled,
            "l2": out.l2[0],
            "linf": out.linf[0],
            "predicted": out.predicted[0],
            "rounded": { "predicted": rounded_pred, "still_adversarial": still },
        }))?;
        set(&obj, "image", &Float32Array::from(&out.images[..]))?;
        set(&obj, "probs", &Float32Array::from(&probs[..]))?;
        let rounded_obj = js_sys::Reflect::get(&obj, &"rounded".into()).map_err(|_| JsError::new("cannot build the result object"))?;
        set(&rounded_obj, "probs", &Float32Array::from(&rounded_probs[..]))?;
        Ok(obj)
    }
}

#[wasm_bindgen]
impl Lab {
    /// Attacks a batch of images at once (e.g. the first samples of the pack) with the same
    /// engine as the CLI: `labels` are the true classes; targeted attacks aim at `targets`.
    /// Returns {success: [bool], l2: [f32], linf: [f32], predicted: [usize], cancelled,
    /// success_rate, mean_l2}.
    pub async fn attack_many(
        &self,
        dataset_name: &str,
        pixels: Float32Array,
        labels: Vec<u32>,
        targets: Option<Vec<u32>>,
        params: JsValue,
        on_progress: js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let loaded = self.loaded(dataset_name)?;
        let shape = loaded.manifest.dataset.shape();
        let classes = loaded.manifest.classes.len();
        let pixels = pixels.to_vec();
        if labels.is_empty() || pixels.len() != labels.len() * shape.len() {
            return Err(JsError::new(&format!("expected {} images of {} values, got {} values", labels.len(), shape.len(), pixels.len())));
        }
        let labels: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        if labels.iter().any(|&l| l >= classes) {
            return Err(JsError::new("a label is not a class of this model"));
        }
        let goal = match targets {
            Some(t) if t.len() == labels.len() && t.iter().zip(&labels).all(|(t, l)| (*t as usize) < classes && *t as usize != *l) => {
                Goal::targeted(labels, t.iter().map(|&t| t as usize).collect(), classes)
            }
            Some(_) => return Err(JsError::new("targets must name one other class per image")),
            None => Goal::untargeted(labels, classes),
        };
        let request: AttackRequest = serde_wasm_bindgen::from_value(params).map_err(|e| js_err(format!("attack parameters: {e}")))?;
        let spec = AttackSpec::build(&request.attack, &request.options).map_err(js_err)?;
        let system = defended_system(&request.defense, loaded.squeeze.as_ref(), &loaded.attack_model, &loaded.model).map_err(js_err)?;
        let bare = ModelTarget { grad_model: &loaded.attack_model, model: &loaded.model };
        let mut observer = JsObserver { callback: on_progress, last_ms: 0.0, interval_ms: 200.0 };
        let x = inference::to_tensor(&pixels, shape, &self.device);
        let mut against = run_against(&spec, &[system.as_ref()], &bare, request.adaptive, x, &goal, shape, &mut observer).await.map_err(js_err)?;
        let out = against.judged.remove(0);
        let result = serde_json::json!({
            "success": out.success,
            "l2": out.l2,
            "linf": out.linf,
            "predicted": out.predicted,
            "cancelled": out.cancelled,
            "success_rate": out.success_rate(),
            "mean_l2": out.mean_l2(),
            "attack": spec.name(),
        });
        to_js(&result)
    }
}

#[wasm_bindgen]
impl Lab {
    /// Loads the feature-squeezing configuration (`models/<dataset>-squeeze.json`) of a loaded
    /// model. Returns {threshold, detector: [names], bit_depth, median}.
    pub fn load_defenses(&mut self, json: &str) -> Result<JsValue, JsError> {
        let config: SqueezeConfig = serde_json::from_str(json).map_err(|e| js_err(format!("defense configuration is not valid: {e}")))?;
        let kind = config.dataset;
        let loaded = self.models.get_mut(&kind).ok_or_else(|| JsError::new(&format!("load the {} model before its defenses", kind.name())))?;
        config.check_model(&loaded.manifest.sha256).map_err(js_err)?;
        let info = serde_json::json!({
            "threshold": config.threshold,
            "detector": config.squeezers.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "bit_depth": config.bit_depth.name(),
            "median": config.median.name(),
        });
        loaded.squeeze = Some(config);
        to_js(&info)
    }

    /// What the feature-squeezing defenses see for one image: each squeezed view with the
    /// model's answer on it and its L1 distance to the original's softmax, the detector's score
    /// against its threshold, and the verdict. Returns {threshold, score, flagged, predicted,
    /// probs, views: [{name, image, probs, predicted, l1, in_detector, preprocessing}]}.
    pub async fn squeeze_report(&self, dataset_name: &str, pixels: Float32Array) -> Result<JsValue, JsError> {
        let loaded = self.loaded(dataset_name)?;
        let config = loaded.squeeze.as_ref().ok_or_else(|| JsError::new("the defenses of this data set are not loaded"))?;
        let shape = loaded.manifest.dataset.shape();
        let classes = loaded.manifest.classes.len();
        let pixels = pixels.to_vec();
        if pixels.len() != shape.len() {
            return Err(JsError::new(&format!("expected {} pixel values, got {}", shape.len(), pixels.len())));
        }
        let x = inference::to_tensor(&pixels, shape, &self.device);
        let probs = inference::probabilities(&loaded.model, x.clone()).await.map_err(js_err)?;
        let score = inference::read_f32(detector_score(&loaded.model, x.clone(), &config.squeezers)).await.map_err(js_err)?[0];
        let mut squeezers: Vec<Squeezer> = config.squeezers.clone();
        for s in [config.bit_depth, config.median] {
            if !squeezers.contains(&s) {
                squeezers.push(s);
            }
        }
        let views = js_sys::Array::new();
        for s in squeezers {
            let sx = s.apply(x.clone());
            let image = inference::read_f32(sx.clone()).await.map_err(js_err)?;
            let q = inference::probabilities(&loaded.model, sx).await.map_err(js_err)?;
            let l1: f32 = probs.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum();
            let view = to_js(&serde_json::json!({
                "name": s.name(),
                "predicted": inference::argmax_rows(&q, classes)[0],
                "l1": l1,
                "in_detector": config.squeezers.contains(&s),
                "preprocessing": if s == config.bit_depth { Some("bit-depth") } else if s == config.median { Some("median") } else { None },
            }))?;
            set(&view, "image", &Float32Array::from(&image[..]))?;
            set(&view, "probs", &Float32Array::from(&q[..]))?;
            views.push(&view);
        }
        let report = to_js(&serde_json::json!({
            "threshold": config.threshold,
            "score": score,
            "flagged": score > config.threshold,
            "predicted": inference::argmax_rows(&probs, classes)[0],
        }))?;
        set(&report, "probs", &Float32Array::from(&probs[..]))?;
        set(&report, "views", &views)?;
        Ok(report)
    }
}

/// RGBA pixels of a picture (from a canvas) to the model input of a data set.
#[wasm_bindgen]
pub fn prepare_upload(dataset_name: &str, rgba: Uint8Array, width: u32, height: u32) -> Result<Float32Array, JsError> {
    let kind = dataset(dataset_name)?;
    let pixels = preprocess::prepare(kind, &rgba.to_vec(), width as usize, height as usize).map_err(js_err)?;
    Ok(Float32Array::from(&pixels[..]))
}
