// The detectors panel (He et al. 2017, case study 3, CIFAR-10): Gong et al.'s binary classifier on
// the input, Metzen et al.'s subnetwork on the classifier's feature maps and Feinman et al.'s
// kernel density on its last hidden layer, each with its score against its threshold, and the
// verdict of their OR-ensemble. Their files are downloaded only when they are chosen (sizes said
// first). Like the other defense panels it follows the input, an attack's current image (live, at
// most once a second) and the result.

import { $, fmtNum } from './util.js';
import { state, className, DATASET_NAMES } from './state.js';
import { reportError } from './errors.js';

export const DETECTOR_KINDS = ['gong', 'metzen', 'feinman'];
const ENSEMBLE = DETECTOR_KINDS.join('+');
const LIVE_MS = 1000;
const live = { seq: 0, busy: false, at: 0 };
/** dataset -> {promise, bytes: {kind: bytes}} */
const loads = {};

const mb = (bytes) => `${(bytes / 1048576).toFixed(1)} MB`;

/** The case-study-3 detectors a spelled system names (e.g. detector+gong -> ['gong']). */
export function detectorKindsOf(defense) {
  return (defense ?? '').split('+').filter((p) => DETECTOR_KINDS.includes(p));
}

function preset(ds, name) {
  return state.modelInfo[ds]?.systems?.find?.((s) => s.name === name) ?? null;
}

/** Whether this data set has the detectors at all (the library offers their ensemble). */
function offered(ds) {
  return !!preset(ds, ENSEMBLE);
}

/** Whether the detectors of `kinds` are loaded (their ensemble's preset needs no download). */
export function detectorsLoaded(ds, kinds = DETECTOR_KINDS) {
  const systems = state.modelInfo[ds]?.systems ?? [];
  const missing = systems.find((s) => s.name === ENSEMBLE)?.reason ?? '';
  return offered(ds) && kinds.every((k) => !missing.includes(`${ds}-${k}.json`));
}

/** Says whether the data set has the detectors, their size, and offers to load them. */
export async function renderDetectorsAvailability(ds) {
  const note = $('#detectors-note');
  const button = $('#detectors-load');
  const card = $('#detectors-card');
  if (!state.modelInfo[ds]) {
    note.textContent = 'Waiting for the model…';
    button.hidden = true;
    return;
  }
  if (!offered(ds)) {
    card.dataset.state = 'none';
    note.textContent = `The three detectors are the CIFAR-10 case study; ${DATASET_NAMES[ds]} has none here.`;
    button.hidden = true;
    $('#detectors-body').hidden = true;
    return;
  }
  if (detectorsLoaded(ds)) return showLoaded(ds);
  card.dataset.state = loads[ds]?.promise ? 'loading' : 'idle';
  button.hidden = false;
  button.disabled = !!loads[ds]?.promise;
  $('#detectors-body').hidden = true;
  note.textContent = 'Not loaded yet: the detectors are downloaded only when you choose them (here or as the attack’s target).';
  // Their sizes, from the small manifests, before anything large is fetched.
  if (!loads[ds]?.bytes) {
    const bytes = {};
    for (const kind of DETECTOR_KINDS) {
      try {
        const resp = await fetch(new URL(`../models/${ds}-${kind}.json`, import.meta.url));
        if (resp.ok) bytes[kind] = (await resp.json()).bytes;
      } catch {
        // The size stays unsaid; loading will report a real failure.
      }
    }
    loads[ds] = { ...loads[ds], bytes };
  }
  if (state.dataset !== ds || detectorsLoaded(ds)) return;
  const sizes = Object.values(loads[ds].bytes ?? {});
  const size = sizes.length === DETECTOR_KINDS.length ? ` (${mb(sizes.reduce((a, b) => a + b, 0))})` : '';
  button.textContent = `Load the three detectors${size}`;
  note.textContent = `Not loaded yet: Gong’s, Metzen’s and Feinman’s detectors${size} are downloaded only when you choose them (here or as the attack’s target).`;
}

function showLoaded(ds) {
  $('#detectors-card').dataset.state = 'loaded';
  $('#detectors-load').hidden = true;
  $('#detectors-progress').textContent = '';
  $('#detectors-note').textContent =
    'Loaded: Gong et al. (binary classifier on the image), Metzen et al. (subnetwork on the classifier’s feature maps), Feinman et al. (kernel density on its last hidden layer); each threshold flags 5% of benign held-out images, and the ensemble flags an image when any of them does.';
}

/**
 * Downloads and loads the detectors of `kinds` once (later calls share the promise); shows the
 * progress, then refreshes the attack form's systems. Resolves to true when they are loaded.
 */
