//! The only file that touches wasm-bindgen: converts types and errors between JavaScript and
//! the library's [`Engine`] (which the CLI uses too). Runs inside a module Web Worker
//! (web/worker.js); every call returns a Result so a failure becomes a JS exception with a
//! message, never a panic that kills the instance.

use crate::attacks::{Observer, Progress};
use crate::data::DatasetKind;
use crate::engine::{self, AttackRequest, Engine, ImageOutcome};
use crate::preprocess;
use burn::prelude::*;
use js_sys::{Float32Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

// The linker's static constructors. burn's kernel compiler (CubeCL, through pliron) registers
// its IR dialects with `inventory`, i.e. with static constructors. A wasm module that never
// calls `__wasm_call_ctors` itself is linked "command-style": wasm-ld then wraps *every*
// export in a call of all constructors, so each call from JavaScript (and each resumed promise
// of an async call) re-ran them: ~500 ms per call on WebGPU in a profile of the page, most of
// a warm `predict`. Calling them once here makes the module "reactor-style": exports are
// called as they are.
#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    fn __wasm_call_ctors();
}

#[wasm_bindgen(start)]
pub fn start() {
    // SAFETY: the linker's constructor function, called once, before any other export runs
    // (wasm-bindgen's start function is the first thing the module's initialisation calls).
    #[cfg(target_arch = "wasm32")]
    unsafe {
        __wasm_call_ctors()
    };
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

fn f32s(v: &[f32]) -> JsValue {
    Float32Array::from(v).into()
}

fn dataset(name: &str) -> Result<DatasetKind, JsError> {
    DatasetKind::parse(name).map_err(js_err)
}

fn request(params: JsValue) -> Result<AttackRequest, JsError> {
    serde_wasm_bindgen::from_value(params).map_err(|e| js_err(format!("attack parameters: {e}")))
}

#[wasm_bindgen]
pub struct Lab {
    engine: Engine,
    backend: String,
    note: String,
}

/// Why a WebGPU adapter could not be used, as a sentence (not a debug dump).
fn adapter_note(e: impl std::fmt::Debug) -> String {
    let raw = format!("{e:?}");
    let why = if raw.contains("AdapterUnavailable") || raw.contains("Adapter") {
        "this browser offers no WebGPU adapter".to_string()
    } else {
        format!("WebGPU could not start ({})", raw.chars().take(120).collect::<String>())
    };
    format!("{why}; running on the CPU inside WebAssembly")
}

#[wasm_bindgen]
impl Lab {
    /// Starts the compute device: WebGPU when asked for and available, else burn's Flex CPU
    /// backend inside wasm. A missing adapter is not an error: the note says why.
    pub async fn create(prefer_webgpu: bool) -> Result<Lab, JsError> {
        let (device, backend, note) = if prefer_webgpu {
            match Device::wgpu_options().graphics_api(burn::tensor::wgpu::WgpuBackend::WebGpu).init_async().await {
                Ok(d) => (d, "webgpu", "WebGPU adapter of this browser".to_string()),
                Err(e) => (Device::flex(), "cpu", adapter_note(e)),
            }
        } else {
            (Device::flex(), "cpu", "WebGPU was not requested; running on the CPU inside WebAssembly".to_string())
        };
        Ok(Lab { engine: Engine::new(device), backend: backend.into(), note })
    }

    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    pub fn backend_note(&self) -> String {
        self.note.clone()
    }

    /// Checks the weights against the manifest (sha256, tensor shapes) and keeps the classifier
    /// in the model set. Returns {name, dataset, classes, input, test_accuracy, architecture}.
    pub fn load_model(&mut self, manifest_json: &str, weights: &[u8]) -> Result<JsValue, JsError> {
        let loaded = self.engine.load_classifier(manifest_json, weights).map_err(js_err)?;
        let m = &loaded.manifest;
        to_js(&serde_json::json!({
            "name": loaded.name(),
            "dataset": m.dataset.name(),
            "classes": m.classes,
            "input": m.input,
            "test_accuracy": m.test_accuracy,
            "architecture": m.architecture,
        }))
    }

    /// Softmax probabilities of the data set's generalist for one image (CHW, [0, 1]).
    pub async fn predict(&self, dataset_name: &str, pixels: Float32Array) -> Result<Float32Array, JsError> {
        let probs = self.engine.predict(dataset(dataset_name)?, &pixels.to_vec()).await.map_err(js_err)?;
        Ok(Float32Array::from(&probs[..]))
    }

    /// Every attack's defaults for a data set: {cw: {...}, pgd: {...}, fgsm: {...}}.
    pub fn attack_defaults(&self, dataset_name: &str) -> Result<JsValue, JsError> {
        to_js(&engine::attack_defaults(dataset(dataset_name)?))
    }

    /// The systems the page can offer: [{name, label, parts, available, reason?}].
    pub fn systems(&self, dataset_name: &str) -> Result<JsValue, JsError> {
        to_js(&self.engine.presets(dataset(dataset_name)?))
    }

    /// The verdict of a spelled system (e.g. `bit-depth+detector`) on one image:
    /// {system, predicted, probs, flagged, detectors: [{name, score, threshold, flagged}]}.
    pub async fn judge(&self, dataset_name: &str, pixels: Float32Array, defense: &str) -> Result<JsValue, JsError> {
        let (spec, j) = self.engine.judge(dataset(dataset_name)?, &pixels.to_vec(), defense).await.map_err(js_err)?;
        let obj = to_js(&j)?;
        set(&obj, "system", &to_js(&spec)?)?;
        set(&obj, "probs", &f32s(&j.probs))?;
        Ok(obj)
    }
}

/// Hands progress to a JS callback by the clock (a few reports a second: each costs a
/// read-back) and awaits its answer, which also lets the worker see a "cancel" message.
struct JsObserver {
    callback: js_sys::Function,
    last_ms: f64,
    interval_ms: f64,
}

impl JsObserver {
    fn new(callback: js_sys::Function) -> Self {
        JsObserver { callback, last_ms: 0.0, interval_ms: 200.0 }
    }
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
        let _ = js_sys::Reflect::set(&obj, &"image".into(), &f32s(&progress.image));
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

/// An outcome with its pixel arrays as Float32Arrays.
fn outcome_js(o: &ImageOutcome) -> Result<JsValue, JsError> {
    let obj = to_js(o)?;
    set(&obj, "image", &f32s(&o.image))?;
    set(&obj, "probs", &f32s(&o.probs))?;
    let rounded = js_sys::Reflect::get(&obj, &"rounded".into()).map_err(|_| JsError::new("cannot build the result object"))?;
    set(&rounded, "probs", &f32s(&o.rounded.probs))?;
    Ok(obj)
}

#[wasm_bindgen]
impl Lab {
    /// Attacks one image (see [`Engine::attack_one`]). Returns {success, cancelled, image, l2,
    /// linf, probs, predicted, original_predicted, attack, defense, adaptive, flagged,
    /// detectors, rounded: {predicted, probs, still_adversarial}, bare?: the same for the
    /// bare model's example of a non-adaptive attack on a defense}.
    pub async fn attack(&self, dataset_name: &str, pixels: Float32Array, params: JsValue, on_progress: js_sys::Function) -> Result<JsValue, JsError> {
        let request = request(params)?;
        let mut observer = JsObserver::new(on_progress);
        let one = self.engine.attack_one(dataset(dataset_name)?, &pixels.to_vec(), &request, &mut observer).await.map_err(js_err)?;
        let obj = outcome_js(&one.result)?;
        if let Some(bare) = &one.bare {
            set(&obj, "bare", &outcome_js(bare)?)?;
        }
        Ok(obj)
    }

    /// Attacks a batch of images at once (e.g. the first samples of the pack) with the same
    /// engine as the CLI: `labels` are the true classes; targeted attacks aim at `targets`.
    /// Returns {success: [bool], l2: [f32], linf: [f32], predicted: [usize], cancelled,
    /// success_rate, mean_l2, attack}.
    pub async fn attack_many(
        &self,
        dataset_name: &str,
        pixels: Float32Array,
        labels: Vec<u32>,
        targets: Option<Vec<u32>>,
        params: JsValue,
        on_progress: js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let request = request(params)?;
        let labels = labels.iter().map(|&l| l as usize).collect();
        let targets = targets.map(|t| t.iter().map(|&t| t as usize).collect());
        let mut observer = JsObserver::new(on_progress);
        let (spec, out) = self.engine.attack_batch(dataset(dataset_name)?, &pixels.to_vec(), labels, targets, &request, &mut observer).await.map_err(js_err)?;
        to_js(&serde_json::json!({
            "success": out.success,
            "l2": out.l2,
            "linf": out.linf,
            "predicted": out.predicted,
            "cancelled": out.cancelled,
            "success_rate": out.success_rate(),
            "mean_l2": out.mean_l2(),
            "attack": spec.name(),
        }))
    }

    /// Loads the feature-squeezing configuration (`models/<dataset>-squeeze.json`) of a loaded
    /// model. Returns {threshold, detector: [names], bit_depth, median}.
    pub fn load_defenses(&mut self, json: &str) -> Result<JsValue, JsError> {
        let config = self.engine.load_squeeze(json).map_err(js_err)?;
        to_js(&serde_json::json!({
            "threshold": config.threshold,
            "detector": config.squeezers.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "bit_depth": config.bit_depth.name(),
            "median": config.median.name(),
        }))
    }

    /// What the feature-squeezing defenses see for one image. Returns {threshold, score,
    /// flagged, predicted, probs, views: [{name, image, probs, predicted, l1, in_detector,
    /// preprocessing}]}.
    pub async fn squeeze_report(&self, dataset_name: &str, pixels: Float32Array) -> Result<JsValue, JsError> {
        let report = self.engine.squeeze_report(dataset(dataset_name)?, &pixels.to_vec()).await.map_err(js_err)?;
        let obj = to_js(&report)?;
        set(&obj, "probs", &f32s(&report.probs))?;
        let views = js_sys::Array::new();
        for v in &report.views {
            let view = to_js(v)?;
            set(&view, "image", &f32s(&v.image))?;
            set(&view, "probs", &f32s(&v.probs))?;
            views.push(&view);
        }
        set(&obj, "views", &views)?;
        Ok(obj)
    }

    /// Loads the Specialists+1 ensemble (`models/mnist-specialists.json` and the weights it
    /// names), checked against its manifest and the loaded generalist. Returns {members,
    /// sets: [[class]], min_confidence, false_positive_rate, vote_test_accuracy, bytes}.
    pub fn load_specialists(&mut self, manifest_json: &str, weights: &[u8]) -> Result<JsValue, JsError> {
        let m = self.engine.load_specialists(manifest_json, weights).map_err(js_err)?;
        let d = m.detector.as_ref();
        to_js(&serde_json::json!({
            "members": m.specialists.len() + 1,
            "sets": m.member_sets(m.dataset.class_names().len()),
            "min_confidence": d.map(|d| d.min_confidence),
            "false_positive_rate": d.map(|d| d.false_positive_rate),
            "vote_test_accuracy": m.vote_test_accuracy,
            "bytes": m.bytes,
        }))
    }

    /// Loads one of case study 3's detectors (`models/<dataset>-<gong|metzen|feinman>.json` and the
    /// file it names), checked against its manifest and the loaded classifier. Returns {kind,
    /// threshold, false_positive_rate, bytes}.
    pub fn load_detector(&mut self, manifest_json: &str, bytes: &[u8]) -> Result<JsValue, JsError> {
        let m = self.engine.load_detector(manifest_json, bytes).map_err(js_err)?;
        to_js(&serde_json::json!({
            "kind": m.kind.name(),
            "threshold": m.threshold,
            "false_positive_rate": m.false_positive_rate,
            "bytes": m.bytes,
        }))
    }

    /// The detectors panel for one image under a spelled system (e.g. `gong+metzen+feinman`):
    /// {system, predicted, probs, flagged, detectors: [{name, label, score, threshold, flagged,
    /// reading}]}.
    pub async fn detector_report(&self, dataset_name: &str, pixels: Float32Array, defense: &str) -> Result<JsValue, JsError> {
        let report = self.engine.detector_report(dataset(dataset_name)?, &pixels.to_vec(), defense).await.map_err(js_err)?;
        let obj = to_js(&report)?;
        set(&obj, "probs", &f32s(&report.probs))?;
        Ok(obj)
    }

    /// The Specialists+1 vote on one image: {members: [{classes, vote, confidence, counted}],
    /// winner, unanimous, confidence, min_confidence, flagged}.
    pub async fn vote_report(&self, dataset_name: &str, pixels: Float32Array) -> Result<JsValue, JsError> {
        to_js(&self.engine.vote_report(dataset(dataset_name)?, &pixels.to_vec()).await.map_err(js_err)?)
    }
}

/// RGBA pixels of a picture (from a canvas) to the model input of a data set.
#[wasm_bindgen]
pub fn prepare_upload(dataset_name: &str, rgba: Uint8Array, width: u32, height: u32) -> Result<Float32Array, JsError> {
    let kind = dataset(dataset_name)?;
    let pixels = preprocess::prepare(kind, &rgba.to_vec(), width as usize, height as usize).map_err(js_err)?;
    Ok(Float32Array::from(&pixels[..]))
}
