// The in-browser half of the benchmark (tests/bench/run.mjs drives it through window.bench).
//
// Contestants:
//   lab-webgpu, lab-cpu   the lab's real engine from pkg/ (Lab.create(true) / Lab.create(false)),
//                         called as the page's worker calls it (attack_many, predict)
//   tfjs-<backend>        TensorFlow.js (global `tf`, UMD builds from node_modules) on webgpu, webgl,
//                         wasm and cpu, running the same nets with the same weights (models/*.safetensors)
//                         and the same Carlini-Wagner L2 step as src/attacks/cw.rs
//
// Every measurement starts after a warm-up (pipelines compiled, buffers allocated) and is timed with
// performance.now() around work that ends in a read-back, so queued GPU work is inside the time.

/* global tf */

// Which backend each engine contestant asks for. base-*: the same engine from an older pkg/ (the
// baseline of BENCH_BASELINE, extracted by run.mjs; its URL comes in the page's ?baseline= parameter).
const LABS = { 'lab-webgpu': true, 'lab-cpu': false, 'base-webgpu': true, 'base-cpu': false };
const BASELINE_URL = new URLSearchParams(location.search).get('baseline');
const isLab = (c) => c in LABS;
const moduleOf = (c) => (c.startsWith('base-') ? 'base' : 'lab');
const TF_BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'];

const state = {
  modules: {}, // 'lab' | 'base' -> {mod: the module pkg/advlab.js, exports: its instance's exports (memory)}
  labs: {}, // contestant -> Lab
  labNotes: {},
  data: {}, // dataset -> {manifestText, manifest, weightsBytes, tensors, samples: Float32Array (CHW), labels, shape}
  nets: {}, // tf backend -> dataset -> net (weight tensors on that backend)
  tfUnavailable: {}, // backend -> reason
};

const now = () => performance.now();

