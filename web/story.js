// The guided story: He et al.'s argument as a list of steps, one click each. Data only (the
// runner is web/story-mode.js), so a case study adds its steps by appending to STORY.
//
// A step:
//   id, title, text: [paragraphs]  ("{dataset}" in a text is the data set's name)
//   dataset   the data set the step needs (null: the one on the page)
//   view      what to set before it runs: a view as in web/view-state.js (sample, attack, goal,
//             target, defense, adaptive, params)
//   run       'attack' (start the attack set up in view and show its result) or null (predict only)
//   webgpu    parameters that replace view.params on WebGPU, where an attack step is slow
//   explain   the panel explanations to open (web/explain.js ids)
//   figures   numbers from the committed results: {label, file ("{dataset}" allowed), where:
//             {column: value or RegExp}, column}; or {label, manifest: key} for the model's manifest.
//             String values may hold "{dataset}".

const CW_RUN = /^CW-L2/; // the C&W rows of results/squeeze-*.md (their parameters are in the cell)
const FEW = { steps: 10, binary_search_steps: 1 }; // WebGPU on a software adapter is slow
const SPECIALISTS = 'results/specialists-mnist.md'; // case study 2 (make specialists-results)
const DETECTORS = 'results/detectors-cifar10.md'; // case study 3 (make detector-results)

