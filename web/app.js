// advlab page logic. All wasm work happens in web/worker.js; this module only talks to it through
// a small promise-wrapped message protocol and draws the results.

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
const MAX_UPLOAD_SIDE = 4096; // larger images are scaled down before preprocessing
const DATASET_NAMES = { mnist: 'MNIST', cifar10: 'CIFAR-10' };
const DEFAULT_INPUT = { mnist: [1, 28, 28], cifar10: [3, 32, 32] };
const ATTACK_NAMES = { cw: 'Carlini–Wagner L2', fgsm: 'FGSM', pgd: 'PGD' };
const DEFAULT_STEPS = { cw: 100, pgd: 40, fgsm: 1 };
const DEFENSE_NAMES = {
  none: 'the bare model',
  'bit-depth': 'bit-depth reduction',
  median: 'median smoothing',
  detector: 'the squeezing detector',
};
const LIVE_SQUEEZE_MS = 1000; // at most one squeeze report a second of an attack's current image

// ---------------------------------------------------------------------------------------------
// The compute engine (worker) client
// ---------------------------------------------------------------------------------------------

class Engine {
  constructor(url, onFatal) {
    this.nextId = 1;
    this.pending = new Map();
    this.onFatal = onFatal;
    try {
      this.worker = new Worker(url, { type: 'module', name: 'advlab-compute' });
    } catch (e) {
      throw new Error(`this browser cannot start a module Web Worker: ${e.message ?? e}`);
    }
    this.worker.onmessage = (ev) => this.receive(ev.data);
    this.worker.onerror = (ev) => {
      ev.preventDefault?.();
      const detail = ev.message || 'the worker script failed to load or crashed';
      this.failAll(new Error(`compute worker error: ${detail}`), true);
    };
    this.worker.onmessageerror = () => this.failAll(new Error('a message from the compute worker could not be read'), false);
  }

  failAll(err, fatal) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (fatal) this.onFatal?.(err);
  }

  receive(msg) {
    if (!msg) return;
    const p = this.pending.get(msg.id);
    if (!p) {
      if (msg.type === 'error') console.warn('advlab worker:', msg.message);
      return;
    }
    if (msg.type === 'progress') {
      p.onProgress?.(msg);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.type === 'result') p.resolve(msg);
    else {
      const err = new Error(msg.message ?? 'unknown error in the compute worker');
      err.fatal = !!msg.fatal;
      err.status = msg.status;
      p.reject(err);
      if (msg.fatal) this.onFatal?.(err);
    }
  }

  /** Sends a request; returns {id, promise}. */
  send(type, payload = {}, { transfer = [], onProgress = null } = {}) {
    const id = this.nextId++;
    const promise = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
    });
    this.worker.postMessage({ ...payload, id, type }, transfer);
    return { id, promise };
  }

  request(type, payload, opts) {
    return this.send(type, payload, opts).promise;
  }

  cancel(id) {
    this.worker.postMessage({ type: 'cancel', target: id });
  }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
const state = {
  engine: null,
  backend: null,
  dataset: null,
  models: {}, // dataset -> Promise<info>
  modelInfo: {}, // dataset -> info once loaded
  samples: {}, // dataset -> Promise<{count, shape, labels, data} | null>
  input: null, // {dataset, pixels, source, label}
  predictReq: 0,
  predictionSeq: 0,
  attack: null, // {id, dataset, input, params, reports, loss: [], l2: []}
  lastAttack: null, // {result, dataset, params, input}
  defenses: {}, // dataset -> {available, threshold, detector, bit_depth, median} | {available: false, reason}
  squeeze: { seq: 0, liveBusy: false, liveAt: 0 }, // squeeze reports: newest request wins
  fatal: false,
};

// ---------------------------------------------------------------------------------------------
// Small UI helpers
// ---------------------------------------------------------------------------------------------

function setStatus(text) {
  $('#status').textContent = text;
}

function setPageState(s) {
  document.body.dataset.state = s;
}

function showError(message, { fatal = false, gpu = false } = {}) {
  const box = $('#error');
  $('#error-text').textContent = message;
  box.hidden = false;
  box.dataset.fatal = fatal ? 'true' : 'false';
  $('#error-reload').hidden = !fatal;
  $('#error-cpu').hidden = !gpu;
  $('#error-dismiss').hidden = fatal;
  if (fatal) {
    state.fatal = true;
    setPageState('error');
    setStatus('Stopped: see the message above.');
    setInputsEnabled(false);
    $('#attack-start').disabled = true;
    $('#attack-cancel').disabled = true;
  }
}

function clearError() {
  if (state.fatal) return;
  $('#error').hidden = true;
  $('#error-text').textContent = '';
}

function looksLikeDeviceLoss(msg) {
  return /device (was |is |has been )?lost|lost (the )?(gpu )?device|devicelost|gpu.*lost/i.test(msg);
}

function reportError(prefix, e) {
  const msg = `${prefix}: ${e?.message ?? e}`;
  const gpu = state.backend === 'webgpu' && looksLikeDeviceLoss(String(e?.message ?? e));
  if (gpu) {
    showError(`The GPU device was lost (${e?.message ?? e}). Reload the page, or continue on the CPU.`, {
      fatal: true,
      gpu: true,
    });
  } else {
    // A crash on WebGPU may be the GPU's doing: offer the CPU backend as well as a reload.
    showError(msg, { fatal: !!e?.fatal, gpu: !!e?.fatal && state.backend === 'webgpu' });
  }
  console.error(prefix, e);
}