// WebGPU call counters: the prototypes are wrapped before any engine asks for a device, so every
// call of the lab (wgpu through wasm-bindgen calls these same JS methods) and of tfjs is counted.
// A measurement reports the calls per step: kernel dispatches, pipelines and buffers created,
// submissions, uploads and read-backs, which is where fixed costs per step come from.
const GPU_COUNTS = {};
function countCalls(proto, names) {
  if (!proto) return;
  for (const name of names) {
    const f = proto[name];
    if (typeof f !== 'function') continue;
    GPU_COUNTS[name] = 0;
    proto[name] = function (...args) {
      GPU_COUNTS[name]++;
      return f.apply(this, args);
    };
  }
}
if (self.GPUDevice) {
  countCalls(GPUDevice.prototype, ['createComputePipeline', 'createComputePipelineAsync', 'createShaderModule', 'createBindGroup', 'createBuffer', 'createCommandEncoder']);
  countCalls(GPUCommandEncoder.prototype, ['beginComputePass', 'copyBufferToBuffer']);
  countCalls(GPUComputePassEncoder.prototype, ['dispatchWorkgroups']);
  countCalls(GPUQueue.prototype, ['submit', 'writeBuffer']);
  countCalls(GPUBuffer.prototype, ['mapAsync']);
}
// Dispatches by kernel kind: the pipeline's label (the lab's kernels are labelled with their
// CubeCL kernel name) without its type parameters and hash. tfjs labels its pipelines with its
// program classes' names, which its minified build shortens to a few letters.
const KIND_COUNTS = {};
const kindOf = (label) => (label ? String(label).replace(/_[0-9a-f]{8}$/, '').replace(/_[a-z]+_(f32|u32|i32|f16|bool)(_.*)?$/, '') : 'unlabelled');
if (self.GPUDevice) {
  const make = GPUDevice.prototype.createComputePipeline;
  GPUDevice.prototype.createComputePipeline = function (d) {
    const p = make.call(this, d);
    p.__kind = kindOf(d?.label ?? d?.compute?.entryPoint);
    return p;
  };
  const makeAsync = GPUDevice.prototype.createComputePipelineAsync;
  GPUDevice.prototype.createComputePipelineAsync = async function (d) {
    const p = await makeAsync.call(this, d);
    p.__kind = kindOf(d?.label ?? d?.compute?.entryPoint);
    return p;
  };
  const setPipeline = GPUComputePassEncoder.prototype.setPipeline;
  GPUComputePassEncoder.prototype.setPipeline = function (p) {
    this.__kind = p?.__kind ?? 'unlabelled';
    return setPipeline.call(this, p);
  };
  const dispatch = GPUComputePassEncoder.prototype.dispatchWorkgroups;
  GPUComputePassEncoder.prototype.dispatchWorkgroups = function (...a) {
    KIND_COUNTS[this.__kind] = (KIND_COUNTS[this.__kind] ?? 0) + 1;
    return dispatch.apply(this, a);
  };
}
// Time the engines wait on read-backs: from mapAsync to its promise settling (ms, summed).
GPU_COUNTS.mapAsyncWaitMs = 0;
if (self.GPUBuffer) {
  const map = GPUBuffer.prototype.mapAsync; // already counted above
  GPUBuffer.prototype.mapAsync = function (...a) {
    const t = performance.now();
    const p = map.apply(this, a);
    const done = () => {
      GPU_COUNTS.mapAsyncWaitMs += performance.now() - t;
    };
    p.then(done, done);
    return p;
  };
}
// Time spent inside queue.submit (it returns at once where the GPU works asynchronously) and
// waiting on onSubmittedWorkDone, to tell where a call's time goes.
GPU_COUNTS.submitMs = 0;
GPU_COUNTS.onSubmittedWorkDone = 0;
GPU_COUNTS.workDoneWaitMs = 0;
if (self.GPUQueue) {
  const submit = GPUQueue.prototype.submit; // already counted above
  GPUQueue.prototype.submit = function (...a) {
    const t = performance.now();
    try {
      return submit.apply(this, a);
    } finally {
      GPU_COUNTS.submitMs += performance.now() - t;
    }
  };
  const workDone = GPUQueue.prototype.onSubmittedWorkDone;
  GPUQueue.prototype.onSubmittedWorkDone = function (...a) {
    GPU_COUNTS.onSubmittedWorkDone++;
    const t = performance.now();
    const p = workDone.apply(this, a);
    const done = () => {
      GPU_COUNTS.workDoneWaitMs += performance.now() - t;
    };
    p.then(done, done);
    return p;
  };
}
const gpuSnapshot = () => ({ ...GPU_COUNTS, kinds: { ...KIND_COUNTS } });
/** Calls per step between two snapshots (only the kinds that were called). */
function gpuPerStep(a, b, steps) {
  const out = {};
  for (const k of Object.keys(b)) if (k !== 'kinds' && b[k] - a[k] > 0) out[k] = +((b[k] - a[k]) / steps).toFixed(1);
  const kinds = {};
  for (const k of Object.keys(b.kinds)) {
    const d = b.kinds[k] - (a.kinds[k] ?? 0);
    if (d > 0) kinds[k] = +(d / steps).toFixed(1);
  }
  if (Object.keys(kinds).length) out.dispatchesByKind = kinds;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r;
}

/** safetensors: u64 little-endian header length, JSON header {name: {dtype, shape, data_offsets}}, data. */
function parseSafetensors(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`${name}: dtype ${t.dtype}, expected F32`);
    const [a, b] = t.data_offsets;
    // A copy: the data section need not be 4-byte aligned inside the file.
    const data = new Float32Array(bytes.slice(8 + n + a, 8 + n + b).buffer);
    out[name] = { shape: t.shape, data };
  }
  return out;
}

async function loadDataset(ds) {
  if (state.data[ds]) return state.data[ds];
  const manifestText = await (await fetchOk(`/models/${ds}.json`)).text();
  const manifest = JSON.parse(manifestText);
  const weightsBytes = new Uint8Array(await (await fetchOk(`/models/${manifest.weights}`)).arrayBuffer());
  const samplesMeta = await (await fetchOk(`/models/${ds}-samples.json`)).json();
  const raw = new Uint8Array(await (await fetchOk(`/models/${samplesMeta.file}`)).arrayBuffer());
  const samples = Float32Array.from(raw, (v) => v / 255);
  state.data[ds] = {
    manifestText,
    manifest,
    weightsBytes,
    tensors: parseSafetensors(weightsBytes),
    samples,
    labels: samplesMeta.labels,
    count: samplesMeta.count,
    shape: samplesMeta.shape, // [c, h, w]
  };
  return state.data[ds];
}

/** The first `n` sample images (CHW after CHW) and their labels. */
function batchOf(ds, n) {
  const d = state.data[ds];
  if (n > d.count) throw new Error(`${ds}: only ${d.count} samples, asked for ${n}`);
  const size = d.shape[0] * d.shape[1] * d.shape[2];
  return { pixels: d.samples.slice(0, n * size), labels: d.labels.slice(0, n), size };
}