export const STORY = [
  {
    id: 'model',
    title: 'A model and its accuracy',
    dataset: 'mnist',
    text: [
      'Meet the classifier: a small convolutional network trained on {dataset}. On test images it never saw, it is right almost every time.',
      'The bars show how sure it is about the sample on the left. Pick other samples, or draw one, to see it at work.',
    ],
    view: { sample: 0, attack: 'cw', targeted: false, defense: 'none' },
    run: null,
    explain: ['model'],
    figures: [{ label: 'Accuracy on the 10,000 test images (the model’s manifest)', manifest: 'test_accuracy' }],
  },
  {
    id: 'naive',
    title: 'A naive attack, and what it changes',
    dataset: null,
    text: [
      'Carlini and Wagner’s attack looks for the smallest change to the pixels that makes the model answer something else. The change is tiny (the perturbation view shows where it is), yet the answer flips.',
      'Its size is measured as an L2 distance: the square root of the sum of the squared pixel changes, pixels in [0, 1].',
    ],
    view: { attack: 'cw', targeted: false, defense: 'none' },
    webgpu: FEW,
    run: 'attack',
    explain: ['attack'],
    figures: [
      { label: 'Success on 100 test images', file: 'results/squeeze-{dataset}.md', where: { system: '{dataset}.safetensors', attack: CW_RUN }, column: 'success' },
      { label: 'Mean L2 of those examples', file: 'results/squeeze-{dataset}.md', where: { system: '{dataset}.safetensors', attack: CW_RUN }, column: 'mean L2' },
    ],
  },
  {
    id: 'defense',
    title: 'A defense that catches it',
    dataset: null,
    text: [
      'Feature squeezing (Xu et al.) asks the model again about squeezed copies of the image: fewer grey levels, a median filter. The attack’s change is fragile, so the answers move apart and the detector flags the image.',
      'Here the attack is made on the bare model, as an attacker who ignores the defense would, and the defended system judges the result.',
    ],
    view: { attack: 'cw', targeted: false, defense: 'detector', adaptive: false },
    webgpu: FEW,
    run: 'attack',
    explain: ['squeezer', 'detector'],
    figures: [
      {
        label: 'Bare-model examples that get past the detector (100 test images)',
        file: 'results/squeeze-{dataset}.md',
        where: { system: '{dataset}.safetensors + detector (attack on the bare model)', attack: CW_RUN },
        column: 'success',
      },
    ],
  },
  {
    id: 'adaptive',
    title: 'The adaptive attack that beats it',
    dataset: null,
    text: [
      'He et al. attack the defense itself: the attack differentiates through the squeezers and adds the detector’s score to what it minimises, so it looks for a change that fools the model and keeps the squeezed answers together.',
      'It succeeds, with a somewhat larger change than against the bare model.',
    ],
    view: { attack: 'cw', targeted: false, defense: 'detector', adaptive: true },
    webgpu: FEW,
    run: 'attack',
    explain: ['attack', 'detector'],
    figures: [
      { label: 'Adaptive attack’s success (100 test images)', file: 'results/squeeze-{dataset}.md', where: { 'data set': '{dataset}', defense: 'detector' }, column: 'success' },
      { label: 'Its mean L2', file: 'results/squeeze-{dataset}.md', where: { 'data set': '{dataset}', defense: 'detector' }, column: 'mean L2' },
      { label: 'The bare model’s mean L2, same attack', file: 'results/squeeze-{dataset}.md', where: { 'data set': '{dataset}', defense: 'detector' }, column: 'bare model\'s mean L2' },
      { label: 'Change', file: 'results/squeeze-{dataset}.md', where: { 'data set': '{dataset}', defense: 'detector' }, column: 'change' },
    ],
  },
  {
    id: 'ensemble',
    title: 'An ensemble that fares no better',
    dataset: null,
    text: [
      'The detector is an ensemble: it combines bit-depth reduction and median smoothing. Is the combination stronger than its strongest part? The attack here targets bit-depth reduction alone, adaptively; compare its L2 with the previous step’s.',
      'He et al.’s answer, and this lab’s (the figures below): the ensemble makes the attacker’s change only modestly larger than its strongest part alone does, and the attack still succeeds. Weak defenses do not add up to a strong one.',
    ],
    view: { attack: 'cw', targeted: false, defense: 'bit-depth', adaptive: true },
    webgpu: FEW,
    run: 'attack',
    explain: ['squeezer', 'detector'],
    figures: [
      { label: 'Adaptive mean L2 against the detector', file: 'results/squeeze-{dataset}.md', where: { 'data set': '{dataset}', defense: 'detector' }, column: 'mean L2' },
      { label: 'Against its strongest part alone', file: 'results/squeeze-{dataset}.md', where: { 'data set': '{dataset}', defense: 'detector' }, column: 'strongest part\'s mean L2' },
      { label: 'Change', file: 'results/squeeze-{dataset}.md', where: { 'data set': '{dataset}', defense: 'detector' }, column: 'change (2)' },
      { label: 'He et al. (2017)', file: 'results/squeeze-{dataset}.md', where: { 'data set': '{dataset}', defense: 'detector' }, column: 'He et al.' },
    ],
  },
  {
    id: 'specialists',
    title: 'Case study 2: Specialists+1, and the targeted attack through its vote',
    dataset: 'mnist',
    text: [
      'Abbasi and Gagné’s ensemble lets a generalist and 20 specialists vote; a low confidence of the winner’s voters means “adversarial”. An attack made on the generalist alone is caught: the specialists disagree with it and the vote loses confidence.',
      'He et al. pick a target class and make every classifier that knows it vote for it, confidently. The vote is then unanimous, and more confident than on clean digits: nothing is flagged. (This step downloads the ensemble’s weights.)',
    ],
    view: {
      sample: 0,
      attack: 'cw',
      targeted: true,
      target: 3,
      defense: 'specialists',
      adaptive: true,
      params: { steps: 100, binary_search_steps: 3, initial_const: 3, learning_rate: 0.05, confidence: 10 },
    },
    webgpu: FEW,
    run: 'attack',
    explain: ['specialists', 'attack'],
    figures: [
      { label: 'Examples made on the generalist that the vote flags', file: SPECIALISTS, where: { system: 'specialists', attack: /made on the bare model/ }, column: 'detected by the system' },
      { label: 'He et al.’s attack: success (100 test images)', file: SPECIALISTS, where: { 'data set': 'mnist', defense: 'specialists' }, column: 'success' },
      { label: 'Its mean L2', file: SPECIALISTS, where: { 'data set': 'mnist', defense: 'specialists' }, column: 'mean L2' },
      { label: 'The generalist’s mean L2, same attack', file: SPECIALISTS, where: { 'data set': 'mnist', defense: 'specialists' }, column: 'bare model\'s mean L2' },
      { label: 'Change', file: SPECIALISTS, where: { 'data set': 'mnist', defense: 'specialists' }, column: 'change' },
      { label: 'Mean vote confidence of its examples', file: SPECIALISTS, where: { system: 'specialists', attack: /\(adaptive\)/ }, column: 'mean on adversarial examples' },
      { label: 'Mean vote confidence of the clean test images', file: SPECIALISTS, where: { system: 'specialists', attack: /\(adaptive\)/ }, column: 'mean on benign originals' },
      { label: 'He et al. (2017)', file: SPECIALISTS, where: { 'data set': 'mnist', defense: 'specialists' }, column: 'He et al.' },
    ],
  },
  {
    id: 'detectors',
    title: 'Case study 3: three unrelated detectors, and one attack through all of them',
    dataset: 'cifar10',
    text: [
      'On CIFAR-10, three detectors built on different ideas guard the classifier: Gong et al.’s second classifier on the image, Metzen et al.’s detector on its feature maps, Feinman et al.’s density of its last hidden layer. Together they flag an image when any one does.',
      'He et al.’s adaptive attack adds every detector’s score to what it minimises, through all three at once. It gets through them all; the ensemble only makes the change somewhat larger. (This step downloads the three detectors.)',
    ],
    view: { sample: 9, attack: 'cw', targeted: false, defense: 'gong+metzen+feinman', adaptive: true, params: { steps: 100, binary_search_steps: 3, initial_const: 1, learning_rate: 0.05 } },
    webgpu: FEW,
    run: 'attack',
    explain: ['detectors'],
    figures: [
      { label: 'C&W made on the bare classifier: flagged by the ensemble', file: DETECTORS, where: { system: 'gong+metzen+feinman', attack: /^CW-L2.*made on the bare model/ }, column: 'detected by the system' },
      { label: 'Adaptive attack’s success against the ensemble (100 test images)', file: DETECTORS, where: { 'data set': 'cifar10', defense: 'gong+metzen+feinman' }, column: 'success' },
      { label: 'Its mean L2', file: DETECTORS, where: { 'data set': 'cifar10', defense: 'gong+metzen+feinman' }, column: 'mean L2' },
      { label: 'The bare classifier’s mean L2, same attack', file: DETECTORS, where: { 'data set': 'cifar10', defense: 'gong+metzen+feinman' }, column: 'bare model\'s mean L2' },
      { label: 'Change', file: DETECTORS, where: { 'data set': 'cifar10', defense: 'gong+metzen+feinman' }, column: 'change' },
      { label: 'Against its strongest detector alone', file: DETECTORS, where: { 'data set': 'cifar10', defense: 'gong+metzen+feinman' }, column: 'strongest part\'s mean L2' },
      { label: 'He et al. (2017)', file: DETECTORS, where: { 'data set': 'cifar10', defense: 'gong+metzen+feinman' }, column: 'He et al.' },
    ],
  },
];