function argmax(a) {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function fmtProb(p) {
  return Number(p).toFixed(4);
}

function fmtNum(x, digits = 4) {
  if (x == null || Number.isNaN(Number(x))) return '–';
  const v = Number(x);
  if (v !== 0 && (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3)) return v.toExponential(2);
  return v.toFixed(digits);
}

function fmtBytes(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} kB`;
  return `${n} B`;
}

function className(ds, k) {
  const classes = state.modelInfo[ds]?.classes;
  return classes?.[k] ?? String(k);
}

function inputShape(ds) {
  return state.modelInfo[ds]?.input ?? DEFAULT_INPUT[ds];
}

/** Draws a CHW float image with values in [0,1] onto a canvas of its native size. */
function drawCHW(canvas, pixels, [c, h, w]) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  const plane = h * w;
  for (let i = 0; i < plane; i++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = pixels[(c === 1 ? 0 : ch) * plane + i];
      img.data[4 * i + ch] = Math.max(0, Math.min(255, Math.round(v * 255)));
    }
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function clearCanvas(canvas) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
}

/** Heat map of adv - orig: red positive, blue negative, white zero. Returns max |delta|. */
function drawPerturbation(canvas, orig, adv, [c, h, w]) {
  canvas.width = w;
  canvas.height = h;
  const plane = h * w;
  const delta = new Float32Array(plane);
  let maxAbs = 0;
  for (let i = 0; i < plane; i++) {
    let s = 0;
    for (let ch = 0; ch < c; ch++) s += adv[ch * plane + i] - orig[ch * plane + i];
    delta[i] = s / c;
    maxAbs = Math.max(maxAbs, Math.abs(delta[i]));
  }
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < plane; i++) {
    const t = maxAbs > 0 ? Math.min(1, Math.abs(delta[i]) / maxAbs) : 0;
    const fade = Math.round(255 * (1 - t));
    if (delta[i] >= 0) {
      img.data[4 * i] = 255;
      img.data[4 * i + 1] = fade;
      img.data[4 * i + 2] = fade;
    } else {
      img.data[4 * i] = fade;
      img.data[4 * i + 1] = fade;
      img.data[4 * i + 2] = 255;
    }
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return maxAbs;
}

// ---------------------------------------------------------------------------------------------
// Probability bars
// ---------------------------------------------------------------------------------------------

function buildBars(container, classes) {
  container.textContent = '';
  classes.forEach((name, k) => {
    const row = document.createElement('div');
    row.className = 'bar-row';
    row.dataset.class = String(k);
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = name;
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('div');
    fill.className = 'fill';
    bar.append(fill);
    const prob = document.createElement('span');
    prob.className = 'prob';
    prob.textContent = '–';
    row.append(label, bar, prob);
    container.append(row);
  });
}

function updateBars(container, probs, predicted) {
  for (const row of $$('.bar-row', container)) {
    const k = Number(row.dataset.class);
    const p = probs ? probs[k] : null;
    $('.fill', row).style.width = p == null ? '0%' : `${Math.max(0, Math.min(1, p)) * 100}%`;
    $('.prob', row).textContent = p == null ? '–' : fmtProb(p);
    row.dataset.prob = p == null ? '' : String(p);
    row.classList.toggle('is-top', p != null && k === predicted);
  }
}

// ---------------------------------------------------------------------------------------------
// Prediction
// ---------------------------------------------------------------------------------------------

function clearPrediction() {
  const el = $('#prediction');
  delete el.dataset.probs;
  delete el.dataset.predicted;
  delete el.dataset.source;
  $('#predicted').textContent = '–';
  $('#confidence').textContent = '';
  $('#input-source').textContent = '';
  updateBars($('#bars'), null, -1);
  clearCanvas($('#model-input'));
}

function describeSource(source, label, ds) {
  if (source.startsWith('sample:')) {
    const n = source.slice(7);
    return `Sample #${n}${label != null ? `, true label: ${className(ds, label)}` : ''}`;
  }
  if (source === 'drawing') return 'Your drawing';
  if (source.startsWith('upload:')) return `Uploaded: ${source.slice(7)}`;
  return source;
}

async function predictPixels(pixels, source, label = null) {
  const ds = state.dataset;
  const shape = inputShape(ds);
  const req = ++state.predictReq;
  state.input = { dataset: ds, pixels, source, label };
  drawCHW($('#model-input'), pixels, shape);
  $('#input-source').textContent = describeSource(source, label, ds);
  $('#attack-start').disabled = !!state.attack || state.fatal;
  setStatus('Predicting…');
  let probs;
  try {
    ({ probs } = await state.engine.request('predict', { dataset: ds, pixels }));
  } catch (e) {
    if (req === state.predictReq) {
      setStatus('Prediction failed.');
      reportError('Prediction failed', e);
    }
    return false;
  }
  if (req !== state.predictReq || ds !== state.dataset) return false; // a newer input won
  const predicted = argmax(probs);
  const el = $('#prediction');
  el.dataset.probs = JSON.stringify(Array.from(probs));
  el.dataset.predicted = String(predicted);
  el.dataset.source = source;
  el.dataset.seq = String(++state.predictionSeq);
  $('#predicted').textContent = className(ds, predicted);
  $('#confidence').textContent = `probability ${fmtProb(probs[predicted])}`;
  updateBars($('#bars'), probs, predicted);
  setStatus(state.attack ? 'Attack running…' : 'Ready.');
  requestSqueeze(ds, pixels, { kind: 'input', text: `The input: ${describeSource(source, label, ds)}` });
  return true;
}

// ---------------------------------------------------------------------------------------------
// Feature squeezing (He et al. 2017, case study 1): the squeezed views of an image, the
// detector's verdict and the preprocessing defenses' answers
// ---------------------------------------------------------------------------------------------

function defensesOf(ds) {
  return state.defenses[ds] ?? null;
}

/** Shows whether the defenses of the current data set exist; enables the attack's target systems. */
function renderDefenseAvailability(ds) {
  const d = defensesOf(ds);
  const note = $('#squeeze-note');
  const on = !!d?.available;
  note.dataset.available = d ? String(on) : '';
  if (!d) note.textContent = 'Waiting for the model…';
  else if (on) {
    note.textContent = `Detector: ${d.detector.join(' + ')}, threshold ${fmtNum(d.threshold, 4)}. Preprocessing defenses: ${d.bit_depth}, ${d.median}.`;
  } else {
    note.textContent = d.missing
      ? `The feature-squeezing defenses of ${DATASET_NAMES[ds]} are not calibrated yet (no ${ds}-squeeze.json next to the model), so this panel and the defended target systems are off.`
      : `The feature-squeezing defenses are off: ${d.reason}.`;
  }
  $('#squeeze-body').hidden = !on;
  if (!on) clearSqueeze();
  $('#squeeze-bitdepth-name').textContent = on ? `(${d.bit_depth})` : '';
  $('#squeeze-median-name').textContent = on ? `(${d.median})` : '';
  const sel = $('#attack-defense');
  for (const opt of sel.options) opt.disabled = opt.value !== 'none' && !on;
  if (!on) sel.value = 'none';
  updateDefenseFields();
}

function updateDefenseFields() {
  const def = $('#attack-defense').value;
  const mode = $('#attack-mode');
  mode.disabled = def === 'none';
  const d = defensesOf(state.dataset);
  const what = {
    none: 'The attack and its verdict are about the bare classifier.',
    'bit-depth': `The system rounds each pixel first (${d?.bit_depth ?? 'bit-depth reduction'}).`,
    median: `The system smooths the image first (${d?.median ?? 'median filter'}).`,
    detector: `The system rejects images whose squeezed answers move too far (${d?.detector?.join(' + ') ?? 'squeezers'}).`,
  }[def];
  const how =
    def === 'none'
      ? ''
      : mode.value === 'adaptive'
        ? ' The attack differentiates through the defense (He et al.).'
        : ' The attack follows the bare model’s gradients; the defended system judges the result.';
  $('#defense-note').textContent = (d?.available || def === 'none' ? what : '') + how;
}

