// advlab compute worker: owns the wasm module and the Lab (model weights, device).
//
// Protocol (page -> worker): {id, type, ...}
//   init     {preferWebGpu}                      -> {backend, note}
//   load     {dataset}                           -> {dataset, classes, input, manifest, defenses}
//                                                   progress: {phase, loaded, total}
//            defenses: {available: true, threshold, detector, bit_depth, median}
//                    | {available: false, reason}    (models/<dataset>-squeeze.json; its absence is no error)
//   predict  {dataset, pixels: Float32Array}     -> {probs: Float32Array}
//   prepare  {dataset, rgba: Uint8Array, width, height} -> {pixels: Float32Array}
//   attack   {dataset, pixels, params}           -> {result}
//                                                   progress: {step, total_steps, loss, l2, best_l2, predicted, image}
//            params.defense: none | bit-depth | median | detector; params.adaptive: bool
//   attack_many {dataset, pixels (N images), labels, targets|null, params} -> {result}
//                                                   progress: {step, total_steps, loss, l2, best_l2, successes}
//   squeeze  {dataset, pixels}                   -> {report: {threshold, score, flagged, predicted, probs,
//                                                    views: [{name, image, probs, predicted, l1, in_detector, preprocessing}]}}
//            While an attack runs, a "squeeze" request does not wait for it: it runs beside the attack
//            (one at a time; a second one meanwhile is answered {busy: true}), so the page can watch
//            the attack's current image without slowing it down.
//   cancel   {target: id of the attack}          (no reply; the attack ends with result.cancelled)
// Replies (worker -> page): {id, type: "result", ...} | {id, type: "error", message, fatal}
//                           | {id, type: "progress", ...}
// All wasm calls run one at a time (a queue), except "squeeze" during an attack (above);
// "cancel" is handled at once.

let wasm = null; // the imported module
let lab = null; // the Lab
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

/** Reads a field of a value from wasm: a plain object, a Map (serde-wasm-bindgen) or a class with getters. */
function field(o, k) {
  if (o == null) return undefined;
  if (o instanceof Map && o.has(k)) return o.get(k);
  return o[k]; // also properties set on a Map, and getters of wasm-bindgen classes
}

/** Copies the named fields out of a wasm value into a plain object. */
function pick(o, keys) {
  const out = {};
  for (const k of keys) {
    const v = field(o, k);
    out[k] = typeof v === 'bigint' ? Number(v) : v;
  }
  return out;
}

function list(v) {
  return v == null ? v : Array.from(v);
}

/** A fresh Float32Array copy (never a view on wasm memory, which must not be transferred). */
function f32(v) {
  if (v == null) return null;
  return Float32Array.from(v);
}

function errorMessage(e) {
  if (e == null) return 'unknown error';
  if (typeof e === 'string') return e;
  if (e instanceof Error) return e.message || String(e);
  if (typeof e === 'object' && 'message' in e) return String(e.message);
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}

function isFatal(e) {
  // A Rust panic (panic = "abort") or a trap leaves the instance unusable.
  return e instanceof WebAssembly.RuntimeError || /unreachable|RuntimeError|memory access out of bounds/i.test(errorMessage(e));
}

function requireLab() {
  if (dead) throw new Error(dead);
  if (!lab) throw new Error('the compute engine is not initialised');
  return lab;
}

async function fetchOk(url, what) {
  let resp;
  try {
    resp = await fetch(url);
  } catch (e) {
    throw new Error(`could not download ${what} (${url}): ${errorMessage(e)}`);
  }
  if (!resp.ok) {
    const err = new Error(`could not download ${what} (${url}): HTTP ${resp.status} ${resp.statusText}`.trim());
    err.status = resp.status;
    throw err;
  }
  return resp;
}

async function readWithProgress(resp, onProgress) {
  const total = Number(resp.headers.get('Content-Length')) || 0;
  if (!resp.body || !resp.body.getReader) return new Uint8Array(await resp.arrayBuffer());
  const reader = resp.body.getReader();
  const chunks = [];
  let loaded = 0;
  let last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    const now = Date.now();
    if (now - last > 100) {
      last = now;
      onProgress(loaded, total);
    }
  }
  onProgress(loaded, total);
  const out = new Uint8Array(loaded);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/**
 * The feature-squeezing configuration of a data set (models/<dataset>-squeeze.json), handed to the
 * Lab after its model. A missing or unusable file leaves the defenses off; it never fails the load.
 */
