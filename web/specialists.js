// The Specialists+1 panel (He et al. 2017, case study 2): the vote table of the generalist and its
// specialists (each one's classes, vote, confidence, whether it counted), the winner, the mean
// confidence of the winner's voters against the minimum, and the library's verdict. The
// ensemble's weights are downloaded only when this defense is chosen (its size is said first).
// Like the squeezing panel, it follows the input, an attack's current image (live, at most once a
// second) and the result.

import { $, fmtProb } from './util.js';
import { state, className, DATASET_NAMES } from './state.js';
import { reportError } from './errors.js';

const LIVE_VOTE_MS = 1000;
const live = { seq: 0, busy: false, at: 0 };
/** dataset -> {promise, loaded, bytes, error} */
const loads = {};

function mb(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

/** The preset of this defense for a data set, as the library offers it (null: none there). */
function preset(ds) {
  return state.modelInfo[ds]?.systems?.find?.((s) => s.name === 'specialists') ?? null;
}

export function specialistsLoaded(ds) {
  return !!loads[ds]?.loaded || !!preset(ds)?.available;
}

/** Says whether this data set has the ensemble, its size, and offers to load it. */
export async function renderSpecialistsAvailability(ds) {
  const note = $('#specialists-note');
  const button = $('#specialists-load');
  const card = $('#specialists-card');
  const p = preset(ds);
  if (!state.modelInfo[ds]) {
    note.textContent = 'Waiting for the model…';
    button.hidden = true;
    return;
  }
  if (!p) {
    card.dataset.state = 'none';
    note.textContent = `Specialists+1 is the MNIST case study; ${DATASET_NAMES[ds]} has no such ensemble here.`;
    button.hidden = true;
    $('#specialists-body').hidden = true;
    return;
  }
  if (specialistsLoaded(ds)) return showLoaded(ds);
  card.dataset.state = loads[ds]?.promise ? 'loading' : 'idle';
  button.hidden = false;
  button.disabled = !!loads[ds]?.promise;
  $('#specialists-body').hidden = true;
  note.textContent = 'Not loaded yet: its 21 classifiers are downloaded only when you choose this defense (here or as the attack’s target).';
  // The size, from the small manifest, before anything large is fetched.
  if (loads[ds]?.bytes == null && p.download) {
    try {
      const resp = await fetch(new URL(`../models/${p.download}`, import.meta.url));
      if (resp.ok) loads[ds] = { ...loads[ds], bytes: (await resp.json()).bytes };
    } catch {
      // The size stays unsaid; loading will report a real failure.
    }
  }
  if (state.dataset !== ds || specialistsLoaded(ds)) return;
  const size = loads[ds]?.bytes ? ` (${mb(loads[ds].bytes)})` : '';
  button.textContent = `Load Specialists+1${size}`;
  note.textContent = `Not loaded yet: its 21 classifiers${size} are downloaded only when you choose this defense (here or as the attack’s target).`;
}

function showLoaded(ds) {
  const info = loads[ds]?.info;
  $('#specialists-card').dataset.state = 'loaded';
  $('#specialists-load').hidden = true;
  $('#specialists-progress').textContent = '';
  const acc = info?.vote_test_accuracy;
  $('#specialists-note').textContent =
    `Loaded: ${info?.members ?? 21} classifiers` +
    (acc != null ? `, vote accuracy ${(acc * 100).toFixed(2)}% on the 10,000 test images` : '') +
    (info?.min_confidence != null ? `; flagged below a mean confidence of ${info.min_confidence.toFixed(5)} (5% of benign held-out images)` : '') +
    '.';
}

/**
 * Downloads and loads the ensemble of a data set once (later calls share the promise); shows
 * progress, then refreshes the attack form's systems. Resolves to true when it is loaded.
 */
export function ensureSpecialists(ds, onLoaded) {
  if (specialistsLoaded(ds)) return Promise.resolve(true);
  if (loads[ds]?.promise) return loads[ds].promise;
  const progress = $('#specialists-progress');
  const button = $('#specialists-load');
  $('#specialists-card').dataset.state = 'loading';
  button.disabled = true;
  const onProgress = (m) => {
    if (state.dataset !== ds) return;
    progress.textContent =
      m.phase === 'weights' && m.total
        ? `Downloading the specialists: ${mb(m.loaded)} of ${mb(m.total)}…`
        : m.phase === 'decode'
          ? 'Checking the weights (sha256) and stacking the 21 classifiers…'
          : 'Downloading the specialists…';
  };
  const promise = state.engine
    .request('specialists', { dataset: ds }, { onProgress })
    .then((msg) => {
      loads[ds] = { ...loads[ds], loaded: true, info: msg.info, promise: null };
      if (state.modelInfo[ds] && msg.systems) state.modelInfo[ds].systems = msg.systems;
      if (state.dataset === ds) {
        showLoaded(ds);
        onLoaded?.(ds);
        const input = state.input;
        if (input && input.dataset === ds && !state.attack) requestVote(ds, input.pixels, { kind: 'input', text: 'The input' });
      }
      return true;
    })
    .catch((e) => {
      loads[ds] = { ...loads[ds], promise: null };
      if (state.dataset === ds) {
        $('#specialists-card').dataset.state = 'error';
        progress.textContent = '';
        button.disabled = false;
        button.hidden = false;
        button.textContent = 'Try loading Specialists+1 again';
      }
      reportError('Could not load the Specialists+1 ensemble', e);
      return false;
    });
  loads[ds] = { ...loads[ds], promise };
  return promise;
}

function renderVote(ds, report, subject, seq) {
  const card = $('#specialists-card');
  card.dataset.subject = subject.kind;
  card.dataset.seq = String(seq);
  $('#specialists-body').hidden = false;
  $('#specialists-subject').textContent = subject.text;
  const v = $('#specialists-verdict');
  v.dataset.flagged = String(!!report.flagged);
  v.textContent = report.flagged ? 'Flagged as adversarial' : 'Not flagged';
  const w = $('#specialists-winner');
  w.dataset.class = String(report.winner);
  w.textContent = className(ds, report.winner);
  $('#specialists-unanimous').textContent = report.unanimous ? '(unanimous: only the classifiers that know it voted)' : '(no unanimous class: every classifier voted)';
  const conf = $('#specialists-confidence');
  conf.textContent = report.confidence.toFixed(5);
  conf.classList.toggle('bad', !!report.flagged);
  $('#specialists-min').textContent = report.min_confidence.toFixed(5);
  const body = $('#specialists-table tbody');
  body.textContent = '';
  const all = report.members[0]?.classes?.length;
  report.members.forEach((m, k) => {
    const tr = document.createElement('tr');
    tr.dataset.vote = String(m.vote);
    tr.dataset.counted = String(!!m.counted);
    tr.dataset.forWinner = String(m.vote === report.winner);
    const cells = [
      k === 0 ? 'generalist' : `specialist ${k}`,
      m.classes.length === all ? `all ${all}` : m.classes.map((c) => className(ds, c)).join(', '),
      className(ds, m.vote),
      fmtProb(m.confidence),
      m.counted ? 'yes' : 'no',
    ];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    body.append(tr);
  });
}

/**
 * Asks for the vote on an image and shows it unless a newer one was asked for meanwhile;
 * `live`: an attack's current image, skipped while the previous one is pending. Resolves to the
 * report (or null when the ensemble is not loaded).
 */
export async function requestVote(ds, pixels, subject, { live: isLive = false } = {}) {
  if (!specialistsLoaded(ds) || state.fatal) return null;
  if (isLive) {
    const now = performance.now();
    if (live.busy || now - live.at < LIVE_VOTE_MS) return null;
    live.busy = true;
    live.at = now;
  }
  const seq = ++live.seq;
  let msg;
  try {
    msg = await state.engine.request('vote', { dataset: ds, pixels });
  } catch (e) {
    if (e?.fatal) reportError('The Specialists+1 vote failed', e);
    else if (seq === live.seq && ds === state.dataset) $('#specialists-subject').textContent = `Could not run the vote: ${e?.message ?? e}`;
    return null;
  } finally {
    if (isLive) live.busy = false;
  }
  if (msg.busy || !msg.report) return null;
  if (seq === live.seq && ds === state.dataset) renderVote(ds, msg.report, subject, seq);
  return msg.report;
}

/** Ends the live view of an attack (a report in flight is dropped). */
export function endLiveVote() {
  live.seq++;
  live.at = 0;
}

export function setupSpecialists(onLoaded) {
  $('#specialists-load').addEventListener('click', () => ensureSpecialists(state.dataset, onLoaded));
}