function clearSqueeze() {
  const card = $('#squeeze-card');
  card.dataset.subject = '';
  $('#squeeze-subject').textContent = '';
  const v = $('#squeeze-verdict');
  v.dataset.flagged = '';
  v.textContent = '–';
  $('#squeeze-score').textContent = '–';
  $('#squeeze-threshold').textContent = '–';
  setL1Bar($('#squeeze-score-bar'), null, null);
  $('#squeeze-views').textContent = '';
  for (const id of ['#squeeze-bitdepth', '#squeeze-median']) {
    $(id).textContent = '–';
    $(id).dataset.predicted = '';
  }
}

/** A bar for an L1 distance (0..2) with the threshold marked at its middle. */
function setL1Bar(bar, l1, threshold) {
  const full = threshold > 0 ? 2 * threshold : 2;
  const fill = $('.fill', bar);
  const mark = $('.mark', bar);
  fill.style.width = l1 == null ? '0%' : `${Math.min(1, Math.max(0, l1 / full)) * 100}%`;
  mark.hidden = !(threshold > 0);
  bar.classList.toggle('over', l1 != null && threshold > 0 && l1 > threshold);
  bar.title = l1 == null ? '' : `L1 ${fmtNum(l1, 4)}${threshold > 0 ? ` (threshold ${fmtNum(threshold, 4)} at the mark)` : ''}`;
}

function squeezeView(ds, { name, image, probs, predicted, l1, in_detector, preprocessing }, threshold, cls) {
  const fig = document.createElement('figure');
  fig.className = cls;
  fig.dataset.name = name;
  fig.dataset.predicted = String(predicted);
  if (l1 != null) fig.dataset.l1 = String(l1);
  fig.dataset.inDetector = String(!!in_detector);
  fig.dataset.preprocessing = preprocessing ?? '';
  const cv = document.createElement('canvas');
  cv.className = 'pixelated';
  drawCHW(cv, image, inputShape(ds));
  cv.setAttribute('aria-label', `${name}: predicted ${className(ds, predicted)}`);
  const cap = document.createElement('figcaption');
  const title = document.createElement('div');
  title.className = 'view-name';
  title.textContent = name;
  const says = document.createElement('div');
  says.className = 'view-pred';
  const p = probs?.[predicted];
  says.textContent = `says “${className(ds, predicted)}”${p != null ? ` (${fmtProb(p)})` : ''}`;
  cap.append(title, says);
  if (l1 != null) {
    const dist = document.createElement('div');
    dist.className = 'view-l1';
    dist.textContent = `L1 ${fmtNum(l1, 4)}${in_detector ? '' : ' (not in the detector)'}`;
    const bar = document.createElement('div');
    bar.className = 'l1-bar';
    bar.innerHTML = '<div class="fill"></div><div class="mark"></div>';
    setL1Bar(bar, l1, in_detector ? threshold : null);
    cap.append(dist, bar);
  }
  fig.append(cv, cap);
  return fig;
}

function renderSqueeze(ds, report, subject, seq) {
  const card = $('#squeeze-card');
  card.dataset.subject = subject.kind;
  card.dataset.seq = String(seq);
  $('#squeeze-body').hidden = false;
  $('#squeeze-subject').textContent = subject.text;
  const v = $('#squeeze-verdict');
  v.dataset.flagged = String(!!report.flagged);
  v.textContent = report.flagged ? 'Flagged as adversarial' : 'Not flagged';
  $('#squeeze-score').textContent = fmtNum(report.score, 4);
  $('#squeeze-threshold').textContent = fmtNum(report.threshold, 4);
  setL1Bar($('#squeeze-score-bar'), report.score, report.threshold);
  const views = $('#squeeze-views');
  views.textContent = '';
  if (subject.pixels) {
    views.append(
      squeezeView(
        ds,
        { name: 'as given', image: subject.pixels, probs: report.probs, predicted: report.predicted, l1: null },
        report.threshold,
        'squeeze-orig',
      ),
    );
  }
  for (const view of report.views) views.append(squeezeView(ds, view, report.threshold, 'squeeze-view'));
  for (const [id, kind] of [
    ['#squeeze-bitdepth', 'bit-depth'],
    ['#squeeze-median', 'median'],
  ]) {
    const view = report.views.find((x) => x.preprocessing === kind);
    const el = $(id);
    el.dataset.predicted = view ? String(view.predicted) : '';
    el.textContent = view ? `the model says “${className(ds, view.predicted)}”` : '–';
    el.classList.toggle('changed', !!view && view.predicted !== report.predicted);
  }
}

/**
 * Asks the worker for the squeeze report of an image and shows it unless a newer one was asked
 * for meanwhile. `live`: an attack's current image; skipped while the previous one is pending.
 * Resolves to the report (or null).
 */
async function requestSqueeze(ds, pixels, subject, { live = false } = {}) {
  if (!defensesOf(ds)?.available || state.fatal) return null;
  const sq = state.squeeze;
  if (live) {
    const now = performance.now();
    if (sq.liveBusy || now - sq.liveAt < LIVE_SQUEEZE_MS) return null;
    sq.liveBusy = true;
    sq.liveAt = now;
  }
  const seq = ++sq.seq;
  let msg;
  try {
    msg = await state.engine.request('squeeze', { dataset: ds, pixels });
  } catch (e) {
    if (e?.fatal) reportError('Feature squeezing failed', e);
    else if (seq === sq.seq && ds === state.dataset) $('#squeeze-subject').textContent = `Could not squeeze the image: ${e?.message ?? e}`;
    return null;
  } finally {
    if (live) sq.liveBusy = false;
  }
  if (msg.busy || !msg.report) return null;
  if (seq === sq.seq && ds === state.dataset) renderSqueeze(ds, msg.report, { ...subject, pixels }, seq);
  return msg.report;
}

// ---------------------------------------------------------------------------------------------
// Data sets: model + samples, loaded on first choice
// ---------------------------------------------------------------------------------------------

function loadModel(ds) {
  if (!state.models[ds]) {
    state.models[ds] = state.engine
      .request(
        'load',
        { dataset: ds },
        {
          onProgress: (p) => {
            if (state.dataset !== ds) return;
            const name = DATASET_NAMES[ds];
            if (p.phase === 'weights') {
              const of = p.total ? ` / ${fmtBytes(p.total)}` : '';
              setStatus(`Downloading the ${name} model… ${fmtBytes(p.loaded)}${of}`);
            } else if (p.phase === 'decode') setStatus(`Checking and loading the ${name} weights…`);
            else setStatus(`Loading the ${name} model…`);
          },
        },
      )
      .then((info) => {
        state.modelInfo[ds] = info;
        state.defenses[ds] = info.defenses ?? { available: false, reason: 'the compute engine reported no defenses' };
        return info;
      })
      .catch((e) => {
        delete state.models[ds]; // allow a retry on the next choice
        throw e;
      });
  }
  return state.models[ds];
}

