// Page-wide status: the status line, the page's state (body[data-state]) and the lock on the
// inputs (samples, drawing, upload and the data-set switch), which is closed while a data set
// loads and while an attack runs, so the prediction and the attack always show the same image.

import { $, $$ } from './util.js';
import { state } from './state.js';

export function setStatus(text) {
  $('#status').textContent = text;
}

export function setPageState(s) {
  document.body.dataset.state = s;
}

/** Why the inputs are locked (a set of reasons); they open when no reason is left. */
const locks = new Set();

export function lockInputs(reason, on) {
  if (on) locks.add(reason);
  else locks.delete(reason);
  const open = locks.size === 0 && !state.fatal;
  $('#input-card').classList.toggle('disabled', !open);
  $('#input-card').setAttribute('aria-busy', String(!open));
  for (const el of $$('#input-card button, #input-card input')) el.disabled = !open;
  for (const b of $$('.dataset-switch button')) b.disabled = !open && locks.has('attack');
  $('#draw').dataset.locked = String(!open);
  const why = $('#input-lock-note');
  if (why) {
    why.hidden = !locks.has('attack');
    why.textContent = locks.has('attack') ? 'The inputs are locked while the attack runs (Cancel stops it).' : '';
  }
}

export function inputsOpen() {
  return locks.size === 0 && !state.fatal;
}
