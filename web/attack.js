// An attack run: started from the current input (the inputs stay locked while it runs), watched
// live (chart, current image, perturbation, the squeezing panel), cancelled on request (the
// engine answers with its best result so far, which is shown as such), and its result shown
// with the library's verdicts. A non-adaptive run against a defense gets the bare model's
// example from the same engine call (result.bare); it is never attacked a second time.

import { $, argmax, fmtNum, fmtProb, drawCHW, clearCanvas } from './util.js';
import { state, className, inputShape, defensesOf, ATTACK_NAMES, defenseName } from './state.js';
import { setStatus, lockInputs } from './ui.js';
import { showError, clearError, reportError } from './errors.js';
import { updateBars } from './prediction.js';
import { requestSqueeze, endLiveSqueeze } from './squeeze.js';
import { requestVote, endLiveVote, ensureSpecialists, specialistsLoaded } from './specialists.js';
import { requestDetectors, endLiveDetectors, ensureDetectors, detectorsLoaded, detectorKindsOf } from './detectors.js';
import { drawChart, drawPerturbation, describeScale } from './chart.js';
import { attackParams, stepsOf, renderSystems } from './attack-form.js';
import { defenseOutcome, wrongStartRemark } from './outcome.js';

function setAttackStatus(s, text = s) {
  const el = $('#attack-status');
  el.dataset.state = s;
  el.textContent = text;
}

function setDefenseOutcome(outcome, text) {
  const el = $('#adv-defense');
  el.dataset.outcome = outcome;
  el.textContent = text;
  el.classList.toggle('ok', outcome === 'fooled');
  el.classList.toggle('bad', outcome === 'detected' || outcome === 'not-fooled');
}

let chartRun = null; // the run the chart shows (kept after it ends, for redraws on resize)

function chart(run) {
  chartRun = run;
  const { roundSteps } = run ? stepsOf(run.params) : { roundSteps: null };
  drawChart($('#attack-chart'), run?.points ?? [], { totalSteps: run?.totalSteps ?? 0, roundSteps });
}

export function resetAttackView() {
  $('#attack-result').hidden = true;
  $('#attack-progress').textContent = '';
  $('#attack-progress').dataset.count = '0';
  clearCanvas($('#adv-image'));
  clearCanvas($('#perturbation'));
  $('#pert-scale').textContent = '';
  $('#adv-caption').textContent = 'Adversarial image';
  chart(null);
  setDefenseOutcome('', '');
  state.lastAttack = null;
  if (!state.attack) setAttackStatus('idle');
}

function showAdvImage(orig, adv, ds) {
  const shape = inputShape(ds);
  drawCHW($('#adv-image'), adv, shape);
  const scale = drawPerturbation($('#perturbation'), orig, adv, shape);
  $('#pert-scale').textContent = describeScale(scale);
  $('#perturbation').dataset.scale = String(scale.scale);
  $('#perturbation').dataset.maxAbs = String(scale.maxAbs);
}

/**
 * Downloads the files a target system needs before it can be attacked (Specialists+1, case study
 * 3's detectors), with progress in their panels; resolves to whether they are there.
 */
export function ensureSystem(ds, defense) {
  const kinds = detectorKindsOf(defense);
  if (defense === 'specialists' && !specialistsLoaded(ds)) return ensureSpecialists(ds, renderSystems);
  if (kinds.length && !detectorsLoaded(ds, kinds)) return ensureDetectors(ds, kinds, renderSystems);
  return Promise.resolve(true);
}