/** CHW batch -> NHWC batch (TensorFlow.js convolutions take NHWC). */
function toNhwc(pixels, n, [c, h, w]) {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < n; i++) {
    const base = i * c * h * w;
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) out[base + (y * w + x) * c + ch] = pixels[base + (ch * h + y) * w + x];
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// TensorFlow.js: the same nets (src/models/mod.rs) and the same step (src/attacks/cw.rs)
// ---------------------------------------------------------------------------------------------

/**
 * Weight tensors on the current tf backend. burn keeps conv weights as [out, in, kh, kw] and
 * linear weights as [in, out]; tfjs wants [kh, kw, in, out] and NHWC activations, so the first
 * dense layer's rows are reordered from burn's (c, h, w) flatten order to tfjs's (h, w, c).
 */
function buildNet(ds) {
  const t = state.data[ds].tensors;
  const conv = (name) => {
    const { shape: [o, i, kh, kw], data } = t[`${name}.weight`];
    const w = new Float32Array(data.length);
    for (let co = 0; co < o; co++)
      for (let ci = 0; ci < i; ci++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) w[((y * kw + x) * i + ci) * o + co] = data[((co * i + ci) * kh + y) * kw + x];
    return { w: tf.tensor4d(w, [kh, kw, i, o]), b: tf.tensor1d(t[`${name}.bias`].data) };
  };
  const dense = (name, permute = null) => {
    const { shape: [i, o], data } = t[`${name}.weight`];
    let w = data;
    if (permute) {
      const [c, s] = permute;
      w = new Float32Array(data.length);
      for (let ch = 0; ch < c; ch++)
        for (let y = 0; y < s; y++)
          for (let x = 0; x < s; x++) {
            const from = (ch * s + y) * s + x;
            const to = (y * s + x) * c + ch;
            w.set(data.subarray(from * o, (from + 1) * o), to * o);
          }
    }
    return { w: tf.tensor2d(w, [i, o]), b: tf.tensor1d(t[`${name}.bias`].data) };
  };
  const c4 = t['conv4.weight'].shape[0];
  const side = Math.round(Math.sqrt(t['fc1.weight'].shape[0] / c4));
  return {
    conv1: conv('conv1'),
    conv2: conv('conv2'),
    conv3: conv('conv3'),
    conv4: conv('conv4'),
    fc1: dense('fc1', [c4, side]),
    fc2: dense('fc2'),
    fc3: dense('fc3'),
  };
}

/** Logits of NHWC input: conv-relu x2, pool, conv-relu x2, pool, dense-relu x2, dense (dropout off). */
function tfForward(net, x) {
  // tf.fused.* is what tf.layers uses for Conv2D / Dense with a ReLU (one kernel per layer where the backend can).
  const conv = (x, l) => tf.fused.conv2d({ x, filter: l.w, strides: 1, pad: 'valid', bias: l.b, activation: 'relu' });
  const dense = (x, l, activation) => tf.fused.matMul({ a: x, b: l.w, bias: l.b, activation });
  let h = conv(conv(x, net.conv1), net.conv2);
  h = tf.maxPool(h, 2, 2, 'valid');
  h = conv(conv(h, net.conv3), net.conv4);
  h = tf.maxPool(h, 2, 2, 'valid');
  h = tf.reshape(h, [h.shape[0], -1]);
  h = dense(dense(h, net.fc1, 'relu'), net.fc2, 'relu');
  return dense(h, net.fc3, 'linear');
}

async function tfUse(backend) {
  if (state.tfUnavailable[backend]) throw new Error(`tfjs ${backend}: ${state.tfUnavailable[backend]}`);
  if (tf.getBackend() !== backend) {
    const ok = await tf.setBackend(backend);
    if (!ok) throw new Error(`tfjs could not start the ${backend} backend`);
  }
  await tf.ready();
}

async function tfNet(backend, ds) {
  await tfUse(backend);
  state.nets[backend] ??= {};
  state.nets[backend][ds] ??= buildNet(ds);
  return state.nets[backend][ds];
}

const KAPPA = 0; // C&W's confidence, as the step benchmark of the lab runs it
const LR = 0.01;
const CONST = 1;

/**
 * The attack's state for a batch: the perturbation variable w (tanh space), Adam's moments, the
 * image in tanh space and its round trip (C&W measure the distance to it), the goal and the
 * best-so-far bookkeeping, all on the device.
 */
