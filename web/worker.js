// advlab compute worker: owns the wasm module and the Lab (model weights, device).
//
// Protocol (page -> worker): {id, type, ...}
//   init     {preference: auto|webgpu|cpu|measure} -> {backend, note, reason, adapter, software, hasGpuApi, probe}
//            (backend-choice.js: a software WebGPU adapter is passed over for the CPU fallback;
//             probe: true asks the page to send "probe" once a model is loaded)
//   probe    {dataset}                           -> {backend, reason, timings: {webgpuMs, cpuMs}}
//            times a few predictions on both backends and keeps the faster (the models loaded so
//            far are loaded into the new one from the bytes kept here)
//   load     {dataset}                           -> {dataset, classes, input, manifest, defenses, defaults, systems}
//                                                   progress: {phase, loaded, total}
//            defaults: Lab.attack_defaults(dataset); systems: Lab.systems(dataset) (null when the engine has none)
//            defenses: {available: true, threshold, detector, bit_depth, median}
//                    | {available: false, reason}    (models/<dataset>-squeeze.json; its absence is no error)
//   predict  {dataset, pixels: Float32Array}     -> {probs: Float32Array}
//   prepare  {dataset, rgba: Uint8Array, width, height} -> {pixels: Float32Array}
//   attack   {dataset, pixels, params}           -> {result}
//                                                   progress: {step, total_steps, loss, l2, best_l2, predicted, image}
//            params.defense: none | bit-depth | median | detector | parts joined by '+'; params.adaptive: bool
//            result: every field the engine returns, copied whole (result.bare: the bare model's
//            example of a non-adaptive run against a defense; flagged, detectors)
//   judge    {dataset, pixels, defense}          -> {verdict: {predicted, probs, flagged, detectors}}
//   attack_many {dataset, pixels (N images), labels, targets|null, params} -> {result}
//                                                   progress: {step, total_steps, loss, l2, best_l2, successes}
//   squeeze  {dataset, pixels}                   -> {report: {threshold, score, flagged, predicted, probs,
//                                                    views: [{name, image, probs, predicted, l1, in_detector, preprocessing}]}}
//            While an attack runs, a "squeeze" request does not wait for it: it runs beside the attack
//            (one at a time; a second one meanwhile is answered {busy: true}), so the page can watch
//            the attack's current image without slowing it down.
//   specialists {dataset}                        -> {info: {members, sets, min_confidence, false_positive_rate,
//                                                    vote_test_accuracy, bytes}, systems}
//            downloads models/<dataset>-specialists.json and its weights (progress as for load) once
//   vote     {dataset, pixels}                   -> {report: {members: [{classes, vote, confidence, counted}],
//                                                    winner, unanimous, confidence, min_confidence, flagged}}
//            runs beside an attack like "squeeze" (the two share the one slot)
//   detectors {dataset, kinds: [gong|metzen|feinman]} -> {systems}
//            downloads models/<dataset>-<kind>.json and its file for each kind not loaded yet
//            (progress as for load, with its kind)
//   detector_report {dataset, pixels, defense}   -> {report: {system, predicted, probs, flagged,
//                                                    detectors: [{name, label, score, threshold, flagged, reading}]}}
//            runs beside an attack like "squeeze"
//   cancel   {target: id of the attack}          (no reply; the attack ends with result.cancelled)
// Replies (worker -> page): {id, type: "result", ...} | {id, type: "error", message, fatal}
//                           | {id, type: "progress", ...}
// All wasm calls run one at a time (a queue), except "squeeze" during an attack (above);
// "cancel" is handled at once.

import { initialChoice, probeChoice, readableNote, isSoftwareAdapter } from './backend-choice.js';
import { field, pick, list, f32, plain, errorMessage, isFatal, fetchOk, readWithProgress, plainReport } from './worker-data.js';
import { watchGpuDevices } from './gpu-watch.js';

