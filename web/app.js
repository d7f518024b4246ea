// advlab page: starts the compute engine (web/worker.js, through engine.js), picks the backend,
// loads the first data set and wires the panels. Each panel lives in its own module:
//   state.js      state and names            engine.js     worker protocol client
//   ui.js         status line, input lock    errors.js     the error box
//   datasets.js   models and sample packs    samples.js    the sample grid (roving tabindex)
//   drawing.js    the drawing canvas         upload.js     uploads (checked before decoding)
//   prediction.js the prediction panel       squeeze.js    the feature-squeezing panel
//   attack-form.js the attack's settings     attack.js     an attack run and its result
//   outcome.js    verdicts in words          chart.js      the loss/L2 chart, perturbation view
//   backend.js    the backend badge          backend-choice.js  which backend, and why

import { $, $$ } from './util.js';
import { state, params, DATASET_NAMES } from './state.js';
import { Engine } from './engine.js';
import { setStatus, lockInputs } from './ui.js';
import { showError, clearError, reportError } from './errors.js';
import { selectDataset, onModelLoaded } from './datasets.js';
import { setupSamples } from './samples.js';
import { setupDrawing } from './drawing.js';
import { setupUpload } from './upload.js';
import { setupAttackForm, renderSystems } from './attack-form.js';
import { setupAttack } from './attack.js';
import { setupSpecialists } from './specialists.js';
import { setupDetectors } from './detectors.js';
import { setupPageTools, restorePageTools } from './page-tools.js';
import { setBackendBadge, setBackendUnavailable, backendPreference, switchBackend, setupBackendSwitch } from './backend.js';

function wireUi() {
  setupPageTools(); // embed mode first: the page must not show its chrome in an iframe
  for (const b of $$('.dataset-switch button')) {
    b.addEventListener('click', () => {
      if (b.dataset.dataset !== state.dataset || document.body.dataset.state === 'error') selectDataset(b.dataset.dataset);
    });
  }
  $('#error-dismiss').addEventListener('click', () => clearError());
  $('#error-reload').addEventListener('click', () => location.reload());
  $('#error-cpu').addEventListener('click', () => switchBackend('cpu'));
  setupBackendSwitch();
  setupSamples();
  setupDrawing();
  setupUpload();
  setupAttackForm();
  setupAttack();
  setupSpecialists(renderSystems);
  setupDetectors(renderSystems);
}

/**
 * A small handle for the console and the tests: batch attacks (the engine of `lab attack`),
 * squeeze reports and the library's verdicts, through the worker like everything else.
 */
function exposeDebugHandle() {
  window.advlab = {
    get backend() {
      return state.backend?.backend ?? null;
    },
    get backendInfo() {
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
    judge(dataset, pixels, defense) {
      return state.engine.request('judge', { dataset, pixels, defense }).then((m) => m.verdict);
    },
  };
}

/** The start-up probe (hardware WebGPU adapters only): the worker times both backends. */
async function probeBackends(ds) {
  setStatus('Measuring which backend is faster here (a few predictions on each)…');
  try {
    const probe = await state.engine.request('probe', { dataset: ds });
    state.backend = { ...state.backend, ...probe };
    setBackendBadge(state.backend);
  } catch (e) {
    if (e?.fatal) throw e;
    console.warn('advlab: backend probe failed; keeping', state.backend?.backend, e);
  }
}

async function main() {
  wireUi();
  lockInputs('loading', true);
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
  const preference = backendPreference();
  setStatus(preference === 'cpu' ? 'Starting the compute engine (CPU)…' : 'Starting the compute engine…');
  let init;
  try {
    init = await state.engine.request('init', { preference });
  } catch (e) {
    showError(`The compute engine could not start: ${e?.message ?? e}`, { fatal: true });
    setBackendUnavailable();
    return;
  }
  state.backend = init;
  setBackendBadge(init);
  if (init.probe) onModelLoaded(probeBackends);
  const wanted = params.get('dataset');
  await selectDataset(DATASET_NAMES[wanted] ? wanted : 'mnist');
  await restorePageTools(); // a shared link's view, a story step
}

window.addEventListener('unhandledrejection', (ev) => {
  console.error('advlab:', ev.reason);
});

main().catch((e) => showError(`advlab failed to start: ${e?.message ?? e}`, { fatal: true }));