function tfAttackState(net, ds, n) {
  const d = state.data[ds];
  const { pixels, labels } = batchOf(ds, n);
  const [c, h, w] = d.shape;
  return tf.tidy(() => {
    const images = tf.tensor4d(toNhwc(pixels, n, d.shape), [n, h, w, c]);
    const timg = tf.atanh(tf.mul(tf.sub(tf.mul(images, 2), 1), 0.999999));
    const reference = tf.add(tf.mul(tf.tanh(timg), 0.5), 0.5);
    const onehot = tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), 10), 'float32');
    const S = {
      net,
      n,
      images,
      timg,
      reference,
      onehot,
      others: tf.sub(1, onehot),
      labels: tf.tensor1d(labels, 'int32'),
      c: tf.fill([n], CONST),
      w: tf.variable(tf.zerosLike(images), true),
      m: tf.zerosLike(images),
      v: tf.zerosLike(images),
      t: 0,
      bestL2: tf.fill([n], 1e10),
      bestImg: tf.clone(images),
      bestSuccess: tf.zeros([n], 'bool'),
    };
    for (const v of Object.values(S)) if (v instanceof tf.Tensor) tf.keep(v);
    return S;
  });
}

function tfDisposeState(S) {
  for (const v of Object.values(S)) if (v instanceof tf.Tensor) v.dispose();
}

/**
 * One C&W-L2 step, as src/attacks/cw.rs does it: x = (tanh(w + timg) + 1) / 2, the squared L2
 * to the reference, C&W's f6 margin on the logits (untargeted, kappa), loss = sum L2 + c * f,
 * its gradient to w, success judged (on the logits the loss already computed, as C&W's reference
 * code does), best-so-far kept on the device, then Adam as TensorFlow 1 computes it.
 * Returns the loss tensor (the caller reads it back or disposes of it).
 */
function tfStep(S) {
  let kept = [];
  const { value: loss, grads } = tf.variableGrads(() => {
    const x = tf.add(tf.mul(tf.tanh(tf.add(S.w, S.timg)), 0.5), 0.5);
    const l2 = tf.sum(tf.square(tf.sub(x, S.reference)), [1, 2, 3]);
    const logits = tfForward(S.net, x);
    const real = tf.sum(tf.mul(logits, S.onehot), 1);
    const other = tf.max(tf.sub(tf.mul(logits, S.others), tf.mul(S.onehot, 10000)), 1);
    const f = tf.relu(tf.add(tf.sub(real, other), KAPPA));
    kept = [tf.keep(x), tf.keep(l2), tf.keep(logits)];
    return tf.add(tf.sum(l2), tf.sum(tf.mul(f, S.c)));
  }, [S.w]);
  const [x, l2, logits] = kept;
  const g = grads[S.w.name];
  S.t += 1;
  const next = tf.tidy(() => {
    const pred = tf.argMax(tf.add(logits, tf.mul(S.onehot, KAPPA)), 1);
    const success = tf.notEqual(pred, S.labels);
    const improved = tf.logicalAnd(success, tf.less(l2, S.bestL2));
    const bestL2 = tf.where(improved, l2, S.bestL2);
    const mask = tf.broadcastTo(tf.reshape(improved, [S.n, 1, 1, 1]), x.shape);
    const bestImg = tf.where(mask, x, S.bestImg);
    const bestSuccess = tf.logicalOr(S.bestSuccess, success);
    const b1 = 0.9;
    const b2 = 0.999;
    const m = tf.add(tf.mul(S.m, b1), tf.mul(g, 1 - b1));
    const v = tf.add(tf.mul(S.v, b2), tf.mul(tf.square(g), 1 - b2));
    const lrT = (LR * Math.sqrt(1 - b2 ** S.t)) / (1 - b1 ** S.t);
    S.w.assign(tf.sub(S.w, tf.mul(tf.div(m, tf.add(tf.sqrt(v), 1e-8)), lrT)));
    return { bestL2, bestImg, bestSuccess, m, v };
  });
  for (const k of Object.keys(next)) {
    S[k].dispose();
    S[k] = next[k];
  }
  for (const t of [x, l2, logits, g]) t.dispose();
  return loss;
}

/**
 * Steps of tfjs on a backend. The host reads the loss back as the lab's loop does: every 10th
 * step (C&W's early-abort check at the page's 100 steps), whenever 200 ms passed since the last
 * read-back, after the first timed step, and after every step once steps take longer than 200 ms
 * (the lab's progress reports come by the clock, so a slow step gets one each). Time runs from the end of the first (untimed)
 * step's read-back to the last read-back.
 */