// A lost GPU device is announced at once ({id: null, type: 'device-lost', message}); the page then
// moves to a fresh worker on the CPU (web/recover.js) and keeps the image and the settings.
// (Only while the Lab computes on WebGPU: the probe frees the WebGPU Lab it passes over.)
watchGpuDevices((message) => {
  if (lab?.backend?.() === 'webgpu') self.postMessage({ id: null, type: 'device-lost', message });
});

let wasm = null; // the imported module
let lab = null; // the Lab
let backendInfo = null; // what init chose, and why
// The files each loaded model came from: a second Lab (the probe's) loads the same ones.
const loadedFiles = new Map(); // dataset -> {manifestText, weights, defensesText}
let dead = null; // set to a message once the wasm instance is unusable (panic / abort)
const cancelled = new Set();
let attacksRunning = 0; // attacks in progress (they hold the Lab only as a shared borrow)
let besideJob = null; // the promise of a "squeeze" running beside an attack

let queue = Promise.resolve();
function enqueue(job) {
  const run = queue.then(job, job);
  queue = run.catch(() => {});
  return run;
}

function requireLab() {
  if (dead) throw new Error(dead);
  if (!lab) throw new Error('the compute engine is not initialised');
  return lab;
}

/**
 * The feature-squeezing configuration of a data set (models/<dataset>-squeeze.json), handed to the
 * Lab after its model. A missing or unusable file leaves the defenses off; it never fails the load.
 */
async function loadDefenses(l, dataset, post, files) {
  if (typeof l.load_defenses !== 'function') {
    return { available: false, reason: 'this build of the compute engine has no defenses' };
  }
  const url = new URL(`../models/${dataset}-squeeze.json`, import.meta.url);
  post({ type: 'progress', phase: 'defenses', loaded: 0, total: 0 });
  let text;
  try {
    const resp = await fetch(url);
    if (resp.status === 404) {
      return { available: false, missing: true, reason: `the defenses of ${dataset} are not calibrated yet (no ${url.pathname})` };
    }
    if (!resp.ok) return { available: false, reason: `could not download ${url.pathname}: HTTP ${resp.status}` };
    text = await resp.text();
  } catch (e) {
    return { available: false, reason: `could not download ${url.pathname}: ${errorMessage(e)}` };
  }
  try {
    const info = pick(l.load_defenses(text), ['threshold', 'detector', 'bit_depth', 'median']);
    files.defensesText = text;
    return { available: true, ...info, threshold: Number(info.threshold), detector: list(info.detector) ?? [] };
  } catch (e) {
    if (isFatal(e)) throw e;
    return { available: false, reason: `the defense configuration ${url.pathname} was refused: ${errorMessage(e)}` };
  }
}

/**
 * Downloads a model description (models/<file>) and the weights it names (same origin only),
 * with progress: {phase: manifest | weights | decode, loaded, total}.
 */
async function fetchModelFiles(file, what, post) {
  const manifestUrl = new URL(`../models/${file}`, import.meta.url);
  post({ type: 'progress', phase: 'manifest', loaded: 0, total: 0 });
  const manifestText = await (await fetchOk(manifestUrl, `${what} model description`)).text();
  let manifest;
  try {
    manifest = JSON.parse(manifestText);
  } catch (e) {
    throw new Error(`the model description ${manifestUrl.pathname} is not valid JSON: ${errorMessage(e)}`);
  }
  if (!manifest || typeof manifest.weights !== 'string') {
    throw new Error(`the model description ${manifestUrl.pathname} names no weights file`);
  }
  const weightsUrl = new URL(manifest.weights, manifestUrl);
  if (weightsUrl.origin !== self.location.origin) {
    throw new Error(`refusing to load weights from another origin: ${weightsUrl.href}`);
  }
  const weightsResp = await fetchOk(weightsUrl, `${what} weights`);
  const weights = await readWithProgress(weightsResp, (loaded, total) => post({ type: 'progress', phase: 'weights', loaded, total }));
  post({ type: 'progress', phase: 'decode', loaded: weights.length, total: weights.length });
  return { manifestText, manifest, weights };
}

