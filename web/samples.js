// The sample picker: the data set's sample pack (models/<dataset>-samples.json + .bin) as a grid
// of thumbnails. One tab stop for the whole grid (a roving tabindex): arrow keys, Home and End
// move between samples, Enter or Space picks one.

import { $, $$, drawCHW } from './util.js';
import { state, className } from './state.js';
import { clearError } from './errors.js';
import { predictPixels } from './prediction.js';
import { inputsOpen } from './ui.js';

export function loadSamples(ds) {
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

export function samplePixels(samples, i) {
  const [c, h, w] = samples.shape;
  const n = c * h * w;
  const out = new Float32Array(n);
  const base = i * n;
  for (let j = 0; j < n; j++) out[j] = samples.data[base + j] / 255;
  return out;
}

/** Makes sample i the grid's one tab stop (and focuses it when asked). */
function rove(i, focus) {
  const buttons = $$('#samples .sample');
  if (!buttons.length) return;
  const k = Math.max(0, Math.min(buttons.length - 1, i));
  buttons.forEach((b, j) => (b.tabIndex = j === k ? 0 : -1));
  if (focus) buttons[k].focus();
}

/** Samples per row as laid out now (for Up / Down). */
function columns(buttons) {
  const top = buttons[0].offsetTop;
  const n = buttons.findIndex((b) => b.offsetTop !== top);
  return n > 0 ? n : buttons.length;
}

function onGridKey(ev) {
  const buttons = $$('#samples .sample');
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  const cols = columns(buttons);
  const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[ev.key];
  let to = null;
  if (move != null) to = at + move;
  else if (ev.key === 'Home') to = 0;
  else if (ev.key === 'End') to = buttons.length - 1;
  if (to == null) return;
  ev.preventDefault();
  rove(to, true);
}

export function renderSamples(ds, samples) {
  const grid = $('#samples');
  grid.textContent = '';
  if (!samples) {
    $('#samples-note').textContent = '(no sample pack for this data set)';
    return;
  }
  $('#samples-note').textContent = `(${samples.count} test images; arrow keys move between them)`;
  for (let i = 0; i < samples.count; i++) {
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'sample';
    btn.dataset.sample = String(i);
    btn.tabIndex = i === 0 ? 0 : -1;
    btn.setAttribute('aria-pressed', 'false');
    const label = samples.labels[i];
    const title = `Sample ${i}${label != null ? ` (label: ${className(ds, label)})` : ''}`;
    btn.title = title;
    btn.setAttribute('aria-label', title);
    const cv = document.createElement('canvas');
    cv.className = 'pixelated';
    cv.setAttribute('aria-hidden', 'true'); // the button's label says what it shows
    drawCHW(cv, samplePixels(samples, i), samples.shape);
    btn.append(cv);
    btn.addEventListener('click', () => pickSample(i));
    grid.append(btn);
  }
}

export function markSelected(i) {
  for (const b of $$('#samples .sample')) {
    const on = Number(b.dataset.sample) === i;
    b.classList.toggle('selected', on);
    b.setAttribute('aria-pressed', String(on));
  }
  if (i != null) rove(i, false);
}

export async function pickSample(i) {
  const ds = state.dataset;
  const samples = await state.samples[ds]?.catch(() => null);
  if (!samples || i >= samples.count || state.dataset !== ds || !inputsOpen()) return;
  clearError();
  markSelected(i);
  await predictPixels(samplePixels(samples, i), `sample:${i}`, samples.labels[i] ?? null);
}

export function setupSamples() {
  $('#samples').addEventListener('keydown', onGridKey);
}