async function tfSteps(backend, ds, n, { minSteps, minMs, maxSteps, maxMs = Infinity }) {
  const net = await tfNet(backend, ds);
  const S = tfAttackState(net, ds, n);
  try {
    const first = tfStep(S); // untimed: kernels compiled, buffers allocated
    await first.data();
    first.dispose();
    const g0 = gpuSnapshot();
    const t0 = now();
    let last = t0;
    let steps = 0;
    let syncedSteps = 0;
    let slow = false; // the last read-back interval took over 200 ms a step
    for (;;) {
      const loss = tfStep(S);
      steps++;
      const t = now();
      // The first timed step is always read back: it tells whether steps are slow (and a GPU
      // backend may queue many steps before the host notices).
      const due = steps === 1 || slow || steps % 10 === 0 || t - last >= 200 || steps >= maxSteps;
      if (due) {
        await loss.data();
        const t2 = now();
        slow = (t2 - last) / (steps - syncedSteps) > 200;
        last = t2;
        syncedSteps = steps;
      }
      loss.dispose();
      if (due && steps >= minSteps && (last - t0 >= minMs || steps >= maxSteps || last - t0 >= maxMs)) break;
    }
    return { msPerStep: (last - t0) / steps, steps, ms: last - t0, gpuCallsPerStep: gpuPerStep(g0, gpuSnapshot(), steps) };
  } finally {
    tfDisposeState(S);
  }
}

async function tfLogits(backend, ds, n) {
  const net = await tfNet(backend, ds);
  const d = state.data[ds];
  const { pixels } = batchOf(ds, n);
  const [c, h, w] = d.shape;
  const out = tf.tidy(() => tf.logSoftmax(tfForward(net, tf.tensor4d(toNhwc(pixels, n, d.shape), [n, h, w, c]))));
  const v = await out.data();
  out.dispose();
  return Array.from(v);
}

// ---------------------------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------------------------

async function labModule(which) {
  if (!state.modules[which]) {
    if (which === 'base' && !BASELINE_URL) throw new Error('no baseline pkg/ given (BENCH_BASELINE)');
    const mod = await import(which === 'base' ? BASELINE_URL : '/pkg/advlab.js');
    const exports = await mod.default();
    state.modules[which] = { mod, exports };
  }
  return state.modules[which].mod;
}

async function labFor(contestant, datasets) {
  if (!state.labs[contestant]) {
    const m = await labModule(moduleOf(contestant));
    const lab = await m.Lab.create(LABS[contestant]);
    const wanted = LABS[contestant] ? 'webgpu' : 'cpu';
    if (lab.backend() !== wanted) throw new Error(`${contestant}: the lab started on ${lab.backend()} (${lab.backend_note()})`);
    state.labs[contestant] = lab;
    state.labNotes[contestant] = lab.backend_note();
  }
  const lab = state.labs[contestant];
  for (const ds of datasets) {
    const d = await loadDataset(ds);
    lab.__loaded ??= {};
    if (!lab.__loaded[ds]) {
      lab.load_model(d.manifestText, d.weightsBytes);
      lab.__loaded[ds] = true;
    }
  }
  return lab;
}

/** The fields of a value from wasm (a plain object or a Map). */
function field(o, k) {
  if (o instanceof Map) return o.get(k);
  return o?.[k];
}

/**
 * Steps of the lab's real attack loop: attack_many (C&W, one round of many steps, so that neither
 * the early-abort check nor the end of a round falls inside the measurement) with a progress
 * callback. The lab reports progress by the clock (at most every 200 ms); the time between the
 * first report and the report at which the callback cancels the run, divided by the steps in
 * between, is the step as the page's engine runs it (progress reports included).
 */