function loadSamples(ds) {
  if (!state.samples[ds]) {
    state.samples[ds] = (async () => {
      const metaUrl = new URL(`../models/${ds}-samples.json`, import.meta.url);
      const resp = await fetch(metaUrl);
      if (!resp.ok) return null;
      const meta = await resp.json();
      const binResp = await fetch(new URL(meta.file, metaUrl));
      if (!binResp.ok) throw new Error(`could not download the sample images (HTTP ${binResp.status})`);
      const data = new Uint8Array(await binResp.arrayBuffer());
      const [c, h, w] = meta.shape;
      const count = Math.min(meta.count, Math.floor(data.length / (c * h * w)));
      return { count, shape: meta.shape, labels: meta.labels ?? [], data };
    })().catch((e) => {
      delete state.samples[ds];
      throw e;
    });
  }
  return state.samples[ds];
}

function samplePixels(samples, i) {
  const [c, h, w] = samples.shape;
  const n = c * h * w;
  const out = new Float32Array(n);
  const base = i * n;
  for (let j = 0; j < n; j++) out[j] = samples.data[base + j] / 255;
  return out;
}

function renderSamples(ds, samples) {
  const grid = $('#samples');
  grid.textContent = '';
  if (!samples) {
    $('#samples-note').textContent = '(no sample pack for this data set)';
    return;
  }
  $('#samples-note').textContent = `(${samples.count} test images)`;
  for (let i = 0; i < samples.count; i++) {
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'sample';
    btn.dataset.sample = String(i);
    const label = samples.labels[i];
    const title = `Sample ${i}${label != null ? ` (label: ${className(ds, label)})` : ''}`;
    btn.title = title;
    btn.setAttribute('aria-label', title);
    const cv = document.createElement('canvas');
    cv.className = 'pixelated';
    drawCHW(cv, samplePixels(samples, i), samples.shape);
    btn.append(cv);
    btn.addEventListener('click', () => pickSample(i));
    grid.append(btn);
  }
}

async function pickSample(i) {
  const ds = state.dataset;
  const samples = await state.samples[ds]?.catch(() => null);
  if (!samples || i >= samples.count || state.dataset !== ds) return;
  clearError();
  $$('#samples .sample').forEach((b) => b.classList.toggle('selected', Number(b.dataset.sample) === i));
  await predictPixels(samplePixels(samples, i), `sample:${i}`, samples.labels[i] ?? null);
}

function setInputsEnabled(on) {
  $('#input-card').classList.toggle('disabled', !on);
  for (const el of $$('#input-card button, #input-card input')) el.disabled = !on;
}

async function selectDataset(ds) {
  if (state.fatal || !DATASET_NAMES[ds]) return;
  if (state.attack) cancelAttack('cancelled');
  state.dataset = ds;
  state.predictReq++; // drop predictions in flight for the previous data set
  state.input = null;
  for (const b of $$('.dataset-switch button')) b.setAttribute('aria-checked', String(b.dataset.dataset === ds));
  const name = DATASET_NAMES[ds];
  clearError();
  setPageState('loading');
  setInputsEnabled(false);
  $('#attack-start').disabled = true;
  $('#samples').textContent = '';
  $('#samples-note').textContent = '';
  $('#bars').textContent = '';
  clearPrediction();
  resetAttackView();
  renderDefenseAvailability(ds);
  $('#model-info').textContent = '';
  const shape = DEFAULT_INPUT[ds];
  $('#model-input-size').textContent = `(${shape[2]}×${shape[1]})`;
  setStatus(`Loading the ${name} model…`);
  $('#draw-color').value = ds === 'mnist' ? '#ffffff' : '#ffcc00';

  let info;
  let samples = null;
  const samplesP = loadSamples(ds).catch((e) => {
    console.warn('samples', e);
    return null;
  });
  try {
    info = await loadModel(ds);
  } catch (e) {
    if (state.dataset !== ds) return;
    setPageState('error');
    const missing = e?.status === 404;
    const msg = missing
      ? `The ${name} model is not available on this server (${e.message}). Choose another data set.`
      : `Could not load the ${name} model: ${e?.message ?? e}`;
    showError(msg, { fatal: !!e?.fatal });
    setStatus(`${name}: no model.`);
    return;
  }
  samples = await samplesP;
  if (state.dataset !== ds) return;

  const [c, h, w] = info.input;
  $('#model-input-size').textContent = `(${w}×${h}${c === 3 ? ', RGB' : ''})`;
  buildBars($('#bars'), info.classes);
  buildBars($('#adv-bars'), info.classes);
  const target = $('#attack-target');
  target.textContent = '';
  info.classes.forEach((cn, k) => target.append(new Option(`${k}: ${cn}`, String(k))));
  const acc = info.manifest?.test_accuracy;
  const accText = typeof acc === 'number' ? `, test accuracy ${(acc <= 1 ? acc * 100 : acc).toFixed(2)}%` : '';
  $('#model-info').textContent = `${name} classifier, input ${w}×${h}×${c}${accText}.`;
  renderDefenseAvailability(ds);
  renderSamples(ds, samples);
  clearDrawing();
  setInputsEnabled(true);
  if (samples && samples.count > 0) await pickSample(0);
  if (state.dataset !== ds) return;
  setStatus('Ready. Pick a sample, draw, or upload an image.');
  setPageState('ready');
}

// ---------------------------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------------------------

const draw = {
  canvas: null,
  ctx: null,
  active: null, // pointerId
  last: null,
  dirty: false,
};

function clearDrawing() {
  const { ctx, canvas } = draw;
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  draw.dirty = false;
}

function canvasPoint(ev) {
  const r = draw.canvas.getBoundingClientRect();
  return {
    x: ((ev.clientX - r.left) / r.width) * draw.canvas.width,
    y: ((ev.clientY - r.top) / r.height) * draw.canvas.height,
  };
}

function strokeTo(p) {
  const { ctx } = draw;
  ctx.strokeStyle = ctx.fillStyle = $('#draw-color').value;
  ctx.lineWidth = Number($('#draw-size').value);
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.beginPath();
  if (draw.last) {
    ctx.moveTo(draw.last.x, draw.last.y);
    ctx.lineTo(p.x, p.y);
    ctx.stroke();
  } else {
    ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, Math.PI * 2);
    ctx.fill();
  }
  draw.last = p;
  draw.dirty = true;
}