export function startAttack() {
  if (state.attack || state.fatal) return;
  const input = state.input;
  const ds = state.dataset;
  if (!input || input.dataset !== ds || input.predicted == null) {
    showError('Pick a sample, draw or upload an image first: the attack starts from the current input.');
    return;
  }
  clearError();
  const p = attackParams();
  const needsSpecialists = p.defense === 'specialists' && !specialistsLoaded(ds);
  const kinds = detectorKindsOf(p.defense);
  if (needsSpecialists || (kinds.length > 0 && !detectorsLoaded(ds, kinds))) {
    // Their weights come first (downloaded once, with progress in their panel); then the attack starts.
    setAttackStatus('loading', `downloading ${needsSpecialists ? 'the Specialists+1 ensemble' : 'the detectors'} first…`);
    $('#attack-start').disabled = true;
    ensureSystem(ds, p.defense).then((ok) => {
      $('#attack-start').disabled = state.fatal || !state.input || !!state.attack;
      if (ok && state.dataset === ds && state.input === input && !state.attack) startAttack();
      else if (!state.attack) setAttackStatus('idle');
    });
    return;
  }
  resetAttackView();
  const run = { id: null, dataset: ds, input, params: p, origPredicted: input.predicted, reports: 0, points: [], totalSteps: 0, last: null };
  state.attack = run;
  lockInputs('attack', true);
  const { id, promise } = state.engine.send('attack', { dataset: ds, pixels: input.pixels, params: p }, { onProgress: (m) => attackProgress(run, m) });
  run.id = id;
  run.t0 = performance.now();
  promise.then(
    (msg) => state.attack === run && finishAttack(run, msg.result),
    (e) => attackFailed(run, e),
  );
  const against = p.defense !== 'none' ? ` against ${defenseName(p.defense)}${p.adaptive ? ' (adaptive)' : ''}` : '';
  setAttackStatus('running', `running ${ATTACK_NAMES[p.attack]}${against}…`);
  $('#attack-start').disabled = true;
  $('#attack-cancel').disabled = false;
  $('#attack-form').classList.add('running');
  setStatus('Attack running…');
}

function attackProgress(run, m) {
  if (state.attack !== run || run.cancelled) return;
  run.reports++;
  run.totalSteps = Number(m.total_steps) || run.totalSteps;
  run.points.push({ step: Number(m.step), loss: Number(m.loss), l2: Number(m.l2) });
  const pe = $('#attack-progress');
  pe.dataset.count = String(run.reports);
  pe.dataset.step = String(m.step);
  const pred = m.predicted != null ? `, predicted ${className(run.dataset, m.predicted)}` : '';
  const best = Number.isFinite(Number(m.best_l2)) ? `, best L2 ${fmtNum(m.best_l2, 3)}` : '';
  // Time left, from the pace so far (shown once a few steps have run).
  const elapsed = performance.now() - run.t0;
  const left = m.step > 0 && m.total_steps > m.step && elapsed > 1000 ? (elapsed / m.step) * (m.total_steps - m.step) : 0;
  const eta = left > 0 ? ` · about ${left >= 60_000 ? `${Math.round(left / 60_000)} min` : `${Math.ceil(left / 1000)} s`} left` : '';
  pe.textContent = `step ${m.step} / ${m.total_steps} · loss ${fmtNum(m.loss, 3)} · L2 ${fmtNum(m.l2, 3)}${best}${pred}${eta}`;
  chart(run);
  if (m.image && m.image.length) {
    run.last = { image: m.image, l2: Number(m.l2), predicted: m.predicted, step: m.step };
    showAdvImage(run.input.pixels, m.image, run.dataset);
    $('#adv-caption').textContent = `Current image (step ${m.step})`;
    // Live view of the defenses on the current iterate: at most once a second, beside the attack.
    const progress = { kind: 'attack-progress', text: `Attack in progress: step ${m.step} / ${m.total_steps}` };
    requestSqueeze(run.dataset, m.image, progress, { live: true });
    requestVote(run.dataset, m.image, progress, { live: true });
    requestDetectors(run.dataset, m.image, progress, { live: true });
  }
}

function attackIdle() {
  state.attack = null;
  lockInputs('attack', false);
  $('#attack-start').disabled = state.fatal || !state.input;
  $('#attack-cancel').disabled = true;
  $('#attack-form').classList.remove('running');
  if (!state.fatal && document.body.dataset.state === 'ready') setStatus('Ready.');
}

/**
 * Asks the engine to stop. It answers with its best result so far, which is then shown
 * (marked as cancelled). `discard`: the page moves on (another data set): drop the run now.
 */
export function cancelAttack({ discard = false } = {}) {
  const run = state.attack;
  if (!run) return;
  state.engine.cancel(run.id);
  run.cancelled = true;
  $('#attack-cancel').disabled = true;
  if (discard) {
    attackIdle();
    endLiveSqueeze({ showInput: false });
    setAttackStatus('cancelled', 'cancelled');
  } else {
    setAttackStatus('cancelling', 'cancelling: keeping the best result so far…');
  }
}

function attackFailed(run, e) {
  if (state.attack !== run) return;
  attackIdle();
  endLiveSqueeze();
  setAttackStatus('error', 'error');
  reportError('The attack failed', e);
}

/** The defended system's verdict on an image (the library's judge), or null. */
async function judge(ds, pixels, defense) {
  try {
    const { verdict } = await state.engine.request('judge', { dataset: ds, pixels, defense });
    return verdict ?? null;
  } catch (e) {
    if (e?.fatal) reportError('Judging the example failed', e);
    return null;
  }
}