/** The WebGPU adapter this worker would get, described (null: no WebGPU or no adapter). */
async function describeAdapter() {
  if (!self.navigator?.gpu) return null;
  let adapter;
  try {
    adapter = await self.navigator.gpu.requestAdapter();
  } catch {
    return null;
  }
  if (!adapter) return null;
  let info = adapter.info;
  if (!info && typeof adapter.requestAdapterInfo === 'function') info = await adapter.requestAdapterInfo().catch(() => null);
  const out = {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    isFallbackAdapter: !!(info?.isFallbackAdapter ?? adapter.isFallbackAdapter),
  };
  out.software = isSoftwareAdapter(out);
  return out;
}

/** Loads a data set's model (and defenses, when given) into a Lab; returns load_model's answer. */
function loadInto(l, files) {
  const info = l.load_model(files.manifestText, files.weights);
  if (files.defensesText != null && typeof l.load_defenses === 'function') {
    try {
      l.load_defenses(files.defensesText);
    } catch (e) {
      if (isFatal(e)) throw e; // refused configurations were reported at load time
    }
  }
  if (files.specialists) l.load_specialists(files.specialists.manifestText, files.specialists.weights);
  for (const f of Object.values(files.detectors ?? {})) l.load_detector(f.manifestText, f.weights);
  return info;
}