function setupDrawing() {
  draw.canvas = $('#draw');
  draw.ctx = draw.canvas.getContext('2d', { willReadFrequently: true });
  clearDrawing();
  const c = draw.canvas;
  c.addEventListener('pointerdown', (ev) => {
    if (document.body.dataset.state !== 'ready' || draw.active != null) return;
    if (ev.pointerType === 'mouse' && ev.button !== 0) return;
    ev.preventDefault();
    draw.active = ev.pointerId;
    draw.last = null;
    try {
      c.setPointerCapture(ev.pointerId);
    } catch {
      /* not an active pointer (synthetic event): strokes still work inside the canvas */
    }
    strokeTo(canvasPoint(ev));
  });
  c.addEventListener('pointermove', (ev) => {
    if (ev.pointerId !== draw.active) return;
    ev.preventDefault();
    const events = ev.getCoalescedEvents?.() ?? [ev];
    for (const e of events.length ? events : [ev]) strokeTo(canvasPoint(e));
  });
  const end = (ev) => {
    if (ev.pointerId !== draw.active) return;
    draw.active = null;
    draw.last = null;
    try {
      if (c.hasPointerCapture?.(ev.pointerId)) c.releasePointerCapture(ev.pointerId);
    } catch {
      /* already released */
    }
    predictDrawing();
  };
  c.addEventListener('pointerup', end);
  c.addEventListener('pointercancel', end);
  c.addEventListener('contextmenu', (ev) => ev.preventDefault());
  $('#draw-clear').addEventListener('click', () => clearDrawing());
}

async function predictRgba(rgba, width, height, source) {
  const ds = state.dataset;
  let pixels;
  try {
    ({ pixels } = await state.engine.request(
      'prepare',
      { dataset: ds, rgba, width, height },
      { transfer: [rgba.buffer] },
    ));
  } catch (e) {
    if (e?.fatal) reportError('Preprocessing failed', e);
    else showError(`Could not use this image: ${e?.message ?? e}`);
    return false;
  }
  if (state.dataset !== ds) return false;
  return predictPixels(pixels, source);
}

function predictDrawing() {
  if (!draw.dirty) return;
  clearError();
  $$('#samples .sample.selected').forEach((b) => b.classList.remove('selected'));
  const { width, height } = draw.canvas;
  const img = draw.ctx.getImageData(0, 0, width, height);
  predictRgba(new Uint8Array(img.data.buffer), width, height, 'drawing');
}

// ---------------------------------------------------------------------------------------------
// Upload
// ---------------------------------------------------------------------------------------------

async function handleUpload(file) {
  clearError();
  if (!file) return;
  const name = file.name || 'image';
  if (file.size === 0) return showError(`“${name}” is empty.`);
  if (file.size > MAX_UPLOAD_BYTES) {
    return showError(`“${name}” is ${fmtBytes(file.size)}; images up to ${fmtBytes(MAX_UPLOAD_BYTES)} are accepted.`);
  }
  if (file.type && !file.type.startsWith('image/')) {
    return showError(`“${name}” is not an image (type ${file.type}).`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    return showError(`“${name}” could not be read as an image (is it a PNG, JPEG, GIF or WebP file?).`);
  }
  try {
    let { width, height } = bitmap;
    if (!width || !height) return showError(`“${name}” has no pixels.`);
    const scale = Math.min(1, MAX_UPLOAD_SIDE / Math.max(width, height));
    width = Math.max(1, Math.round(width * scale));
    height = Math.max(1, Math.round(height * scale));
    const cv = document.createElement('canvas');
    cv.width = width;
    cv.height = height;
    const ctx = cv.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0, width, height);
    const img = ctx.getImageData(0, 0, width, height);
    $$('#samples .sample.selected').forEach((b) => b.classList.remove('selected'));
    await predictRgba(new Uint8Array(img.data.buffer), width, height, `upload:${name}`);
  } finally {
    bitmap.close?.();
  }
}

// ---------------------------------------------------------------------------------------------
// Attack
// ---------------------------------------------------------------------------------------------

function numberField(id, fallback) {
  const v = Number($(id).value);
  return Number.isFinite(v) ? v : fallback;
}

function updateParamFields() {
  const kind = $('#attack-type').value;
  for (const label of $$('.params label[data-for]')) {
    label.hidden = !label.dataset.for.split(' ').includes(kind);
  }
  $('#p-steps').value = String(DEFAULT_STEPS[kind] ?? 40);
  $('#target-wrap').hidden = $('#attack-goal').value !== 'targeted';
}

function attackParams() {
  const kind = $('#attack-type').value;
  const targeted = $('#attack-goal').value === 'targeted';
  return {
    attack: kind,
    targeted,
    target: targeted ? Number($('#attack-target').value) : null,
    epsilon: numberField('#p-eps', 0.2),
    step_size: numberField('#p-step-size', 0.01),
    steps: kind === 'fgsm' ? 1 : Math.max(1, Math.round(numberField('#p-steps', DEFAULT_STEPS[kind]))),
    binary_search_steps: Math.max(1, Math.round(numberField('#p-bss', 3))),
    initial_const: numberField('#p-const', 1),
    confidence: numberField('#p-conf', 0),
    learning_rate: numberField('#p-lr', 0.05),
    random_start: kind === 'pgd' && $('#p-random-start').checked,
    ...defenseParams(),
  };
}

/** The attacked system: params.defense and params.adaptive. */
function defenseParams() {
  const defense = $('#attack-defense').value || 'none';
  return { defense, adaptive: defense !== 'none' && $('#attack-mode').value === 'adaptive' };
}

function setAttackStatus(s, text = s) {
  const el = $('#attack-status');
  el.dataset.state = s;
  el.textContent = text;
}

function resetAttackView() {
  $('#attack-result').hidden = true;
  $('#attack-progress').textContent = '';
  $('#attack-progress').dataset.count = '0';
  clearCanvas($('#adv-image'));
  clearCanvas($('#perturbation'));
  $('#pert-scale').textContent = '';
  drawChart([], []);
  setDefenseOutcome('', '');
  state.lastAttack = null;
  if (!state.attack) setAttackStatus('idle');
}

function drawChart(loss, l2) {
  const cv = $('#attack-chart');
  const dpr = window.devicePixelRatio || 1;
  const cssW = cv.clientWidth || 360;
  const cssH = cv.clientHeight || 180;
  if (cv.width !== Math.round(cssW * dpr) || cv.height !== Math.round(cssH * dpr)) {
    cv.width = Math.round(cssW * dpr);
    cv.height = Math.round(cssH * dpr);
  }
  const ctx = cv.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const pad = { l: 44, r: 44, t: 10, b: 22 };
  const W = cssW - pad.l - pad.r;
  const H = cssH - pad.t - pad.b;
  const styles = getComputedStyle(document.documentElement);
  const axis = styles.getPropertyValue('--muted').trim() || '#888';
  const cLoss = styles.getPropertyValue('--loss').trim() || '#e67e22';
  const cL2 = styles.getPropertyValue('--l2').trim() || '#2c7be5';
  ctx.strokeStyle = axis;
  ctx.lineWidth = 1;
  ctx.strokeRect(pad.l, pad.t, W, H);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = axis;
  const n = Math.max(loss.length, l2.length);
  if (n === 0) {
    ctx.fillText('starts with the attack', pad.l + 8, pad.t + 16);
    return;
  }
  const series = (vals, color, side) => {
    const finite = vals.filter(Number.isFinite);
    if (!finite.length) return;
    let lo = Math.min(0, ...finite);
    let hi = Math.max(...finite);
    if (hi - lo < 1e-12) hi = lo + 1;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    vals.forEach((v, i) => {
      if (!Number.isFinite(v)) return;
      const x = pad.l + (n === 1 ? W / 2 : (i / (n - 1)) * W);
      const y = pad.t + H - ((v - lo) / (hi - lo)) * H;
      if (started) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      started = true;
    });
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.textAlign = side === 'left' ? 'right' : 'left';
    const x = side === 'left' ? pad.l - 4 : pad.l + W + 4;
    ctx.fillText(fmtNum(hi, 2), x, pad.t + 9);
    ctx.fillText(fmtNum(lo, 2), x, pad.t + H);
  };
  series(loss, cLoss, 'left');
  series(l2, cL2, 'right');
  ctx.fillStyle = axis;
  ctx.textAlign = 'center';
  ctx.fillText(`${n} progress report${n === 1 ? '' : 's'}`, pad.l + W / 2, cssH - 6);
  ctx.textAlign = 'left';
}