async function loadDefenses(l, dataset, post) {
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
    return { available: true, ...info, threshold: Number(info.threshold), detector: list(info.detector) ?? [] };
  } catch (e) {
    if (isFatal(e)) throw e;
    return { available: false, reason: `the defense configuration ${url.pathname} was refused: ${errorMessage(e)}` };
  }
}

/** A squeeze report with plain fields and fresh (transferable) arrays. */
function plainReport(raw) {
  const r = pick(raw, ['threshold', 'score', 'flagged', 'predicted', 'probs']);
  r.probs = f32(r.probs);
  r.flagged = !!r.flagged;
  r.views = Array.from(field(raw, 'views') ?? [], (v) => {
    const o = pick(v, ['name', 'image', 'probs', 'predicted', 'l1', 'in_detector', 'preprocessing']);
    o.image = f32(o.image);
    o.probs = f32(o.probs);
    o.in_detector = !!o.in_detector;
    o.preprocessing = o.preprocessing ?? null;
    return o;
  });
  const transfer = [r.probs, ...r.views.flatMap((v) => [v.image, v.probs])].filter(Boolean).map((a) => a.buffer);
  return { report: r, transfer };
}

const handlers = {
  async init(msg) {
    if (lab) return { backend: lab.backend(), note: lab.backend_note() };
    try {
      wasm = await import('../pkg/advlab.js');
      await wasm.default();
    } catch (e) {
      throw new Error(`could not start the WebAssembly module (pkg/advlab.js, pkg/advlab_bg.wasm): ${errorMessage(e)}`);
    }
    try {
      lab = await wasm.Lab.create(!!msg.preferWebGpu);
    } catch (e) {
      throw new Error(`could not create the compute backend: ${errorMessage(e)}`);
    }
    return { backend: lab.backend(), note: lab.backend_note() };
  },

  async load(msg, post) {
    const l = requireLab();
    const manifestUrl = new URL(`../models/${msg.dataset}.json`, import.meta.url);
    post({ type: 'progress', phase: 'manifest', loaded: 0, total: 0 });
    const manifestResp = await fetchOk(manifestUrl, `the ${msg.dataset} model description`);
    const manifestText = await manifestResp.text();
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
    const weightsResp = await fetchOk(weightsUrl, `the ${msg.dataset} weights`);
    const weights = await readWithProgress(weightsResp, (loaded, total) =>
      post({ type: 'progress', phase: 'weights', loaded, total }),
    );
    post({ type: 'progress', phase: 'decode', loaded: weights.length, total: weights.length });
    let info;
    try {
      info = pick(l.load_model(manifestText, weights), ['dataset', 'classes', 'input']);
    } catch (e) {
      if (isFatal(e)) throw e;
      throw new Error(`the ${msg.dataset} weights could not be loaded: ${errorMessage(e)}`);
    }
    const { weights: _w, ...meta } = manifest;
    const defenses = await loadDefenses(l, msg.dataset, post);
    return {
      dataset: info.dataset ?? msg.dataset,
      classes: list(info.classes ?? manifest.classes),
      input: list(info.input ?? manifest.input).map(Number),
      manifest: meta,
      defenses,
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

  async attack(msg, post) {
    const l = requireLab();
    const id = msg.id;
    const onProgress = async (raw) => {
      const p = pick(raw, ['step', 'total_steps', 'loss', 'l2', 'best_l2', 'predicted', 'image']);
      const image = f32(p.image);
      post(
        {
          type: 'progress',
          step: p.step,
          total_steps: p.total_steps,
          loss: p.loss,
          l2: p.l2,
          best_l2: p.best_l2,
          predicted: p.predicted,
          image,
        },
        image ? [image.buffer] : [],
      );
      await new Promise((r) => setTimeout(r, 0)); // let a "cancel" message in
      return !cancelled.has(id);
    };
    attacksRunning++;
    try {
      const raw = await l.attack(msg.dataset, msg.pixels, msg.params, onProgress);
      const r = pick(raw, ['success', 'cancelled', 'image', 'l2', 'linf', 'probs', 'predicted', 'original_predicted']);
      const rr = field(raw, 'rounded');
      const image = f32(r.image);
      const probs = f32(r.probs);
      const rounded = rr == null ? null : pick(rr, ['predicted', 'probs', 'still_adversarial']);
      if (rounded) rounded.probs = f32(rounded.probs);
      const extra = pick(raw, ['defense', 'adaptive', 'attack']);
      const result = { ...extra, ...r, image, probs, rounded };
      const transfer = [image, probs, rounded?.probs].filter(Boolean).map((a) => a.buffer);
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
  if (msg.type === 'squeeze' && attacksRunning > 0) {
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
