// The prediction panel: what the model sees, its answer with a bar per class, and remarks about
// the input (a sample the model already gets wrong; an upload the model can only force into one
// of its ten classes; how a transparent image was flattened).

import { $, $$, argmax, fmtProb, drawCHW, clearCanvas } from './util.js';
import { state, className, inputShape, DATASET_NAMES } from './state.js';
import { setStatus } from './ui.js';
import { showError, reportError } from './errors.js';
import { requestSqueeze } from './squeeze.js';
import { requestVote } from './specialists.js';
import { requestDetectors } from './detectors.js';

export function buildBars(container, classes) {
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
    bar.setAttribute('aria-hidden', 'true');
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

export function updateBars(container, probs, predicted) {
  for (const row of $$('.bar-row', container)) {
    const k = Number(row.dataset.class);
    const p = probs ? probs[k] : null;
    $('.fill', row).style.width = p == null ? '0%' : `${Math.max(0, Math.min(1, p)) * 100}%`;
    $('.prob', row).textContent = p == null ? '–' : fmtProb(p);
    row.dataset.prob = p == null ? '' : String(p);
    row.classList.toggle('is-top', p != null && k === predicted);
  }
}

function setRemark(text, kind = '') {
  const el = $('#input-remark');
  el.hidden = !text;
  el.textContent = text ?? '';
  el.dataset.kind = kind;
}

export function clearPrediction() {
  const el = $('#prediction');
  delete el.dataset.probs;
  delete el.dataset.predicted;
  delete el.dataset.source;
  $('#predicted').textContent = '–';
  $('#confidence').textContent = '';
  $('#input-source').textContent = '';
  setRemark('');
  updateBars($('#bars'), null, -1);
  clearCanvas($('#model-input'));
}

export function describeSource(source, label, ds) {
  if (source.startsWith('sample:')) {
    const n = source.slice(7);
    return `Sample #${n}${label != null ? `, true label: ${className(ds, label)}` : ''}`;
  }
  if (source === 'drawing') return 'Your drawing';
  if (source.startsWith('upload:')) return `Uploaded: ${source.slice(7)}`;
  return source;
}

/** What to say about an input next to its prediction (or ''). `note`: from the upload (e.g. transparency). */
function remarkFor(ds, source, label, predicted, note) {
  const parts = [];
  if (note) parts.push(note);
  if (label != null && predicted !== label) {
    parts.push(
      `The model already gets this sample wrong: it is a “${className(ds, label)}”, the model says “${className(ds, predicted)}”. ` +
        'An attack on it starts from a mistake (an untargeted one succeeds by leaving “' +
        `${className(ds, predicted)}”, possibly towards the true class).`,
    );
  }
  if (source.startsWith('upload:')) {
    const classes = state.modelInfo[ds]?.classes ?? [];
    parts.push(
      `The ${DATASET_NAMES[ds]} model knows only ${classes.length || 10} classes (${classes.join(', ')}): ` +
        'a picture of anything else still gets one of them, often with high confidence.',
    );
  }
  return parts.join(' ');
}

/** Shows `pixels` (the model's input) and asks the engine for its prediction. */
export async function predictPixels(pixels, source, label = null, note = '') {
  const ds = state.dataset;
  const shape = inputShape(ds);
  const req = ++state.predictReq;
  state.input = { dataset: ds, pixels, source, label, predicted: null };
  const input = state.input;
  drawCHW($('#model-input'), pixels, shape);
  $('#model-input').setAttribute('aria-label', `What the model sees: ${describeSource(source, label, ds)}`);
  $('#input-source').textContent = describeSource(source, label, ds);
  $('#attack-start').disabled = true; // until the prediction is known: the attack starts from it
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
  input.predicted = predicted;
  const el = $('#prediction');
  el.dataset.probs = JSON.stringify(Array.from(probs));
  el.dataset.predicted = String(predicted);
  el.dataset.source = source;
  el.dataset.seq = String(++state.predictionSeq);
  $('#predicted').textContent = className(ds, predicted);
  $('#confidence').textContent = `probability ${fmtProb(probs[predicted])}`;
  updateBars($('#bars'), probs, predicted);
  const remark = remarkFor(ds, source, label, predicted, note);
  setRemark(remark, label != null && predicted !== label ? 'wrong' : source.startsWith('upload:') ? 'upload' : 'note');
  $('#attack-start').disabled = !!state.attack || state.fatal;
  setStatus(state.attack ? 'Attack running…' : 'Ready.');
  const subject = { kind: 'input', text: `The input: ${describeSource(source, label, ds)}` };
  requestSqueeze(ds, pixels, subject);
  requestVote(ds, pixels, subject);
  requestDetectors(ds, pixels, subject);
  return true;
}

/** RGBA pixels of a picture -> the model's input (in the engine) -> prediction. */
export async function predictRgba(rgba, width, height, source, note = '') {
  const ds = state.dataset;
  let pixels;
  try {
    ({ pixels } = await state.engine.request('prepare', { dataset: ds, rgba, width, height }, { transfer: [rgba.buffer] }));
  } catch (e) {
    if (e?.fatal) reportError('Preprocessing failed', e);
    else showError(`Could not use this image: ${e?.message ?? e}`);
    return false;
  }
  if (state.dataset !== ds) return false;
  return predictPixels(pixels, source, null, note);
}
