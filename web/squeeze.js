// The feature-squeezing panel (He et al. 2017, case study 1): the squeezed views of an image, the
// model's answer on each, the detector's score against its threshold and the library's verdict.
// It follows the input, an attack's current image (live, at most once a second) and the result.

import { $, fmtNum, fmtProb, drawCHW } from './util.js';
import { state, className, inputShape, defensesOf, DATASET_NAMES } from './state.js';
import { reportError } from './errors.js';

const LIVE_SQUEEZE_MS = 1000; // at most one squeeze report a second of an attack's current image

/** Says whether the defenses of the current data set exist, and what they are. */
export function renderSqueezeAvailability(ds) {
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
}

export function clearSqueeze() {
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
  cv.setAttribute('role', 'img');
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
    bar.setAttribute('aria-hidden', 'true');
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
  $('#squeeze-score-bar').classList.toggle('over', !!report.flagged);
  const views = $('#squeeze-views');
  views.textContent = '';
  if (subject.pixels) {
    const orig = { name: 'as given', image: subject.pixels, probs: report.probs, predicted: report.predicted, l1: null };
    views.append(squeezeView(ds, orig, report.threshold, 'squeeze-orig'));
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
export async function requestSqueeze(ds, pixels, subject, { live = false } = {}) {
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

/**
 * Ends the live view of an attack: a live report still in flight is dropped (it would show a
 * stale "step N / M"), and the panel goes back to the input unless the caller shows a result.
 */
export function endLiveSqueeze({ showInput = true } = {}) {
  state.squeeze.seq++;
  state.squeeze.liveAt = 0;
  const input = state.input;
  if (showInput && input && input.dataset === state.dataset && $('#squeeze-card').dataset.subject === 'attack-progress') {
    requestSqueeze(input.dataset, input.pixels, { kind: 'input', text: 'The input (the attack stopped without an image to show)' });
  }
}