function showResultHead(box, ds, shown, predicted, failed) {
  box.dataset.predicted = String(predicted);
  box.dataset.l2 = failed ? '' : String(shown.l2);
  box.dataset.linf = failed ? '' : String(shown.linf);
  if (shown.probs) box.dataset.probs = JSON.stringify(Array.from(shown.probs));
  $('#adv-predicted').textContent = predicted != null ? className(ds, predicted) : '–';
  $('#adv-l2').textContent = failed ? '–' : fmtNum(shown.l2, 4);
  $('#adv-linf').textContent = failed ? '–' : fmtNum(shown.linf, 4);
  updateBars($('#adv-bars'), shown.probs, predicted);
}

function showRounded(box, ds, rounded) {
  const rv = $('#adv-rounded');
  delete box.dataset.roundedPredicted;
  delete box.dataset.stillAdversarial;
  rv.textContent = '';
  rv.classList.remove('ok', 'bad');
  if (!rounded) return;
  const still = !!rounded.still_adversarial;
  box.dataset.roundedPredicted = String(rounded.predicted);
  box.dataset.stillAdversarial = String(still);
  const rp = rounded.probs ? ` (probability ${fmtProb(rounded.probs[rounded.predicted])})` : '';
  rv.textContent = `${still ? 'Still' : 'Not'} adversarial after rounding to 8-bit pixels: a PNG of it is classified as “${className(ds, rounded.predicted)}”${rp}.`;
  rv.classList.toggle('ok', still);
  rv.classList.toggle('bad', !still);
}

