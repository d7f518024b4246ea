// The story's runner: shows one step of web/story.js at a time in the story panel, sets the page
// up for it (web/view-state.js), runs its attack through the attack panel (which shows progress,
// time left and Cancel as always), and puts the step's figures from results/ beside what this
// page measured. One click per step (Next / Back); ?story=N opens step N (from 1).

import { $, fmtNum } from './util.js';
import { state, params, DATASET_NAMES } from './state.js';
import { STORY } from './story.js';
import { applyView } from './view-state.js';
import { startAttack, cancelAttack, ensureSystem } from './attack.js';
import { loadResults, findCell } from './results.js';
import { showExplanations } from './explain.js';
import { syncUrl } from './share.js';

let current = -1;
let token = 0; // the step being set up; an older one stops when a newer click comes
const live = new Map(); // step id -> {l2, success, outcome} measured here

const fill = (s, ds) => (typeof s === 'string' ? s.replaceAll('{dataset}', ds) : s);

function setUrlStep(n) {
  const u = new URL(location.href);
  if (n == null) u.searchParams.delete('story');
  else u.searchParams.set('story', String(n));
  history.replaceState(history.state, '', u.href);
  syncUrl();
}

/** Waits until the attack panel shows the end of the run and the defended system's outcome. */
function waitAttackEnd() {
  const ended = () => {
    const st = $('#attack-status').dataset.state;
    if (st === 'error' || st === 'cancelled') return true;
    const o = $('#adv-defense').dataset.outcome;
    return st === 'done' && o !== '' && o !== 'checking';
  };
  return new Promise((resolve) => {
    if (ended()) return resolve();
    const obs = new MutationObserver(() => {
      if (!ended()) return;
      obs.disconnect();
      resolve();
    });
    obs.observe($('#attack-card'), { attributes: true, subtree: true, attributeFilter: ['data-state', 'data-outcome'] });
  });
}

/** The attack panel's result, as shown. */
function readShownResult() {
  const box = $('#attack-result');
  const l2 = box.dataset.l2 ? Number(box.dataset.l2) : null;
  return {
    status: $('#attack-status').dataset.state,
    success: box.dataset.success === 'true',
    example: box.dataset.example,
    l2,
    outcome: $('#adv-defense').dataset.outcome,
    text: $('#adv-defense').textContent || $('#adv-verdict').textContent,
  };
}

async function renderFigures(step, ds, my) {
  const list = $('#story-figures');
  list.textContent = '';
  $('#story-figures-wrap').hidden = !step.figures?.length;
  for (const f of step.figures ?? []) {
    const row = document.createElement('tr');
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = f.label;
    const td = document.createElement('td');
    td.textContent = '…';
    row.append(th, td);
    list.append(row);
    let value = null;
    let source = '';
    try {
      if (f.manifest) {
        source = `models/${ds}.json`;
        const v = state.modelInfo[ds]?.manifest?.[f.manifest];
        value = typeof v === 'number' && f.manifest === 'test_accuracy' ? `${(v <= 1 ? v * 100 : v).toFixed(2)}%` : v != null ? String(v) : null;
      } else {
        source = fill(f.file, ds);
        const where = Object.fromEntries(Object.entries(f.where).map(([k, v]) => [k, fill(v, ds)]));
        value = findCell(await loadResults(source), where, f.column);
      }
    } catch (e) {
      value = null;
      source = `${source}: ${e.message ?? e}`;
    }
    if (my !== token) return;
    td.textContent = value ?? `not found (${source})`;
    td.dataset.value = value ?? '';
    td.dataset.source = source;
    td.dataset.column = f.column ?? f.manifest;
    td.title = `From ${source}`;
  }
  const files = [...new Set((step.figures ?? []).map((f) => (f.manifest ? `models/${ds}.json` : fill(f.file, ds))))];
  $('#story-figures-source').textContent = files.join(', ');
}

/** Copies of the panels' images (input; with an attack, its example and the perturbation) under the step's text. */
function renderImages(step) {
  let box = $('#story-images');
  if (!box) {
    box = document.createElement('div');
    box.id = 'story-images';
    box.className = 'story-images';
    $('#story-live').after(box);
  }
  box.textContent = '';
  const shown = [['#model-input', 'The input']];
  if (step.run === 'attack' && !$('#attack-result').hidden) shown.push(['#adv-image', $('#adv-caption').textContent], ['#perturbation', 'The change (perturbation)']);
  for (const [sel, label] of shown) {
    const src = $(sel);
    const fig = document.createElement('figure');
    const cv = document.createElement('canvas');
    cv.className = 'pixelated';
    cv.width = src.width;
    cv.height = src.height;
    cv.getContext('2d').drawImage(src, 0, 0);
    cv.setAttribute('role', 'img');
    cv.setAttribute('aria-label', label);
    const cap = document.createElement('figcaption');
    cap.textContent = label;
    fig.append(cv, cap);
    box.append(fig);
  }
}