function showAdvImage(orig, adv, ds) {
  const shape = inputShape(ds);
  drawCHW($('#adv-image'), adv, shape);
  const m = drawPerturbation($('#perturbation'), orig, adv, shape);
  $('#pert-scale').textContent = `(±${fmtNum(m, 3)})`;
}

function startAttack() {
  if (state.attack || state.fatal) return;
  const input = state.input;
  const ds = state.dataset;
  if (!input || input.dataset !== ds) {
    showError('Pick a sample, draw or upload an image first: the attack starts from the current input.');
    return;
  }
  clearError();
  resetAttackView();
  const p = attackParams();
  const origPredicted = Number($('#prediction').dataset.predicted);
  const run = { id: null, dataset: ds, input, params: p, origPredicted, reports: 0, loss: [], l2: [], phase: 'main' };
  state.attack = run;
  sendAttack(run, p);
  const against = p.defense !== 'none' ? ` against ${DEFENSE_NAMES[p.defense]}${p.adaptive ? ' (adaptive)' : ''}` : '';
  setAttackStatus('running', `running ${ATTACK_NAMES[p.attack]}${against}…`);
  $('#attack-start').disabled = true;
  $('#attack-cancel').disabled = false;
  $('#attack-form').classList.add('running');
  setStatus('Attack running…');
}

/** Sends one attack request of a run (the run's main attack, or its follow-up on the bare model). */
function sendAttack(run, p) {
  const { id, promise } = state.engine.send(
    'attack',
    { dataset: run.dataset, pixels: run.input.pixels, params: p },
    { onProgress: (m) => attackProgress(run, m) },
  );
  run.id = id;
  promise.then(
    (msg) => attackDone(run, msg.result),
    (e) => attackFailed(run, e),
  );
}

function attackProgress(run, m) {
  if (state.attack !== run) return;
  run.reports++;
  run.loss.push(Number(m.loss));
  run.l2.push(Number(m.l2));
  const pe = $('#attack-progress');
  pe.dataset.count = String(run.reports);
  pe.dataset.step = String(m.step);
  const pred = m.predicted != null ? `, predicted ${className(run.dataset, m.predicted)}` : '';
  const best = Number.isFinite(Number(m.best_l2)) ? `, best L2 ${fmtNum(m.best_l2, 3)}` : '';
  const phase = run.phase === 'bare' ? 'bare model: ' : '';
  pe.textContent = `${phase}step ${m.step} / ${m.total_steps} · loss ${fmtNum(m.loss, 3)} · L2 ${fmtNum(m.l2, 3)}${best}${pred}`;
  drawChart(run.loss, run.l2);
  if (m.image && m.image.length) {
    showAdvImage(run.input.pixels, m.image, run.dataset);
    // Live view of the defenses on the current iterate: at most once a second, beside the attack.
    const what = run.phase === 'bare' ? 'Attack on the bare model in progress' : 'Attack in progress';
    requestSqueeze(run.dataset, m.image, { kind: 'attack-progress', text: `${what}: step ${m.step} / ${m.total_steps}` }, { live: true });
  }
}

function attackIdle() {
  state.attack = null;
  $('#attack-start').disabled = state.fatal || !state.input;
  $('#attack-cancel').disabled = true;
  $('#attack-form').classList.remove('running');
  if (!state.fatal && document.body.dataset.state === 'ready') setStatus('Ready.');
}

function cancelAttack(label = 'cancelled') {
  const run = state.attack;
  if (!run) return;
  state.engine.cancel(run.id);
  run.cancelled = true;
  attackIdle();
  setAttackStatus('cancelled', label);
}

function attackFailed(run, e) {
  if (state.attack !== run) return;
  attackIdle();
  setAttackStatus('error', 'error');
  reportError('The attack failed', e);
}

function attackDone(run, r) {
  if (state.attack !== run) return; // cancelled from the page meanwhile
  if (run.phase === 'main') {
    run.main = r;
    const p = run.params;
    // A non-adaptive attack that fooled no defended system: the engine also returns the example
    // it made on the bare model (r.bare), which the page judges with the defense. An engine
    // without it (an older build) gets a second attack on the bare model with the same budget.
    if (p.defense !== 'none' && !p.adaptive && !r.success && r.bare) {
      finishAttack(run, r, r.bare);
      return;
    }
    if (p.defense !== 'none' && !p.adaptive && !r.success && !r.cancelled && defensesOf(run.dataset)?.available) {
      run.phase = 'bare';
      setAttackStatus('running', `running ${ATTACK_NAMES[p.attack]} on the bare model, to judge its example with ${DEFENSE_NAMES[p.defense]}…`);
      setDefenseOutcome('checking', `No example fooled ${DEFENSE_NAMES[p.defense]}; attacking the bare model to see what the defense does with its adversarial example…`);
      sendAttack(run, { ...p, defense: 'none', adaptive: false });
      return;
    }
    finishAttack(run, r, null);
  } else {
    finishAttack(run, run.main, r);
  }
}

function setDefenseOutcome(outcome, text) {
  const el = $('#adv-defense');
  el.dataset.outcome = outcome;
  el.textContent = text;
  el.classList.toggle('ok', outcome === 'fooled');
  el.classList.toggle('bad', outcome === 'detected' || outcome === 'not-fooled');
}

/**
 * What happened to the defended system, in words: outcome "fooled" (the defended system is
 * fooled), "detected" (the example fools the bare model but the detector flags it) or
 * "not-fooled". `r` is the main result, `bare` the follow-up on the bare model (or null), `report`
 * the squeeze report of the example shown (or null).
 */
