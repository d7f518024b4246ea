// The view a link carries: data set, sample number, attack and its parameters, target system,
// attacker, and the backend the visitor asked for. Read from the page, written to and read from a
// URL query, and applied to the page (a shared link, a story step). An uploaded or drawn image is
// never part of it: only a sample's number is.

import { $ } from './util.js';
import { state, params, DATASET_NAMES } from './state.js';
import { selectDataset } from './datasets.js';
import { pickSample } from './samples.js';
import { attackParams, FIELDS } from './attack-form.js';

/** Parameter name (the library's) -> form field. */
const PARAM_FIELDS = Object.fromEntries(Object.entries(FIELDS).map(([id, [, name]]) => [name, id]));
const ATTACKS = ['cw', 'fgsm', 'pgd'];
/** Query keys this module owns (the others, e.g. embed, story, large, are left as they are). */
export const VIEW_KEYS = ['dataset', 'sample', 'attack', 'goal', 'target', 'defense', 'adaptive', 'backend', ...Object.keys(PARAM_FIELDS), 'random_start'];

function lookup(obj, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/** Where the current input came from: {kind: sample|drawing|upload|none, sample}. */
export function inputOrigin() {
  const src = state.input?.source ?? '';
  if (src.startsWith('sample:')) return { kind: 'sample', sample: Number(src.slice(7)) };
  if (src === 'drawing') return { kind: 'drawing', sample: null };
  if (src.startsWith('upload:')) return { kind: 'upload', sample: null };
  return { kind: 'none', sample: null };
}

/** The page's view now, as plain data. Parameters equal to the library's defaults are left out. */
export function readView() {
  const p = attackParams();
  const d = state.modelInfo[state.dataset]?.defaults ?? null;
  const changed = {};
  for (const name of Object.keys(PARAM_FIELDS)) {
    if (p[name] === undefined) continue;
    const def = lookup(d, `${p.attack}.${name}`);
    if (def == null || Number(def) !== Number(p[name])) changed[name] = p[name];
  }
  if (p.attack === 'pgd' && p.random_start !== (lookup(d, 'pgd.random_start') ?? true)) changed.random_start = p.random_start;
  const backend = params.get('backend');
  return {
    dataset: state.dataset,
    sample: inputOrigin().sample,
    attack: p.attack,
    targeted: p.targeted,
    target: p.target,
    defense: p.defense,
    adaptive: p.adaptive,
    params: changed,
    backend: ['cpu', 'webgpu', 'measure'].includes(backend) ? backend : null,
  };
}

/** A view -> query parameters (only what differs from the page's defaults). */
export function viewQuery(v) {
  const q = new URLSearchParams();
  if (v.dataset && v.dataset !== 'mnist') q.set('dataset', v.dataset);
  if (Number.isInteger(v.sample) && v.sample !== 0) q.set('sample', String(v.sample));
  if (v.attack && v.attack !== 'cw') q.set('attack', v.attack);
  if (v.targeted) {
    q.set('goal', 'targeted');
    if (Number.isInteger(v.target)) q.set('target', String(v.target));
  }
  if (v.defense && v.defense !== 'none') {
    q.set('defense', v.defense);
    if (v.adaptive) q.set('adaptive', '1');
  }
  for (const [k, x] of Object.entries(v.params ?? {})) {
    if (k === 'random_start') q.set(k, x ? '1' : '0');
    else q.set(k, String(x));
  }
  if (v.backend) q.set('backend', v.backend);
  return q;
}

/** Query parameters -> a view (what is missing or malformed is left out, never guessed). */
export function parseView(q) {
  const int = (k) => {
    const s = q.get(k);
    return s != null && /^\d+$/.test(s) ? Number(s) : null;
  };
  const v = { params: {} };
  const ds = q.get('dataset');
  if (ds && DATASET_NAMES[ds]) v.dataset = ds;
  v.sample = int('sample');
  const attack = q.get('attack');
  if (ATTACKS.includes(attack)) v.attack = attack;
  if (q.get('goal') === 'targeted') {
    v.targeted = true;
    v.target = int('target');
  }
  const defense = q.get('defense');
  if (defense && /^[a-z0-9+-]+$/i.test(defense)) {
    v.defense = defense;
    v.adaptive = q.get('adaptive') === '1';
  }
  for (const name of Object.keys(PARAM_FIELDS)) {
    const s = q.get(name);
    if (s != null && s.trim() !== '' && Number.isFinite(Number(s))) v.params[name] = Number(s);
  }
  if (q.has('random_start')) v.params.random_start = q.get('random_start') !== '0';
  return v;
}

function setSelect(sel, value) {
  const el = $(sel);
  const opt = Array.from(el.options).find((o) => o.value === String(value));
  if (!opt || opt.disabled) return false;
  el.value = String(value);
  el.dispatchEvent(new Event('change', { bubbles: true }));
  return true;
}

/**
 * Applies a view to the page: data set (loaded when needed), attack form, target system, then the
 * sample (which predicts it). Returns what could not be applied, in words ([] when all was).
 */
export async function applyView(v) {
  const missed = [];
  if (v.dataset && v.dataset !== state.dataset) await selectDataset(v.dataset);
  if (v.dataset && state.dataset !== v.dataset) return [`the data set ${v.dataset}`];
  if (v.attack) setSelect('#attack-type', v.attack); // refills the fields with the defaults
  if (v.targeted != null) setSelect('#attack-goal', v.targeted ? 'targeted' : 'untargeted');
  if (v.targeted && v.target != null && !setSelect('#attack-target', v.target)) missed.push(`target class ${v.target}`);
  if (v.defense) {
    if (!setSelect('#attack-defense', v.defense)) missed.push(`the target system “${v.defense}” (not available here)`);
    else setSelect('#attack-mode', v.adaptive ? 'adaptive' : 'bare');
  }
  for (const [name, x] of Object.entries(v.params ?? {})) {
    if (name === 'random_start') $('#p-random-start').checked = !!x;
    else if (PARAM_FIELDS[name]) $(PARAM_FIELDS[name]).value = String(x);
  }
  if (Number.isInteger(v.sample)) {
    const samples = await state.samples[state.dataset]?.catch(() => null);
    if (!samples || v.sample >= samples.count) missed.push(`sample ${v.sample} (this data set has ${samples?.count ?? 0})`);
    else if (inputOrigin().sample !== v.sample) await pickSample(v.sample);
  }
  return missed;
}