/** Median time (ms) of a few predictions of a blank image, after one to warm up. */
async function timePredict(l, dataset, n, rounds = 3) {
  const x = new Float32Array(n).fill(0.5);
  await l.predict(dataset, x);
  const times = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await l.predict(dataset, x);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const handlers = {
  async init(msg) {
    if (lab) return backendInfo;
    try {
      wasm = await import('../pkg/advlab.js');
      await wasm.default();
    } catch (e) {
      throw new Error(`could not start the WebAssembly module (pkg/advlab.js, pkg/advlab_bg.wasm): ${errorMessage(e)}`);
    }
    const preference = msg.preference ?? (msg.preferWebGpu === false ? 'cpu' : 'auto');
    const hasGpuApi = !!self.navigator?.gpu;
    const adapter = preference === 'cpu' ? null : await describeAdapter();
    const choice = initialChoice({ preference, hasGpuApi, adapter });
    try {
      lab = await wasm.Lab.create(choice.want === 'webgpu');
    } catch (e) {
      throw new Error(`could not create the compute backend: ${errorMessage(e)}`);
    }
    const backend = lab.backend();
    const note = readableNote(lab.backend_note());
    const reason =
      choice.want === 'webgpu' && backend !== 'webgpu'
        ? `WebGPU could not start here${note ? ` (${note.replace(/;?\s*running on the CPU inside WebAssembly\.?$/i, '')})` : ''}; the page computes on the CPU inside WebAssembly.`
        : choice.reason;
    backendInfo = {
      backend,
      note,
      reason,
      adapter,
      hasGpuApi,
      preference,
      software: backend === 'webgpu' && !!adapter?.software,
      probe: choice.probe && backend === 'webgpu',
    };
    return backendInfo;
  },

  async probe(msg) {
    const l = requireLab();
    if (l.backend() !== 'webgpu') return { backend: l.backend(), reason: backendInfo.reason, probe: false };
    const files = loadedFiles.get(msg.dataset);
    if (!files) throw new Error(`load the ${msg.dataset} model before the probe`);
    const other = await wasm.Lab.create(false);
    try {
      const info = loadInto(other, files);
      const n = list(field(info, 'input')).map(Number).reduce((a, b) => a * b, 1);
      const webgpuMs = await timePredict(l, msg.dataset, n);
      const cpuMs = await timePredict(other, msg.dataset, n);
      const choice = probeChoice({ webgpuMs, cpuMs });
      if (choice.backend === 'cpu') {
        for (const [ds, f] of loadedFiles) if (ds !== msg.dataset) loadInto(other, f);
        lab = other;
        l.free?.();
      } else {
        other.free?.();
      }
      backendInfo = { ...backendInfo, backend: lab.backend(), reason: choice.reason, software: false, probe: false, timings: { webgpuMs, cpuMs } };
      return backendInfo;
    } catch (e) {
      if (lab !== other) other.free?.();
      throw e;
    }
  },

  async load(msg, post) {
    const l = requireLab();
    const { manifestText, manifest, weights } = await fetchModelFiles(`${msg.dataset}.json`, `the ${msg.dataset}`, post);
    let info;
    try {
      info = pick(l.load_model(manifestText, weights), ['dataset', 'classes', 'input']);
    } catch (e) {
      if (isFatal(e)) throw e;
      throw new Error(`the ${msg.dataset} weights could not be loaded: ${errorMessage(e)}`);
    }
    const files = { manifestText, weights, defensesText: null };
    loadedFiles.set(msg.dataset, files);
    const { weights: _w, ...meta } = manifest;
    const defenses = await loadDefenses(l, msg.dataset, post, files);
    const dataset = info.dataset ?? msg.dataset;
    return {
      dataset,
      classes: list(info.classes ?? manifest.classes),
      input: list(info.input ?? manifest.input).map(Number),
      manifest: meta,
      defenses,
      defaults: typeof l.attack_defaults === 'function' ? plain(l.attack_defaults(dataset)) : null,
      systems: typeof l.systems === 'function' ? plain(l.systems(dataset)) : null,
    };
  },

  async predict(msg) {
    const l = requireLab();
    const probs = f32(await l.predict(msg.dataset, msg.pixels));
    return { probs, transfer: [probs.buffer] };
  },

  async prepare(msg) {
    requireLab();
    const pixels = f32(wasm.prepare_upload(msg.dataset, msg.rgba, msg.width, msg.height));
    return { pixels, transfer: [pixels.buffer] };
  },

  async judge(msg) {
    const l = requireLab();
    if (typeof l.judge !== 'function') throw new Error('this build of the compute engine cannot judge a system (rebuild pkg/)');
    const transfer = [];
    const verdict = plain(await l.judge(msg.dataset, msg.pixels, msg.defense || 'none'), transfer);
    verdict.flagged = !!verdict.flagged;
    return { verdict, transfer };
  },

  async attack(msg, post) {
    const l = requireLab();
    const id = msg.id;
    const onProgress = async (raw) => {
      const transfer = [];
      const p = plain(pick(raw, ['step', 'total_steps', 'loss', 'l2', 'best_l2', 'predicted', 'image']), transfer);
      post({ type: 'progress', ...p }, transfer);
      await new Promise((r) => setTimeout(r, 0)); // let a "cancel" message in
      return !cancelled.has(id);
    };
    attacksRunning++;
    try {
      const transfer = [];
      const result = plain(await l.attack(msg.dataset, msg.pixels, msg.params, onProgress), transfer);
      return { result, transfer };
    } finally {
      attacksRunning--;
      cancelled.delete(id);
      await besideJob; // the Lab is free for the next request only once a report beside it is done
    }
  },

  async attack_many(msg, post) {
    const l = requireLab();
    if (typeof l.attack_many !== 'function') throw new Error('this build of the compute engine cannot attack a batch');
    const id = msg.id;
    const onProgress = async (raw) => {
      const p = pick(raw, ['step', 'total_steps', 'loss', 'l2', 'best_l2', 'successes', 'predicted']);
      post({ type: 'progress', ...p });
      await new Promise((r) => setTimeout(r, 0));
      return !cancelled.has(id);
    };
    const labels = Uint32Array.from(msg.labels);
    const targets = msg.targets == null ? null : Uint32Array.from(msg.targets);
    attacksRunning++;
    try {
      const raw = await l.attack_many(msg.dataset, msg.pixels, labels, targets, msg.params, onProgress);
      const r = pick(raw, ['success', 'l2', 'linf', 'predicted', 'cancelled', 'success_rate', 'mean_l2', 'attack']);
      for (const k of ['success', 'l2', 'linf', 'predicted']) r[k] = list(r[k]);
      return { result: r };
    } finally {
      attacksRunning--;
      cancelled.delete(id);
      await besideJob;
    }
  },

  async specialists(msg, post) {
    const l = requireLab();
    if (typeof l.load_specialists !== 'function') throw new Error('this build of the compute engine has no Specialists+1 (rebuild pkg/)');
    const files = loadedFiles.get(msg.dataset);
    if (!files) throw new Error(`load the ${msg.dataset} model before its specialists`);
    if (!files.specialists) {
      const { manifestText, weights } = await fetchModelFiles(`${msg.dataset}-specialists.json`, 'the specialists', post);
      try {
        files.specialistsInfo = plain(l.load_specialists(manifestText, weights));
      } catch (e) {
        if (isFatal(e)) throw e;
        throw new Error(`the specialists could not be loaded: ${errorMessage(e)}`);
      }
      files.specialists = { manifestText, weights };
    }
    return { info: files.specialistsInfo, systems: plain(l.systems(msg.dataset)) };
  },

  async detectors(msg, post) {
    const l = requireLab();
    if (typeof l.load_detector !== 'function') throw new Error('this build of the compute engine has no case-study-3 detectors (rebuild pkg/)');
    const files = loadedFiles.get(msg.dataset);
    if (!files) throw new Error(`load the ${msg.dataset} model before its detectors`);
    files.detectors ??= {};
    for (const kind of msg.kinds ?? []) {
      if (files.detectors[kind]) continue;
      const got = await fetchModelFiles(`${msg.dataset}-${kind}.json`, `the ${kind} detector`, (m) => post({ ...m, kind }));
      try {
        l.load_detector(got.manifestText, got.weights);
      } catch (e) {
        if (isFatal(e)) throw e;
        throw new Error(`the ${kind} detector could not be loaded: ${errorMessage(e)}`);
      }
      files.detectors[kind] = { manifestText: got.manifestText, weights: got.weights };
    }
    return { systems: plain(l.systems(msg.dataset)) };
  },

  async detector_report(msg) {
    const l = requireLab();
    if (typeof l.detector_report !== 'function') throw new Error('this build of the compute engine has no case-study-3 detectors (rebuild pkg/)');
    return { report: plain(await l.detector_report(msg.dataset, msg.pixels, msg.defense)) };
  },

  async vote(msg) {
    const l = requireLab();
    if (typeof l.vote_report !== 'function') throw new Error('this build of the compute engine has no Specialists+1 (rebuild pkg/)');
    return { report: plain(await l.vote_report(msg.dataset, msg.pixels)) };
  },

  async squeeze(msg) {
    const l = requireLab();
    if (typeof l.squeeze_report !== 'function') throw new Error('this build of the compute engine has no defenses');
    return plainReport(await l.squeeze_report(msg.dataset, msg.pixels));
  },
};

/** Runs a request and posts its answer (or its error). */
async function answer(msg, handler, post) {
  try {
    const { transfer = [], ...out } = (await handler(msg, post)) ?? {};
    post({ type: 'result', ...out }, transfer);
  } catch (e) {
    const fatal = isFatal(e);
    if (fatal && !dead) dead = `the compute engine crashed (${errorMessage(e)}); reload the page`;
    post({ type: 'error', message: errorMessage(e), fatal, status: e?.status });
  }
}

self.onmessage = (ev) => {
  const msg = ev.data;
  if (!msg || typeof msg !== 'object') return;
  if (msg.type === 'cancel') {
    cancelled.add(msg.target);
    return;
  }
  const handler = handlers[msg.type];
  const post = (m, transfer = []) => self.postMessage({ ...m, id: msg.id }, transfer);
  if (!handler) {
    post({ type: 'error', message: `unknown request type: ${msg.type}` });
    return;
  }
  if (['squeeze', 'vote', 'detector_report'].includes(msg.type) && attacksRunning > 0) {
    // Beside the attack: both only read the Lab. One at a time; the page asks again later.
    if (besideJob) {
      post({ type: 'result', busy: true });
      return;
    }
    besideJob = answer(msg, handler, post).finally(() => {
      besideJob = null;
    });
    return;
  }
  enqueue(() => answer(msg, handler, post));
};

self.addEventListener('unhandledrejection', (ev) => {
  self.postMessage({ id: null, type: 'error', message: `worker: ${errorMessage(ev.reason)}`, fatal: false });
});