async function labSteps(contestant, ds, n, { minSteps, minMs, maxSteps, maxMs = Infinity }, { params: extra = {}, targeted = false } = {}) {
  const lab = await labFor(contestant, [ds]);
  const { pixels, labels } = batchOf(ds, n);
  const classes = state.data[ds].manifest.classes?.length ?? 10;
  // A targeted step aims each image at the class after its own (any other class costs the same).
  const targets = targeted ? Uint32Array.from(labels, (l) => (l + 1) % classes) : null;
  const params = {
    attack: 'cw',
    steps: 100000,
    binary_search_steps: 1,
    initial_const: CONST,
    learning_rate: LR,
    confidence: KAPPA,
    constants_at_once: 1,
    restarts: 0,
    defense: 'none',
    adaptive: false,
    ...extra,
    targeted,
  };
  const marks = [];
  const t0 = now();
  await lab.attack_many(ds, pixels, Uint32Array.from(labels), targets, params, (p) => {
    const t = now();
    const step = Number(field(p, 'step'));
    marks.push([t, step, gpuSnapshot()]);
    if (marks.length < 2) return true;
    const [t1, s1] = marks[0];
    const done = step - s1 >= minSteps && (t - t1 >= minMs || step - s1 >= maxSteps || t - t1 >= maxMs);
    return !done;
  });
  const total = now() - t0;
  if (marks.length < 2) throw new Error(`${contestant}: fewer than two progress reports`);
  const [t1, s1, g1] = marks[0];
  const [t2, s2, g2] = marks[marks.length - 1];
  return { msPerStep: (t2 - t1) / (s2 - s1), steps: s2 - s1, ms: t2 - t1, callMs: total, reports: marks.length, firstStepMs: t1 - t0, gpuCallsPerStep: gpuPerStep(g1, g2, s2 - s1) };
}

// Defended systems whose adaptive step is priced against the bare classifier's (issues 13 and 14,
// item 4 each): the same attack_many call, the same images, targets and parameters, with only the
// system and `adaptive` changed. `files`: the manifests the system needs, each with the file it names.
const SYSTEMS = {
  specialists: {
    dataset: 'mnist',
    loader: 'load_specialists',
    manifests: ['mnist-specialists.json'],
    params: { defense: 'specialists', adaptive: true, confidence: 10 },
    targeted: true,
  },
  detectors: {
    dataset: 'cifar10',
    loader: 'load_detector',
    manifests: ['cifar10-gong.json', 'cifar10-metzen.json', 'cifar10-feinman.json'],
    params: { defense: 'gong+metzen+feinman', adaptive: true, confidence: 0 },
    targeted: false,
  },
};
const BARE = { defense: 'none', adaptive: false };

/**
 * Loads a defended system's files into a lab contestant (once). Returns {bytes} or, where this
 * pkg/ has no loader for it, {unavailable: why} (measured only once the engine can load it).
 */
async function labSystem(contestant, name) {
  const sys = SYSTEMS[name];
  if (!sys) throw new Error(`unknown system ${name}`);
  const lab = await labFor(contestant, [sys.dataset]);
  if (typeof lab[sys.loader] !== 'function') return { unavailable: `this pkg/ has no Lab.${sys.loader}` };
  lab.__systems ??= {};
  if (!lab.__systems[name]) {
    let bytes = 0;
    for (const file of sys.manifests) {
      const text = await (await fetchOk(`/models/${file}`)).text();
      const weights = new Uint8Array(await (await fetchOk(`/models/${JSON.parse(text).weights}`)).arrayBuffer());
      bytes += weights.byteLength;
      lab[sys.loader](text, weights);
    }
    lab.__systems[name] = { bytes };
  }
  return lab.__systems[name];
}

/**
 * One measurement of a system's adaptive step (`variant` 'system') or of the bare classifier's
 * step with the same goal and parameters (`variant` 'bare'), as labSteps measures the step.
 */
async function labSystemSteps(contestant, name, variant, n, opts) {
  const sys = SYSTEMS[name];
  const loaded = await labSystem(contestant, name);
  if (loaded.unavailable) throw new Error(loaded.unavailable);
  const params = { ...sys.params, ...(variant === 'bare' ? BARE : {}) };
  return labSteps(contestant, sys.dataset, n, opts, { params, targeted: sys.targeted });
}

/** Warm single-image predictions (the lab's `predict`, softmax read back); ms per call. */
async function labPredictMs(contestant, ds, reps) {
  const lab = await labFor(contestant, [ds]);
  const { pixels } = batchOf(ds, 1);
  await lab.predict(ds, pixels);
  const g0 = gpuSnapshot();
  const t0 = now();
  for (let i = 0; i < reps; i++) await lab.predict(ds, pixels);
  return { ms: (now() - t0) / reps, gpuCallsPerCall: gpuPerStep(g0, gpuSnapshot(), reps) };
}