function defenseOutcome(run, r, bare, report) {
  const ds = run.dataset;
  const p = run.params;
  const def = p.defense ?? 'none';
  const cn = (k) => `“${className(ds, k)}”`;
  const orig = Number.isInteger(r.original_predicted) ? r.original_predicted : run.origPredicted;
  const cancelledNote = r.cancelled ? ' (cancelled: best result so far)' : '';
  const scoreText = report ? `score ${fmtNum(report.score, 4)} ${report.flagged ? '>' : '≤'} threshold ${fmtNum(report.threshold, 4)}` : '';
  const preprocText = report
    ? ['bit-depth', 'median']
        .map((k) => report.views.find((v) => v.preprocessing === k))
        .filter(Boolean)
        .map((v) => `after ${v.name} it says ${cn(v.predicted)}`)
        .join(', ')
    : '';
  if (def === 'none') {
    let text = r.success
      ? `Target system: the bare model, which is fooled${cancelledNote}.`
      : `Target system: the bare model, which is not fooled${cancelledNote}.`;
    if (report && r.success) {
      text += report.flagged
        ? ` The squeezing detector would flag this example (${scoreText})`
        : ` The squeezing detector would not flag it (${scoreText})`;
      text += preprocText ? `; ${preprocText}.` : '.';
    }
    return { outcome: r.success ? 'fooled' : 'not-fooled', text };
  }
  const how = p.adaptive ? 'the adaptive attack' : 'the attack on the bare model';
  if (def === 'detector') {
    if (r.success) {
      return {
        outcome: 'fooled',
        text: `Not detected and misclassified${cancelledNote}: the squeezing detector lets ${how}’s example through${
          scoreText ? ` (${scoreText})` : ''
        } and the model says ${cn(r.predicted)} instead of ${cn(orig)}.`,
      };
    }
    if (bare?.success && report) {
      if (report.flagged) {
        return {
          outcome: 'detected',
          text: `Detected by the squeezing detector: the attack fools the bare model (it says ${cn(bare.predicted)} instead of ${cn(orig)}), but the detector flags the example (${scoreText}).`,
        };
      }
      return {
        outcome: 'fooled',
        text: `Not detected and misclassified: the bare model’s adversarial example (it says ${cn(bare.predicted)}) is not flagged (${scoreText}).`,
      };
    }
    return {
      outcome: 'not-fooled',
      text: p.adaptive
        ? `Not fooled${cancelledNote}: the adaptive attack found no example that is misclassified without being flagged; try more steps or a larger initial constant.`
        : `Not fooled${cancelledNote}: the attack did not even fool the bare model; try more steps or a larger constant.`,
    };
  }
  const name = `${DEFENSE_NAMES[def]}${report ? ` (${report.views.find((v) => v.preprocessing === def)?.name ?? ''})` : ''}`.replace(' ()', '');
  if (r.success) {
    return {
      outcome: 'fooled',
      text: `Misclassified after ${name}${cancelledNote}: the defended system says ${cn(r.predicted)} instead of ${cn(orig)}.`,
    };
  }
  if (bare?.success && report) {
    const view = report.views.find((v) => v.preprocessing === def);
    if (view && view.predicted !== orig) {
      return { outcome: 'fooled', text: `Misclassified after ${name}: the bare model’s adversarial example still says ${cn(view.predicted)}.` };
    }
    return {
      outcome: 'not-fooled',
      text: `Not fooled: the attack fools the bare model (it says ${cn(bare.predicted)}), but after ${name} the model says ${cn(view ? view.predicted : orig)} again.`,
    };
  }
  return {
    outcome: 'not-fooled',
    text: p.adaptive
      ? `Not fooled${cancelledNote}: the adaptive attack found no example that ${name} misclassifies; try more steps or a larger constant.`
      : `Not fooled${cancelledNote}: the attack did not even fool the bare model; try more steps or a larger constant.`,
  };
}

/** Shows a finished run: `r` the main result, `bare` the follow-up on the bare model (or null). */
function finishAttack(run, r, bare) {
  attackIdle();
  const ds = run.dataset;
  const p = run.params;
  const defended = p.defense && p.defense !== 'none';
  // The example on show: the main result, or the bare model's when the defended system held.
  const shown = bare?.success ? bare : r;
  if (r.cancelled) setAttackStatus('cancelled', 'cancelled');
  else if (defended) setAttackStatus('done', r.success ? 'done: the defended system is fooled' : 'done: the defended system holds');
  else setAttackStatus('done', r.success ? 'done: adversarial example found' : 'done: no adversarial example found');
  state.lastAttack = { result: shown, dataset: ds, params: shown === bare ? { ...p, defense: 'none', adaptive: false } : p, input: run.input };
  if (shown.image) showAdvImage(run.input.pixels, shown.image, ds);

  const box = $('#attack-result');
  box.hidden = false;
  const probs = shown.probs;
  const predicted = shown.predicted ?? (probs ? argmax(probs) : null);
  box.dataset.success = String(!!r.success);
  box.dataset.cancelled = String(!!r.cancelled);
  box.dataset.squeeze = 'none';
  box.dataset.defense = p.defense ?? 'none';
  box.dataset.adaptive = String(!!p.adaptive);
  box.dataset.example = shown === bare ? 'bare' : 'result';
  box.dataset.predicted = String(predicted);
  box.dataset.l2 = String(shown.l2);
  box.dataset.linf = String(shown.linf);
  if (probs) box.dataset.probs = JSON.stringify(Array.from(probs));
  $('#adv-predicted').textContent = predicted != null ? className(ds, predicted) : '–';
  $('#adv-l2').textContent = fmtNum(shown.l2, 4);
  $('#adv-linf').textContent = fmtNum(shown.linf, 4);
  updateBars($('#adv-bars'), probs, predicted);

  const origPred = Number.isInteger(r.original_predicted) ? r.original_predicted : run.origPredicted;
  const goal = p.targeted ? `target ${className(ds, p.target)}` : 'any other class';
  const cancelledNote = r.cancelled ? ' (cancelled: best result so far)' : '';
  const who = defended ? `the defended system (${DEFENSE_NAMES[p.defense]})` : 'the model';
  const against = defended ? ` against ${DEFENSE_NAMES[p.defense]}` : '';
  if (shown === bare) {
    $('#adv-verdict').textContent = `${ATTACK_NAMES[p.attack]} did not fool ${who}. Shown: its adversarial example for the bare model, which now says “${className(
      ds,
      predicted,
    )}” instead of “${className(ds, origPred)}”.`;
  } else {
    $('#adv-verdict').textContent = r.success
      ? `${ATTACK_NAMES[p.attack]}${against} succeeded${cancelledNote}: ${who} now says “${className(ds, predicted)}”${
          Number.isFinite(origPred) ? ` instead of “${className(ds, origPred)}”` : ''
        } (goal: ${goal}).`
      : `${ATTACK_NAMES[p.attack]}${against} did not reach its goal (${goal})${cancelledNote}; try more steps, a larger ε or a larger constant.`;
  }

  const rounded = shown.rounded;
  const rv = $('#adv-rounded');
  if (rounded) {
    const still = !!rounded.still_adversarial;
    box.dataset.roundedPredicted = String(rounded.predicted);
    box.dataset.stillAdversarial = String(still);
    const rp = rounded.probs ? ` (probability ${fmtProb(rounded.probs[rounded.predicted])})` : '';
    rv.textContent = still
      ? `Still adversarial after rounding to 8-bit pixels: a PNG of it is classified as “${className(ds, rounded.predicted)}”${rp}.`
      : `Not adversarial after rounding to 8-bit pixels: a PNG of it is classified as “${className(ds, rounded.predicted)}”${rp}.`;
    rv.classList.toggle('ok', still);
    rv.classList.toggle('bad', !still);
  } else {
    rv.textContent = '';
  }
  $('#attack-download').disabled = !shown.image;
  setStatus('Ready.');

  // The defenses' view of the example on show (the original when nothing was found).
  const first = defenseOutcome(run, r, bare, null);
  const needReport = !!(defensesOf(ds)?.available && shown.image);
  setDefenseOutcome(needReport && bare ? 'checking' : first.outcome, needReport && bare ? 'Asking the squeezing detector…' : first.text);
  box.dataset.squeeze = needReport ? 'pending' : 'none'; // the defenses' report on the example shown
  if (needReport) {
    const subject = {
      kind: 'attack-result',
      text:
        shown === bare
          ? `The bare model’s adversarial example (${ATTACK_NAMES[p.attack]})`
          : r.success
            ? `The adversarial example (${ATTACK_NAMES[p.attack]}${against}${p.adaptive ? ', adaptive' : ''})`
            : `The attack’s result: no adversarial example, the original image`,
    };
    const lastAttack = state.lastAttack;
    requestSqueeze(ds, shown.image, subject).then((report) => {
      if (state.lastAttack !== lastAttack) return;
      const o = defenseOutcome(run, r, bare, report);
      setDefenseOutcome(o.outcome, o.text);
      box.dataset.squeeze = report ? 'done' : 'failed';
    });
  }
}

