// The error box: one message at a time, with the actions that make sense for it (dismiss, reload,
// or continue on the CPU after a GPU failure). A fatal error stops the page's controls.

import { $ } from './util.js';
import { state } from './state.js';
import { setStatus, setPageState, lockInputs } from './ui.js';

export function showError(message, { fatal = false, gpu = false } = {}) {
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
    lockInputs('fatal', true);
    $('#attack-start').disabled = true;
    $('#attack-cancel').disabled = true;
  }
}

export function clearError() {
  if (state.fatal) return;
  $('#error').hidden = true;
  $('#error-text').textContent = '';
}

function looksLikeDeviceLoss(msg) {
  return /device (was |is |has been )?lost|lost (the )?(gpu )?device|devicelost|gpu.*lost/i.test(msg);
}

export function reportError(prefix, e) {
  const msg = `${prefix}: ${e?.message ?? e}`;
  const onGpu = state.backend?.backend === 'webgpu';
  if (onGpu && looksLikeDeviceLoss(String(e?.message ?? e))) {
    showError(`The GPU device was lost (${e?.message ?? e}). Reload the page, or continue on the CPU.`, {
      fatal: true,
      gpu: true,
    });
  } else {
    // A crash on WebGPU may be the GPU's doing: offer the CPU backend as well as a reload.
    showError(msg, { fatal: !!e?.fatal, gpu: !!e?.fatal && onGpu });
  }
  console.error(prefix, e);
}