async function tfPredictMs(backend, ds, reps) {
  const net = await tfNet(backend, ds);
  const d = state.data[ds];
  const { pixels } = batchOf(ds, 1);
  const [c, h, w] = d.shape;
  const once = async () => {
    const p = tf.tidy(() => tf.softmax(tfForward(net, tf.tensor4d(toNhwc(pixels, 1, d.shape), [1, h, w, c]))));
    await p.data();
    p.dispose();
  };
  await once();
  const g0 = gpuSnapshot();
  const t0 = now();
  for (let i = 0; i < reps; i++) await once();
  return { ms: (now() - t0) / reps, gpuCallsPerCall: gpuPerStep(g0, gpuSnapshot(), reps) };
}

// ---------------------------------------------------------------------------------------------
// What run.mjs calls
// ---------------------------------------------------------------------------------------------

window.bench = {
  /** Loads data, starts every backend that can start; returns which could not, and why. */
  async setup(datasets, contestants) {
    for (const ds of datasets) await loadDataset(ds);
    tf.wasm?.setWasmPaths?.('/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
    for (const b of TF_BACKENDS) {
      if (!contestants.includes(`tfjs-${b}`)) continue;
      try {
        if (!(await tf.setBackend(b))) throw new Error('setBackend returned false');
        await tf.ready();
      } catch (e) {
        state.tfUnavailable[b] = String(e?.message ?? e);
      }
    }
    for (const c of Object.keys(LABS)) if (contestants.includes(c)) await labFor(c, datasets);
    return { tfUnavailable: state.tfUnavailable };
  },

  async info() {
    let adapter = null;
    try {
      const a = await navigator.gpu?.requestAdapter();
      if (a) {
        const i = a.info ?? {};
        adapter = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, isFallbackAdapter: a.isFallbackAdapter ?? i.isFallbackAdapter };
      }
    } catch (e) {
      adapter = { error: String(e) };
    }
    let webgl = null;
    try {
      const gl = document.createElement('canvas').getContext('webgl2');
      const ext = gl?.getExtension('WEBGL_debug_renderer_info');
      webgl = gl ? (ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)) : null;
    } catch {
      webgl = null;
    }
    let wasmFeatures = null;
    try {
      if (tf.findBackend('wasm')) {
        wasmFeatures = { simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'), threads: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT') };
      }
    } catch {
      wasmFeatures = null;
    }
    return {
      userAgent: navigator.userAgent,
      hardwareConcurrency: navigator.hardwareConcurrency,
      crossOriginIsolated: self.crossOriginIsolated,
      webgpuAdapter: adapter,
      webglRenderer: webgl,
      tfjsVersion: tf.version_core,
      tfjsWasm: wasmFeatures,
      labNotes: state.labNotes,
    };
  },

  /**
   * Fairness check: log-softmax of the first `n` samples by tfjs on each backend against the lab's
   * probabilities on each of its backends (the lab's API returns softmax, so logits are compared up
   * to their per-image shift, i.e. as log-probabilities; classes whose probability underflows to 0
   * in float32 are left out). Returns the largest absolute differences.
   */
  async parity(ds, n, contestants) {
    const logp = {};
    const d = state.data[ds];
    const size = d.shape[0] * d.shape[1] * d.shape[2];
    for (const c of contestants) {
      if (!isLab(c)) {
        logp[c] = await tfLogits(c.slice(5), ds, n);
      } else {
        const lab = await labFor(c, [ds]);
        const out = [];
        for (let i = 0; i < n; i++) {
          const p = await lab.predict(ds, d.samples.slice(i * size, (i + 1) * size));
          for (const v of p) out.push(v > 0 ? Math.log(v) : NaN);
        }
        logp[c] = out;
      }
    }
    const pairs = [];
    for (const a of contestants.filter(isLab)) {
      for (const b of contestants.filter((c) => c.startsWith('tfjs-'))) {
        let maxLogp = 0;
        let maxProb = 0;
        let compared = 0;
        let sameClass = 0;
        for (let i = 0; i < n; i++) {
          const la = logp[a].slice(i * 10, i * 10 + 10);
          const lb = logp[b].slice(i * 10, i * 10 + 10);
          const arg = (v) => v.reduce((best, x, k) => (x > v[best] ? k : best), 0);
          if (arg(la.map((x) => (Number.isNaN(x) ? -Infinity : x))) === arg(lb)) sameClass++;
          for (let k = 0; k < 10; k++) {
            maxProb = Math.max(maxProb, Math.abs((Number.isNaN(la[k]) ? 0 : Math.exp(la[k])) - Math.exp(lb[k])));
            if (Number.isNaN(la[k]) || !Number.isFinite(lb[k]) || lb[k] < -80) continue;
            maxLogp = Math.max(maxLogp, Math.abs(la[k] - lb[k]));
            compared++;
          }
        }
        pairs.push({ lab: a, tfjs: b, images: n, maxAbsLogProbDiff: maxLogp, maxAbsProbDiff: maxProb, logProbsCompared: compared, sameClass });
      }
    }
    // The lab's log-probabilities too, for the same check against the native PyTorch peer.
    const labLogProbs = Object.fromEntries(Object.entries(logp).filter(([c]) => isLab(c)));
    return { pairs, labLogProbs };
  },

  /** One timed measurement of a contestant's attack step. */
  async steps(contestant, ds, n, opts) {
    if (isLab(contestant)) return labSteps(contestant, ds, n, opts);
    return tfSteps(contestant.slice(5), ds, n, opts);
  },

  /** The defended systems this page can price: {name: {dataset, defense, adaptive, targeted, confidence, manifests}}. */
  systems() {
    return Object.fromEntries(Object.entries(SYSTEMS).map(([k, v]) => [k, { dataset: v.dataset, manifests: v.manifests, targeted: v.targeted, ...v.params }]));
  },

  /** Loads a defended system into a lab contestant: {bytes} or {unavailable: why}. */
  async loadSystem(contestant, name) {
    return labSystem(contestant, name);
  },

  /** One timed measurement of a system's adaptive step ('system') or the bare step beside it ('bare'). */
  async systemSteps(contestant, name, variant, n, opts) {
    if (!isLab(contestant)) throw new Error(`${contestant}: only the lab's engine runs the defended systems`);
    return labSystemSteps(contestant, name, variant, n, opts);
  },

  /** Warm single-image forward pass + softmax read-back: {ms per call, WebGPU calls per call}. */
  async predictMs(contestant, ds, reps) {
    if (isLab(contestant)) return labPredictMs(contestant, ds, reps);
    return tfPredictMs(contestant.slice(5), ds, reps);
  },

  /**
   * Time to the first prediction in a fresh page: for the lab, import pkg/advlab.js, compile and
   * start the wasm, Lab.create, fetch and load the model, one predict; for tfjs, start the backend,
   * fetch the weights, make the tensors, one prediction read back (tfjs's scripts were loaded with
   * the page). Milliseconds.
   */
  async firstPrediction(contestant, ds) {
    const t0 = now();
    if (isLab(contestant)) {
      const lab = await labFor(contestant, [ds]);
      const { pixels } = batchOf(ds, 1);
      await lab.predict(ds, pixels);
    } else {
      tf.wasm?.setWasmPaths?.('/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
      await tfUse(contestant.slice(5));
      await loadDataset(ds);
      const net = await tfNet(contestant.slice(5), ds);
      const d = state.data[ds];
      const { pixels } = batchOf(ds, 1);
      const [c, h, w] = d.shape;
      const p = tf.tidy(() => tf.softmax(tfForward(net, tf.tensor4d(toNhwc(pixels, 1, d.shape), [1, h, w, c]))));
      await p.data();
    }
    return now() - t0;
  },

  /**
   * `count` attacks in a row on one image with the lab's single-image `attack` (as the page calls
   * it); memory is read after `at` of them (garbage collected first where the page can): the wasm
   * instance's linear memory, the JS heap, and performance.measureUserAgentSpecificMemory where
   * the page is cross-origin isolated (it is not here).
   */
  async memory(contestant, ds, params, at) {
    const lab = await labFor(contestant, [ds]);
    const { pixels } = batchOf(ds, 1);
    const readings = [];
    const count = Math.max(...at);
    const t0 = now();
    for (let i = 1; i <= count; i++) {
      await lab.attack(ds, pixels, params, () => true);
      if (at.includes(i)) {
        if (typeof gc === 'function') gc();
        await new Promise((r) => setTimeout(r, 50));
        let uaMemory = null;
        if (self.crossOriginIsolated && performance.measureUserAgentSpecificMemory) {
          uaMemory = (await performance.measureUserAgentSpecificMemory()).bytes;
        }
        readings.push({
          attacks: i,
          wasmMemoryBytes: state.modules[moduleOf(contestant)].exports.memory.buffer.byteLength,
          jsHeapUsedBytes: performance.memory?.usedJSHeapSize ?? null,
          uaMemoryBytes: uaMemory,
          seconds: (now() - t0) / 1000,
        });
      }
    }
    return readings;
  },
};

window.benchReady = true;
