// Data sets: the model (with its defenses, the library's attack defaults and its target systems)
// and the sample pack, fetched when the data set is first chosen; switching resets the panels.

import { $, $$, fmtBytes } from './util.js';
import { timeLeft } from './eta.js';
import { state, DATASET_NAMES, DEFAULT_INPUT } from './state.js';
import { setStatus, setPageState, lockInputs } from './ui.js';
import { showError, clearError } from './errors.js';
import { buildBars, clearPrediction } from './prediction.js';
import { renderSqueezeAvailability } from './squeeze.js';
import { renderSpecialistsAvailability } from './specialists.js';
import { renderDetectorsAvailability } from './detectors.js';
import { renderSystems, updateParamFields } from './attack-form.js';
import { resetAttackView, cancelAttack } from './attack.js';
import { loadSamples, renderSamples, pickSample } from './samples.js';
import { clearDrawing } from './drawing.js';

function loadModel(ds) {
  if (!state.models[ds]) {
    const t0 = performance.now();
    const onProgress = (p) => {
      if (state.dataset !== ds) return;
      const name = DATASET_NAMES[ds];
      const eta = timeLeft(performance.now() - t0, p.loaded, p.total);
      if (p.phase === 'weights') setStatus(`Downloading the ${name} model… ${fmtBytes(p.loaded)}${p.total ? ` / ${fmtBytes(p.total)}` : ''}${eta}`);
      else if (p.phase === 'decode') setStatus(`Checking and loading the ${name} weights…`);
      else setStatus(`Loading the ${name} model…`);
    };
    state.models[ds] = state.engine
      .request('load', { dataset: ds }, { onProgress })
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

/**
 * Runs before the first data set's samples are shown: where the worker asked for it (a hardware
 * WebGPU adapter), a few predictions on each backend choose the faster one.
 */
let beforeFirstUse = null;
export function onModelLoaded(fn) {
  beforeFirstUse = fn;
}

export async function selectDataset(ds) {
  if (state.fatal || !DATASET_NAMES[ds]) return;
  if (state.attack) cancelAttack({ discard: true });
  state.dataset = ds;
  state.predictReq++; // drop predictions in flight for the previous data set
  state.input = null;
  for (const b of $$('.dataset-switch button')) b.setAttribute('aria-checked', String(b.dataset.dataset === ds));
  const name = DATASET_NAMES[ds];
  clearError();
  setPageState('loading');
  lockInputs('loading', true);
  $('#attack-start').disabled = true;
  $('#samples').textContent = '';
  $('#samples-note').textContent = '';
  $('#bars').textContent = '';
  clearPrediction();
  resetAttackView();
  renderSqueezeAvailability(ds);
  renderSpecialistsAvailability(ds);
  renderDetectorsAvailability(ds);
  renderSystems(ds);
  $('#model-info').textContent = '';
  const shape = DEFAULT_INPUT[ds];
  $('#model-input-size').textContent = `(${shape[2]}×${shape[1]})`;
  setStatus(`Loading the ${name} model…`);
  $('#draw-color').value = ds === 'mnist' ? '#ffffff' : '#ffcc00';

  const samplesP = loadSamples(ds).catch((e) => {
    console.warn('samples', e);
    return null;
  });
  let info;
  try {
    info = await loadModel(ds);
    if (beforeFirstUse && state.dataset === ds) {
      const fn = beforeFirstUse;
      beforeFirstUse = null;
      await fn(ds);
    }
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
  const samples = await samplesP;
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
  renderSqueezeAvailability(ds);
  renderSpecialistsAvailability(ds);
  renderDetectorsAvailability(ds);
  renderSystems(ds);
  updateParamFields(); // the library's defaults for this data set
  renderSamples(ds, samples);
  clearDrawing();
  lockInputs('loading', false);
  if (samples && samples.count > 0) await pickSample(0);
  if (state.dataset !== ds) return;
  setStatus('Ready. Pick a sample, draw, or upload an image.');
  setPageState('ready');
}
