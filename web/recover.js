// A lost GPU device, without a reload: the worker announces it (web/gpu-watch.js); the page ends
// that worker, starts a fresh one on the CPU fallback, loads the current data set's model into it
// and predicts the current input again. The image, the attack's settings and the target system
// stay as they were (nothing here touches the form); a running attack ends with a message that
// says to start it again.

import { $ } from './util.js';
import { state, DATASET_NAMES } from './state.js';
import { Engine } from './engine.js';
import { setStatus } from './ui.js';
import { showError, reportError } from './errors.js';
import { setBackendBadge } from './backend.js';
import { predictPixels } from './prediction.js';

let recovering = false;

function onFatal(e) {
  if (!state.fatal) reportError('The compute engine stopped', Object.assign(e, { fatal: true }));
}

/** Moves the page to a fresh CPU worker; `why`: the device's loss reason, in words. */
export async function recoverOnCpu(why) {
  if (recovering || state.fatal) return;
  recovering = true;
  const old = state.engine;
  const ds = state.dataset;
  // An attack on the GPU ends with the engine's raw read-back error, often just before the loss
  // is announced: replaced below by a message that says what happened.
  const interrupted = !!state.attack || $('#attack-status').dataset.state === 'error';
  document.body.dataset.recovered = 'pending';
  setStatus('The GPU stopped working: moving to the CPU (your image and settings are kept)…');
  // From here on requests go to the new worker; the old one's pending ones end with a message
  // that names no "lost device" (which would read as fatal on WebGPU).
  state.backend = { ...state.backend, backend: 'cpu', software: false };
  try {
    state.engine = new Engine(new URL('./worker.js', import.meta.url), onFatal);
  } catch (e) {
    showError(`The GPU stopped working and the CPU fallback could not start: ${e?.message ?? e}. Reload the page.`, { fatal: true });
    return;
  }
  watchEngine(state.engine);
  old.worker.terminate();
  old.failAll(new Error(`the GPU stopped working (${why}); advlab moved to the CPU and kept your image and settings: start it again`), false);
  try {
    const init = await state.engine.request('init', { preference: 'cpu' });
    const reason = `The GPU device stopped working (${why}); the page moved to the CPU inside WebAssembly without a reload.`;
    state.backend = { ...init, reason, recovered: true };
    setBackendBadge(state.backend);
    // Models load again into the new worker when needed; the current one now.
    for (const k of Object.keys(state.models)) if (k !== ds) delete state.models[k];
    if (ds) {
      setStatus(`Loading the ${DATASET_NAMES[ds]} model on the CPU…`);
      const info = await state.engine.request('load', { dataset: ds });
      state.models[ds] = Promise.resolve(state.modelInfo[ds] ?? info);
    }
    const input = state.input;
    if (input && input.dataset === state.dataset) {
      const { pixels, source, label } = input;
      await predictPixels(pixels, source, label);
    }
    document.body.dataset.recovered = 'true';
    setStatus('Ready on the CPU: the GPU stopped working, your image and settings were kept.');
    if (interrupted) {
      const st = $('#attack-status');
      st.dataset.state = 'error';
      st.textContent = 'stopped: the GPU device was lost';
      showError('The attack stopped because the GPU device was lost. The page now computes on the CPU and kept your image and settings: start the attack again.');
    }
  } catch (e) {
    document.body.dataset.recovered = 'false';
    showError(`The GPU stopped working and moving to the CPU failed: ${e?.message ?? e}. Reload the page.`, { fatal: true });
  } finally {
    recovering = false;
  }
}

/** Listens for the worker's device-lost announcement (beside the Engine's own message handler). */
export function watchEngine(engine) {
  engine.worker?.addEventListener('message', (ev) => {
    if (ev.data?.type !== 'device-lost' || engine !== state.engine) return;
    if (state.backend?.backend !== 'webgpu') return;
    console.warn('advlab: the GPU device was lost:', ev.data.message);
    recoverOnCpu(ev.data.message ?? 'unknown reason');
  });
}
