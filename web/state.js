// The page's state and the names it shows. One object, shared by the modules that read and
// change it; nothing here touches the DOM.

export const DATASET_NAMES = { mnist: 'MNIST', cifar10: 'CIFAR-10' };
export const DEFAULT_INPUT = { mnist: [1, 28, 28], cifar10: [3, 32, 32] };
export const ATTACK_NAMES = { cw: 'Carlini–Wagner L2', fgsm: 'FGSM', pgd: 'PGD' };
/** Names of the parts of a defended system (library spelling: parts joined by '+'). */
export const PART_NAMES = {
  none: 'the bare model',
  'bit-depth': 'bit-depth reduction',
  median: 'median smoothing',
  detector: 'the squeezing detector',
  specialists: 'Specialists+1',
  gong: 'Gong et al.’s detector',
  metzen: 'Metzen et al.’s detector',
  feinman: 'Feinman et al.’s density detector',
};

/** "bit-depth+detector" -> "bit-depth reduction + the squeezing detector". */
export function defenseName(defense) {
  if (!defense || defense === 'none') return PART_NAMES.none;
  return defense
    .split('+')
    .map((p) => PART_NAMES[p] ?? p)
    .join(' + ');
}

export function defenseParts(defense) {
  return !defense || defense === 'none' ? [] : defense.split('+');
}

export const params = new URLSearchParams(location.search);

export const state = {
  engine: null,
  backend: null, // {backend, note, reason, adapter, ...} as the worker chose it
  dataset: null,
  models: {}, // dataset -> Promise<info>
  modelInfo: {}, // dataset -> info once loaded (classes, input, manifest, defenses, defaults, systems)
  samples: {}, // dataset -> Promise<{count, shape, labels, data} | null>
  input: null, // {dataset, pixels, source, label, predicted}
  predictReq: 0,
  predictionSeq: 0,
  attack: null, // the running attack (see attack.js)
  lastAttack: null, // {result, dataset, params, input}
  defenses: {}, // dataset -> {available, threshold, detector, bit_depth, median} | {available: false, reason}
  squeeze: { seq: 0, liveBusy: false, liveAt: 0 }, // squeeze reports: newest request wins
  fatal: false,
};

export function className(ds, k) {
  const classes = state.modelInfo[ds]?.classes;
  return classes?.[k] ?? String(k);
}

export function inputShape(ds) {
  return state.modelInfo[ds]?.input ?? DEFAULT_INPUT[ds];
}

export function defensesOf(ds) {
  return state.defenses[ds] ?? null;
}