/** Shows a finished (or cancelled) run's result `r` (with r.bare for a non-adaptive run against a defense). */
function finishAttack(run, r) {
  attackIdle();
  const ds = run.dataset;
  const p = run.params;
  const defended = p.defense && p.defense !== 'none';
  const bare = defended && !p.adaptive ? (r.bare ?? null) : null;
  // The example on show: the result; the bare model's when the defended system held; else nothing adversarial.
  const shown = r.success ? r : bare?.success ? bare : null;
  const kind = shown === r ? 'result' : shown ? 'bare' : run.last ? 'attempt' : 'none';
  if (r.cancelled) setAttackStatus('cancelled', `cancelled: ${shown ? 'best result so far shown' : 'no adversarial example yet'}`);
  else if (defended) setAttackStatus('done', r.success ? 'done: the defended system is fooled' : 'done: the defended system holds');
  else setAttackStatus('done', r.success ? 'done: adversarial example found' : 'done: no adversarial example found');
  state.lastAttack = shown ? { result: shown, dataset: ds, params: shown === bare ? { ...p, defense: 'none', adaptive: false } : p, input: run.input } : null;

  const box = $('#attack-result');
  box.hidden = false;
  Object.assign(box.dataset, {
    success: String(!!r.success),
    cancelled: String(!!r.cancelled),
    defense: p.defense ?? 'none',
    adaptive: String(!!p.adaptive),
    example: kind,
    seconds: ((performance.now() - run.t0) / 1000).toFixed(2),
  });
  const origPred = Number.isInteger(r.original_predicted) ? r.original_predicted : run.origPredicted;
  const goal = p.targeted ? `target ${className(ds, p.target)}` : 'any other class';
  const who = defended ? `the defended system (${defenseName(p.defense)})` : 'the model';
  const against = defended ? ` against ${defenseName(p.defense)}` : '';
  const cancelledNote = r.cancelled ? ' (cancelled: best result so far)' : '';
  let verdictText;
  if (shown) {
    showAdvImage(run.input.pixels, shown.image, ds);
    $('#adv-caption').textContent = shown === bare ? 'The bare model’s adversarial example' : 'Adversarial image';
    const predicted = shown.predicted ?? (shown.probs ? argmax(shown.probs) : null);
    showResultHead(box, ds, shown, predicted, false);
    showRounded(box, ds, shown.rounded);
    verdictText =
      shown === bare
        ? `${ATTACK_NAMES[p.attack]} did not fool ${who}${cancelledNote}. Shown: its adversarial example for the bare model, which now says “${className(ds, predicted)}” instead of “${className(ds, origPred)}”.`
        : `${ATTACK_NAMES[p.attack]}${against} succeeded${cancelledNote}: ${who} now says “${className(ds, predicted)}” instead of “${className(ds, origPred)}” (goal: ${goal}).`;
  } else {
    // Failed: no L2 of 0 for an image that is not adversarial; the last attempt, labelled as such.
    showResultHead(box, ds, r, r.predicted ?? origPred, true);
    showRounded(box, ds, null);
    const last = run.last;
    if (last) {
      showAdvImage(run.input.pixels, last.image, ds);
      $('#adv-caption').textContent = `Last attempt (step ${last.step}, not adversarial)`;
      box.dataset.attemptL2 = String(last.l2);
    } else {
      clearCanvas($('#adv-image'));
      clearCanvas($('#perturbation'));
      $('#pert-scale').textContent = '';
      $('#adv-caption').textContent = 'No adversarial image';
    }
    const lastText = last ? ` Its last attempt (step ${last.step}, L2 ${fmtNum(last.l2, 3)}) is still classified as “${className(ds, last.predicted ?? origPred)}”.` : '';
    verdictText = `${ATTACK_NAMES[p.attack]}${against} failed${cancelledNote}: no adversarial example found (goal: ${goal}).${lastText} Try more steps, a larger ε or a larger constant.`;
  }
  $('#adv-verdict').textContent = verdictText + (r.success || bare?.success ? wrongStartRemark(run) : '');
  $('#attack-download').disabled = !shown;
  setStatus('Ready.');

  // The defenses' view of the example on show: the defended system's verdict on the bare model's
  // example (judge), and the squeeze report of whatever is shown.
  const withSqueeze = !!(defensesOf(ds)?.available && shown);
  endLiveSqueeze({ showInput: !withSqueeze });
  endLiveVote();
  const voteSubject = shown
    ? { kind: 'attack-result', text: shown === bare ? `The bare model’s adversarial example (${ATTACK_NAMES[p.attack]})` : `The adversarial example (${ATTACK_NAMES[p.attack]}${against}${p.adaptive ? ', adaptive' : ''})` }
    : { kind: 'input', text: 'The input (the attack found no adversarial example)' };
  requestVote(ds, shown ? shown.image : run.input.pixels, voteSubject);
  endLiveDetectors();
  requestDetectors(ds, shown ? shown.image : run.input.pixels, voteSubject);
  box.dataset.squeeze = withSqueeze ? 'pending' : 'none';
  const lastAttack = state.lastAttack;
  const verdictP = shown === bare && bare ? judge(ds, bare.image, p.defense) : Promise.resolve(null);
  const reportP = withSqueeze
    ? requestSqueeze(ds, shown.image, {
        kind: 'attack-result',
        text: shown === bare ? `The bare model’s adversarial example (${ATTACK_NAMES[p.attack]})` : `The adversarial example (${ATTACK_NAMES[p.attack]}${against}${p.adaptive ? ', adaptive' : ''})`,
      })
    : Promise.resolve(null);
  const first = defenseOutcome(run, r, bare, null, null);
  const waiting = shown === bare && bare;
  setDefenseOutcome(waiting ? 'checking' : first.outcome, waiting ? `Asking ${defenseName(p.defense)} about the bare model’s example…` : first.text);
  Promise.all([verdictP, reportP]).then(([verdict, report]) => {
    if (state.lastAttack !== lastAttack || state.attack) return;
    const o = defenseOutcome(run, r, bare, verdict, report);
    setDefenseOutcome(o.outcome, o.text);
    box.dataset.squeeze = withSqueeze ? (report ? 'done' : 'failed') : 'none';
  });
}

export function downloadAdversarial() {
  const last = state.lastAttack;
  if (!last?.result?.image) return;
  const [, h, w] = inputShape(last.dataset);
  const cv = document.createElement('canvas');
  drawCHW(cv, last.result.image, inputShape(last.dataset));
  if (cv.width !== w || cv.height !== h) return;
  const pred = last.result.rounded?.predicted ?? last.result.predicted;
  const fname = `advlab-${last.dataset}-${last.params.attack}-${className(last.dataset, pred)}.png`.replace(/[^\w.-]+/g, '_');
  cv.toBlob((blob) => {
    if (!blob) return showError('Could not make the PNG.');
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = fname;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }, 'image/png');
}

export function setupAttack() {
  $('#attack-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    startAttack();
  });
  $('#attack-cancel').addEventListener('click', () => cancelAttack());
  $('#attack-download').addEventListener('click', downloadAdversarial);
  window.addEventListener('resize', () => chart(state.attack ?? chartRun));
  chart(null);
}