function downloadAdversarial() {
  const last = state.lastAttack;
  if (!last?.result?.image) return;
  const [, h, w] = inputShape(last.dataset);
  const cv = document.createElement('canvas');
  drawCHW(cv, last.result.image, inputShape(last.dataset));
  if (cv.width !== w || cv.height !== h) return;
  const pred = last.result.rounded?.predicted ?? last.result.predicted;
  const fname = `advlab-${last.dataset}-${last.params.attack}-${className(last.dataset, pred)}.png`.replace(/[^\w.-]+/g, '_');
  cv.toBlob((blob) => {
    if (!blob) return showError('Could not make the PNG.');
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = fname;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }, 'image/png');
}

// ---------------------------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------------------------

function setBackendBadge(backend, note) {
  const b = $('#backend');
  b.dataset.backend = backend;
  b.textContent = backend === 'webgpu' ? 'WebGPU' : 'CPU fallback';
  b.title = note || (backend === 'webgpu' ? 'Computing on the GPU through WebGPU' : 'Computing on the CPU (WebAssembly)');
  b.setAttribute('aria-label', `Compute backend: ${b.textContent}. ${b.title}`);
}

function wireUi() {
  for (const b of $$('.dataset-switch button')) {
    b.addEventListener('click', () => {
      if (b.dataset.dataset !== state.dataset || document.body.dataset.state === 'error') selectDataset(b.dataset.dataset);
    });
  }
  $('#error-dismiss').addEventListener('click', () => clearError());
  $('#error-reload').addEventListener('click', () => location.reload());
  $('#error-cpu').addEventListener('click', () => {
    const u = new URL(location.href);
    u.searchParams.set('backend', 'cpu');
    location.href = u.href;
  });
  const upload = $('#upload');
  upload.addEventListener('change', async () => {
    const file = upload.files?.[0];
    try {
      await handleUpload(file);
    } finally {
      upload.value = ''; // the same file can be chosen again
    }
  });
  $('#attack-type').addEventListener('change', updateParamFields);
  $('#attack-defense').addEventListener('change', updateDefenseFields);
  $('#attack-mode').addEventListener('change', updateDefenseFields);
  $('#attack-goal').addEventListener('change', () => {
    $('#target-wrap').hidden = $('#attack-goal').value !== 'targeted';
  });
  $('#attack-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    startAttack();
  });
  $('#attack-cancel').addEventListener('click', () => cancelAttack());
  $('#attack-download').addEventListener('click', downloadAdversarial);
  window.addEventListener('resize', () => {
    if (state.attack) drawChart(state.attack.loss, state.attack.l2);
  });
  updateParamFields();
  updateDefenseFields();
  drawChart([], []);
}

/**
 * A small handle for the console and the tests: batch attacks (the engine of `lab attack`) and
 * squeeze reports, through the worker like everything else.
 */
function exposeDebugHandle() {
  window.advlab = {
    get backend() {
      return state.backend;
    },
    get dataset() {
      return state.dataset;
    },
    /** Attacks N images (Float32Array of N CHW images in [0,1]) at once; resolves to the batch result. */
    attackMany(dataset, pixels, labels, targets = null, params = {}, onProgress = null) {
      return state.engine
        .request('attack_many', { dataset, pixels, labels: Array.from(labels), targets: targets && Array.from(targets), params }, { onProgress })
        .then((m) => m.result);
    },
    squeezeReport(dataset, pixels) {
      return state.engine.request('squeeze', { dataset, pixels }).then((m) => m.report);
    },
  };
}

async function main() {
  wireUi();
  setupDrawing();
  setInputsEnabled(false);
  $('#attack-start').disabled = true;
  if (typeof WebAssembly !== 'object') {
    showError('This browser has no WebAssembly support; advlab cannot run here.', { fatal: true });
    return;
  }
  try {
    state.engine = new Engine(new URL('./worker.js', import.meta.url), (e) => {
      if (!state.fatal) reportError('The compute engine stopped', Object.assign(e, { fatal: true }));
    });
  } catch (e) {
    showError(`advlab cannot start: ${e.message ?? e}`, { fatal: true });
    return;
  }
  exposeDebugHandle();
  const forceCpu = params.get('backend') === 'cpu';
  setStatus(forceCpu ? 'Starting the compute engine (CPU)…' : 'Starting the compute engine…');
  let init;
  try {
    init = await state.engine.request('init', { preferWebGpu: !forceCpu });
  } catch (e) {
    showError(`The compute engine could not start: ${e?.message ?? e}`, { fatal: true });
    $('#backend').textContent = 'unavailable';
    $('#backend').dataset.backend = 'none';
    return;
  }
  state.backend = init.backend;
  setBackendBadge(init.backend, init.note);
  const wanted = params.get('dataset');
  await selectDataset(DATASET_NAMES[wanted] ? wanted : 'mnist');
}

window.addEventListener('unhandledrejection', (ev) => {
  console.error('advlab:', ev.reason);
});

main().catch((e) => showError(`advlab failed to start: ${e?.message ?? e}`, { fatal: true }));
