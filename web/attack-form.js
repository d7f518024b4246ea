// The attack form: attack kind, goal, the target system (the library's presets, composed ones
// included) and the parameters, whose defaults come from the library (Lab.attack_defaults) and
// are shown as such. An empty field is left out of the request, so the library's default applies.

import { $, $$, fmtNum } from './util.js';
import { state, defensesOf, defenseParts } from './state.js';
import { ensureSpecialists } from './specialists.js';
import { ensureDetectors, detectorKindsOf } from './detectors.js';

export const FIELDS = {
  // field id -> [attack kinds it belongs to, parameter name, {kind: path in attack_defaults}]
  '#p-steps': [['cw', 'pgd'], 'steps', { cw: 'cw.steps', pgd: 'pgd.steps' }],
  '#p-bss': [['cw'], 'binary_search_steps', { cw: 'cw.binary_search_steps' }],
  '#p-const': [['cw'], 'initial_const', { cw: 'cw.initial_const' }],
  '#p-conf': [['cw'], 'confidence', { cw: 'cw.confidence' }],
  '#p-lr': [['cw'], 'learning_rate', { cw: 'cw.learning_rate' }],
  '#p-eps': [['fgsm', 'pgd'], 'epsilon', { fgsm: 'fgsm.epsilon', pgd: 'pgd.epsilon' }],
  '#p-step-size': [['pgd'], 'step_size', { pgd: 'pgd.step_size' }],
};