export function ensureDetectors(ds, kinds = DETECTOR_KINDS, onLoaded) {
  if (detectorsLoaded(ds, kinds)) return Promise.resolve(true);
  if (loads[ds]?.promise) return loads[ds].promise.then(() => ensureDetectors(ds, kinds, onLoaded));
  const progress = $('#detectors-progress');
  const button = $('#detectors-load');
  $('#detectors-card').dataset.state = 'loading';
  button.disabled = true;
  const onProgress = (m) => {
    if (state.dataset !== ds) return;
    const which = m.kind ? `the ${m.kind} detector` : 'the detectors';
    progress.textContent =
      m.phase === 'weights' && m.total ? `Downloading ${which}: ${mb(m.loaded)} of ${mb(m.total)}…` : m.phase === 'decode' ? `Checking ${which} (sha256)…` : `Downloading ${which}…`;
  };
  const promise = state.engine
    .request('detectors', { dataset: ds, kinds }, { onProgress })
    .then((msg) => {
      loads[ds] = { ...loads[ds], promise: null };
      if (state.modelInfo[ds] && msg.systems) state.modelInfo[ds].systems = msg.systems;
      if (state.dataset === ds) {
        if (detectorsLoaded(ds)) showLoaded(ds);
        else renderDetectorsAvailability(ds);
        progress.textContent = '';
        onLoaded?.(ds);
        const input = state.input;
        if (input && input.dataset === ds && !state.attack && detectorsLoaded(ds)) requestDetectors(ds, input.pixels, { kind: 'input', text: 'The input' });
      }
      return true;
    })
    .catch((e) => {
      loads[ds] = { ...loads[ds], promise: null };
      if (state.dataset === ds) {
        $('#detectors-card').dataset.state = 'error';
        progress.textContent = '';
        button.disabled = false;
        button.hidden = false;
        button.textContent = 'Try loading the detectors again';
      }
      reportError('Could not load the detectors', e);
      return false;
    });
  loads[ds] = { ...loads[ds], promise };
  return promise;
}

function renderReport(ds, report, subject, seq) {
  const card = $('#detectors-card');
  card.dataset.subject = subject.kind;
  card.dataset.seq = String(seq);
  $('#detectors-body').hidden = false;
  $('#detectors-subject').textContent = subject.text;
  const v = $('#detectors-verdict');
  v.dataset.flagged = String(!!report.flagged);
  const by = report.detectors.filter((d) => d.flagged).map((d) => d.label);
  v.textContent = report.flagged ? `Flagged as adversarial (by ${by.join(', ')})` : 'Not flagged by any detector';
  $('#detectors-class').textContent = `the classifier says “${className(ds, report.predicted)}”`;
  const body = $('#detectors-table tbody');
  body.textContent = '';
  for (const d of report.detectors) {
    const tr = document.createElement('tr');
    tr.dataset.name = d.name;
    tr.dataset.flagged = String(!!d.flagged);
    tr.dataset.score = String(d.score);
    tr.dataset.threshold = String(d.threshold);
    for (const text of [d.label, d.reading, fmtNum(d.score, 4), fmtNum(d.threshold, 4), d.flagged ? 'flagged' : 'quiet']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
}

/**
 * Asks for the detectors' readings of an image and shows them unless a newer request was made
 * meanwhile; `live`: an attack's current image, skipped while the previous one is pending.
 */
export async function requestDetectors(ds, pixels, subject, { live: isLive = false } = {}) {
  if (!detectorsLoaded(ds) || state.fatal) return null;
  if (isLive) {
    const now = performance.now();
    if (live.busy || now - live.at < LIVE_MS) return null;
    live.busy = true;
    live.at = now;
  }
  const seq = ++live.seq;
  let msg;
  try {
    msg = await state.engine.request('detector_report', { dataset: ds, pixels, defense: ENSEMBLE });
  } catch (e) {
    if (e?.fatal) reportError('The detectors failed', e);
    else if (seq === live.seq && ds === state.dataset) $('#detectors-subject').textContent = `Could not run the detectors: ${e?.message ?? e}`;
    return null;
  } finally {
    if (isLive) live.busy = false;
  }
  if (msg.busy || !msg.report) return null;
  if (seq === live.seq && ds === state.dataset) renderReport(ds, msg.report, subject, seq);
  return msg.report;
}

export function endLiveDetectors() {
  live.seq++;
  live.at = 0;
}

export function setupDetectors(onLoaded) {
  $('#detectors-load').addEventListener('click', () => ensureDetectors(state.dataset, DETECTOR_KINDS, onLoaded));
}