function renderLive(step) {
  const el = $('#story-live');
  if (!step.run) {
    const p = $('#prediction');
    el.textContent = p.dataset.predicted != null ? `On this page: the model says “${$('#predicted').textContent}” (${$('#confidence').textContent}) for ${$('#input-source').textContent.replace(/^S/, 's')}.` : '';
    return;
  }
  const r = live.get(step.id);
  if (!r) return;
  const size = r.success && r.l2 != null ? ` L2 of the example: ${fmtNum(r.l2, 3)}.` : '';
  let text = `On this page, now (${$('#input-source').textContent}): ${r.text}${size}`;
  if (step.id === 'ensemble' && live.get('adaptive')?.l2 != null && r.l2 != null) {
    text += ` Against the detector (previous step): L2 ${fmtNum(live.get('adaptive').l2, 3)}.`;
  }
  if (r.status === 'cancelled') text = `Cancelled. ${text}`;
  el.textContent = text;
  el.dataset.l2 = r.l2 == null ? '' : String(r.l2);
  el.dataset.outcome = r.outcome;
}

function renderStep(i, ds) {
  const step = STORY[i];
  const card = $('#story-card');
  card.hidden = false;
  card.dataset.step = String(i + 1);
  card.dataset.stepId = step.id;
  $('#story-count').textContent = `Step ${i + 1} of ${STORY.length}`;
  $('#story-step-title').textContent = step.title;
  const text = $('#story-text');
  text.textContent = '';
  for (const t of step.text) {
    const p = document.createElement('p');
    p.textContent = fill(t, DATASET_NAMES[ds] ?? ds);
    text.append(p);
  }
  $('#story-live').textContent = '';
  $('#story-images')?.replaceChildren();
  $('#story-prev').disabled = i === 0;
  $('#story-next').disabled = i === STORY.length - 1;
  $('#story-next').textContent = i === STORY.length - 1 ? 'The end' : `Next: ${STORY[i + 1].title}`;
}

function setStepState(s) {
  $('#story-card').dataset.state = s;
  $('#story-cancel').hidden = s !== 'running';
  $('#story-rerun').disabled = s === 'setting-up' || s === 'running';
}

/** Goes to step i (from 0) and runs it. */
export async function goToStep(i) {
  if (i < 0 || i >= STORY.length || state.fatal) return;
  const my = ++token;
  current = i;
  const step = STORY[i];
  // A running attack (the previous step's, or one started by hand) gives way to this step.
  if (state.attack) cancelAttack({ discard: true });
  const ds = step.dataset ?? state.dataset ?? 'mnist';
  renderStep(i, ds);
  setUrlStep(i + 1);
  showExplanations(step.explain ?? []);
  setStepState('setting-up');
  const onGpu = state.backend?.backend === 'webgpu';
  const view = { ...step.view, dataset: ds, params: { ...(step.view.params ?? {}), ...(onGpu && step.webgpu ? step.webgpu : {}) } };
  const missed = await applyView(view);
  if (my !== token) return;
  renderFigures(step, ds, my);
  $('#story-note').textContent = missed.length ? `This step could not set ${missed.join(', ')}.` : onGpu && step.webgpu ? 'On WebGPU this step runs a short attack (few steps), so its live numbers are rougher than the figures; ?backend=cpu runs the full one.' : '';
  if (step.run === 'attack') {
    setStepState('running');
    // A system whose files are not here yet (Specialists+1, the detectors) downloads them first.
    const ok = await ensureSystem(state.dataset, $('#attack-defense').value || 'none');
    if (my !== token) return;
    if (ok) startAttack();
    if (!state.attack) {
      setStepState('done');
      return;
    }
    // The attack panel's progress line (step, loss, L2, time left) is echoed here while it runs.
    const echo = new MutationObserver(() => {
      if (my === token) $('#story-live').textContent = `Running: ${$('#attack-progress').textContent}`;
    });
    echo.observe($('#attack-progress'), { childList: true, characterData: true, subtree: true });
    try {
      await waitAttackEnd();
    } finally {
      echo.disconnect();
    }
    if (my !== token) return;
    live.set(step.id, readShownResult());
  }
  renderLive(step);
  renderImages(step);
  setStepState('done');
}

export function leaveStory() {
  token++;
  current = -1;
  $('#story-card').hidden = true;
  showExplanations([]);
  setUrlStep(null);
}

export function setupStory() {
  $('#story-button').addEventListener('click', () => {
    goToStep(0);
    $('#story-card').scrollIntoView?.({ block: 'start' });
  });
  $('#story-prev').addEventListener('click', () => goToStep(current - 1));
  $('#story-next').addEventListener('click', () => goToStep(current + 1));
  $('#story-rerun').addEventListener('click', () => goToStep(current));
  $('#story-cancel').addEventListener('click', () => cancelAttack());
  $('#story-exit').addEventListener('click', leaveStory);
}

/** Opens the step named by ?story=N (from 1), if any. */
export async function openStoryFromUrl() {
  const s = params.get('story');
  if (s == null) return;
  const n = /^\d+$/.test(s) ? Number(s) : 1;
  await goToStep(Math.min(Math.max(n, 1), STORY.length) - 1);
}