function lookup(obj, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/** The library's defaults for the current data set (null with an engine that has none). */
function defaults() {
  return state.modelInfo[state.dataset]?.defaults ?? null;
}

/** Fills the fields of the chosen attack with the library's defaults and says what they are. */
export function applyDefaults() {
  const kind = $('#attack-type').value;
  const d = defaults();
  const shown = [];
  for (const [id, [kinds, name, paths]] of Object.entries(FIELDS)) {
    const el = $(id);
    const v = paths[kind] ? lookup(d, paths[kind]) : undefined;
    el.value = v == null ? '' : String(v);
    el.placeholder = 'default';
    if (kinds.includes(kind) && v != null) shown.push(`${name.replace(/_/g, ' ')} ${fmtNum(v, 4).replace(/\.?0+$/, '') || v}`);
  }
  const rs = kind === 'pgd' ? lookup(d, 'pgd.random_start') : undefined;
  if (rs != null) $('#p-random-start').checked = !!rs;
  const note = $('#attack-defaults');
  note.dataset.source = d ? 'library' : 'engine';
  note.textContent = d
    ? `Defaults (from the library, sized for a page; lab attack uses C&W's full budget): ${shown.join(', ')}${kind === 'cw' && d.cw?.restarts ? `, restarts ${d.cw.restarts}` : ''}.`
    : 'Empty fields use the compute engine’s defaults.';
}

export function updateParamFields() {
  const kind = $('#attack-type').value;
  for (const label of $$('.params label[data-for], .param-help[data-for]')) {
    label.hidden = !label.dataset.for.split(' ').includes(kind);
  }
  applyDefaults();
  $('#target-wrap').hidden = $('#attack-goal').value !== 'targeted';
}

/** The target systems the library offers for a data set, or the four built-in ones. */
export function renderSystems(ds) {
  const sel = $('#attack-defense');
  const before = sel.value;
  const d = defensesOf(ds);
  const on = !!d?.available;
  const systems = state.modelInfo[ds]?.systems;
  if (Array.isArray(systems) && systems.length) {
    sel.textContent = '';
    for (const s of systems) {
      const opt = new Option(s.name === 'none' ? 'Bare model (no defense)' : s.label ?? s.name, s.name);
      // A system whose weights are downloaded when chosen (s.download) is offered; one that needs
      // the squeezing calibration only when the calibration is there.
      const squeezing = (s.parts ?? []).some((part) => ['bit-depth', 'median', 'detector'].includes(part));
      opt.disabled = s.name !== 'none' && ((squeezing && !on) || (!s.available && !s.download));
      if (s.reason) opt.title = s.reason;
      sel.append(opt);
    }
  } else {
    for (const opt of sel.options) opt.disabled = opt.value !== 'none' && !on;
  }
  const keep = Array.from(sel.options).find((o) => o.value === before && !o.disabled);
  sel.value = keep ? before : 'none';
  updateDefenseFields();
}

export function updateDefenseFields() {
  const def = $('#attack-defense').value || 'none';
  const mode = $('#attack-mode');
  mode.disabled = def === 'none';
  const d = defensesOf(state.dataset);
  const say = {
    'bit-depth': `rounds each pixel first (${d?.bit_depth ?? 'bit-depth reduction'})`,
    median: `smooths the image first (${d?.median ?? 'median filter'})`,
    detector: `rejects images whose squeezed answers move too far (${d?.detector?.join(' + ') ?? 'squeezers'})`,
    specialists: 'lets a generalist and 20 specialists vote, and rejects images whose winner gets a low mean confidence',
    gong: 'rejects images that a second classifier (Gong et al.) takes for adversarial',
    metzen: 'rejects images that a detector on the classifier’s feature maps (Metzen et al.) takes for adversarial',
    feinman: 'rejects images whose last hidden layer is atypical for their class (Feinman et al.’s kernel density)',
  };
  const what =
    def === 'none'
      ? 'The attack and its verdict are about the bare classifier.'
      : `The system ${defenseParts(def)
          .map((p) => say[p] ?? p)
          .join(', then ')}.`;
  const how =
    def === 'none'
      ? ''
      : mode.value === 'adaptive'
        ? ' The attack differentiates through the defense (He et al.).'
        : ' The attack follows the bare model’s gradients; the defended system judges the result.';
  const ownFiles = def === 'specialists' || defenseParts(def).every((p) => ['gong', 'metzen', 'feinman'].includes(p));
  $('#defense-note').textContent = (d?.available || def === 'none' || ownFiles ? what : '') + how;
}

function numberField(id) {
  const raw = $(id).value.trim();
  if (raw === '') return undefined;
  const v = Number(raw);
  return Number.isFinite(v) ? v : undefined;
}

/** The attack request's parameters, as the form says. */
export function attackParams() {
  const kind = $('#attack-type').value;
  const targeted = $('#attack-goal').value === 'targeted';
  const p = { attack: kind, targeted, target: targeted ? Number($('#attack-target').value) : null };
  for (const [id, [kinds, name]] of Object.entries(FIELDS)) {
    if (!kinds.includes(kind)) continue;
    let v = numberField(id);
    if (v === undefined) continue;
    if (name === 'steps' || name === 'binary_search_steps') v = Math.max(1, Math.round(v));
    p[name] = v;
  }
  if (kind === 'pgd') p.random_start = $('#p-random-start').checked;
  const defense = $('#attack-defense').value || 'none';
  p.defense = defense;
  p.adaptive = defense !== 'none' && $('#attack-mode').value === 'adaptive';
  return p;
}

/** The run's steps in all and per binary-search round (C&W), for the chart. */
export function stepsOf(p) {
  const d = defaults();
  if (p.attack === 'fgsm') return { roundSteps: null };
  const steps = p.steps ?? lookup(d, `${p.attack}.steps`);
  if (p.attack !== 'cw') return { roundSteps: null, steps };
  return { roundSteps: steps ?? null, steps };
}

export function setupAttackForm() {
  // On a phone the explanations start folded (one tap opens them): the page is long enough there.
  if (window.matchMedia?.('(max-width: 600px)').matches) $('#param-help-box').open = false;
  $('#attack-type').addEventListener('change', updateParamFields);
  $('#attack-defense').addEventListener('change', () => {
    updateDefenseFields();
    // Choosing a system whose weights are not here yet downloads them (with progress in its panel).
    const chosen = state.modelInfo[state.dataset]?.systems?.find?.((s) => s.name === $('#attack-defense').value);
    if (chosen?.download && chosen.name === 'specialists') ensureSpecialists(state.dataset, renderSystems);
    else if (chosen?.download && detectorKindsOf(chosen.name).length) ensureDetectors(state.dataset, detectorKindsOf(chosen.name), renderSystems);
  });
  $('#attack-mode').addEventListener('change', updateDefenseFields);
  $('#attack-goal').addEventListener('change', () => {
    $('#target-wrap').hidden = $('#attack-goal').value !== 'targeted';
  });
  updateParamFields();
  updateDefenseFields();
}
