// Short plain-language explanations beside each panel: what the part does (two or three
// sentences), the formula behind a toggle, and the paper it comes from. Data first (one entry
// per explanation, keyed by the panel's card id), so a new panel adds its own entry; an entry
// whose card is not on the page is skipped.

import { $ } from './util.js';

export const EXPLANATIONS = [
  {
    id: 'model',
    card: 'predict-card',
    title: 'What does the model do?',
    text: [
      'The model is a small convolutional neural network (the architecture Carlini and Wagner used). It turns the pixels into one score per class; the softmax function turns the scores into the probabilities drawn as bars, and the largest one is the answer.',
      'It learned from labelled training images (60,000 for MNIST, 50,000 for CIFAR-10) and knows nothing outside its 10 classes.',
    ],
    formula: 'scores z = f(x); probability of class i: p<sub>i</sub> = e<sup>z<sub>i</sub></sup> / Σ<sub>j</sub> e<sup>z<sub>j</sub></sup>; answer: the class i with the largest p<sub>i</sub>.',
    papers: ['N. Carlini, D. Wagner (2017), <cite>Towards Evaluating the Robustness of Neural Networks</cite>, IEEE S&amp;P (the architectures)'],
  },
  {
    id: 'attack',
    card: 'attack-card',
    title: 'What does an attack do?',
    text: [
      'An attack looks for a small change to the image that makes the model give another answer. It follows the model’s gradient: how each pixel would have to move to lower the right answer’s score.',
      'FGSM takes one step of size ε; PGD takes many small steps and stays within ε of the original; Carlini–Wagner searches for the smallest change (measured by its L2 length) that still fools the model. An adaptive attack (He et al.) differentiates through the defense too.',
    ],
    formula:
      'FGSM: x′ = clip(x + ε · sign(∇<sub>x</sub> loss(x, y)))<br>' +
      'PGD: x<sub>t+1</sub> = project<sub>‖x′ − x‖<sub>∞</sub> ≤ ε</sub>(x<sub>t</sub> + α · sign(∇ loss(x<sub>t</sub>, y)))<br>' +
      'C&amp;W L2: minimise ‖δ‖<sub>2</sub><sup>2</sup> + c · max(z<sub>y</sub>(x+δ) − max<sub>i≠y</sub> z<sub>i</sub>(x+δ), −κ) over δ, with x + δ = ½(tanh w + 1) to stay in [0, 1]; c is found by binary search.',
    papers: [
      'I. Goodfellow, J. Shlens, C. Szegedy (2015), <cite>Explaining and Harnessing Adversarial Examples</cite>, ICLR (FGSM)',
      'A. Madry et al. (2018), <cite>Towards Deep Learning Models Resistant to Adversarial Attacks</cite>, ICLR (PGD)',
      'N. Carlini, D. Wagner (2017), <cite>Towards Evaluating the Robustness of Neural Networks</cite>, IEEE S&amp;P (C&amp;W)',
      'W. He, J. Wei, X. Chen, N. Carlini, D. Song (2017), <cite>Adversarial Example Defenses: Ensembles of Weak Defenses are not Strong</cite>, USENIX WOOT (adaptive attacks)',
    ],
  },
  {
    id: 'squeezer',
    card: 'squeeze-card',
    title: 'What does a squeezer do?',
    text: [
      'A squeezer throws away detail an attacker could hide a change in. Bit-depth reduction rounds every pixel to a few levels (1 bit: black or white); median smoothing replaces every pixel by the median of its neighbours.',
      'Put in front of the model, each one alone is a preprocessing defense: small changes are rounded or smoothed away before the model sees them.',
    ],
    formula: 'bit depth b: x′ = round(x · (2<sup>b</sup> − 1)) / (2<sup>b</sup> − 1)<br>median k×k: x′<sub>ij</sub> = median of the k×k pixels around (i, j)',
    papers: ['W. Xu, D. Evans, Y. Qi (2018), <cite>Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks</cite>, NDSS'],
  },
  {
    id: 'detector',
    card: 'squeeze-card',
    title: 'What does the detector do?',
    text: [
      'The detector asks the model about the image and about each squeezed copy of it. A clean image gets about the same answer every time; an adversarial one often does not, because squeezing undoes part of the attack.',
      'When the largest distance between the answers is above a threshold (set so that 5% of clean images are flagged), the image is flagged as adversarial. It combines several weak defenses into one: He et al. show that an attack aware of all of them still gets through.',
    ],
    formula: 'score(x) = max<sub>k</sub> ‖p(x) − p(s<sub>k</sub>(x))‖<sub>1</sub> over the squeezers s<sub>k</sub>; flagged when score(x) &gt; T',
    papers: [
      'W. Xu, D. Evans, Y. Qi (2018), <cite>Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks</cite>, NDSS',
      'W. He et al. (2017), <cite>Adversarial Example Defenses: Ensembles of Weak Defenses are not Strong</cite>, USENIX WOOT (the adaptive attack on it)',
    ],
  },
  {
    id: 'specialists',
    card: 'specialists-card',
    title: 'What does Specialists+1 do?',
    text: [
      'A generalist and 20 specialists vote. Each specialist learned a group of classes that adversarial examples often confuse with each other (or the rest of the classes), so an attack that fools one classifier should not fool them all.',
      'When every classifier that knows a class votes for it, only they count; otherwise all 21 vote. If the winner’s voters are not confident enough on average, the image is flagged as adversarial.',
    ],
    formula:
      'U<sub>k</sub>: the classes classifier k knows. If every k with c ∈ U<sub>k</sub> predicts c, the winner is c and those k are its voters; else the class with the most of all 21 votes.<br>' +
      'flagged when the mean of p<sub>k</sub>(winner | x) over the winner’s voters &lt; τ (τ set so that 5% of clean images are flagged)',
    papers: [
      'M. Abbasi, C. Gagné (2017), <cite>Robustness to Adversarial Examples through an Ensemble of Specialists</cite>, ICLR workshop',
      'W. He et al. (2017), <cite>Adversarial Example Defenses: Ensembles of Weak Defenses are not Strong</cite>, USENIX WOOT (the targeted attack on it)',
    ],
  },
  {
    id: 'detectors',
    card: 'detectors-card',
    title: 'What do the three detectors do?',
    text: [
      'Each looks for a different trace of an attack. Gong et al. train a second classifier to tell adversarial images from clean ones. Metzen et al. train a small network on the classifier’s own feature maps. Feinman et al. check how typical the classifier’s last hidden layer is for the class it predicts, compared with clean training images of that class.',
      'Each flags 5% of clean images; together they flag an image when any one does. He et al. attack all three at once by adding each one’s score to what the attack minimises.',
    ],
    formula:
      'Gong, Metzen: score = z<sub>adversarial</sub> − z<sub>clean</sub> of the detector’s two outputs.<br>' +
      'Feinman: score = −log( (1/k) Σ<sub>i</sub> exp(−‖h(x) − h(x<sub>i</sub>)‖² / 2σ²) ) over k clean images x<sub>i</sub> of the predicted class, h the last hidden layer, σ = 0.26 (constants dropped).<br>' +
      'flagged when any score &gt; its threshold; the adaptive attack adds Σ max(score − threshold + margin, 0) to its loss',
    papers: [
      'Z. Gong, W. Wang, W.-S. Ku (2017), <cite>Adversarial and Clean Data Are Not Twins</cite>, arXiv:1704.04960',
      'J. H. Metzen, T. Genewein, V. Fischer, B. Bischoff (2017), <cite>On Detecting Adversarial Perturbations</cite>, ICLR',
      'R. Feinman, R. R. Curtin, S. Shintre, A. B. Gardner (2017), <cite>Detecting Adversarial Samples from Artifacts</cite>, arXiv:1703.00410',
      'W. He et al. (2017), <cite>Adversarial Example Defenses: Ensembles of Weak Defenses are not Strong</cite>, USENIX WOOT (the attack through all three)',
    ],
  },
];

function build(e) {
  const box = document.createElement('details');
  box.className = 'explain';
  box.id = `explain-${e.id}`;
  box.dataset.explain = e.id;
  const summary = document.createElement('summary');
  summary.textContent = e.title;
  box.append(summary);
  for (const t of e.text) {
    const p = document.createElement('p');
    p.textContent = t;
    box.append(p);
  }
  const formula = document.createElement('details');
  formula.className = 'formula';
  // The entries are this module's own constant markup (sub/superscripts), never page input.
  formula.innerHTML = `<summary>The formula</summary><p>${e.formula}</p>`;
  const from = document.createElement('p');
  from.className = 'paper small muted';
  from.innerHTML = `From: ${e.papers.join('; ')}.`;
  box.append(formula, from);
  return box;
}

/** Puts each explanation under its panel's title (in the order listed). */
export function setupExplanations() {
  const last = new Map(); // card -> the last explanation put in it
  for (const e of EXPLANATIONS) {
    const card = document.getElementById(e.card);
    if (!card || document.getElementById(`explain-${e.id}`)) continue;
    const box = build(e);
    const after = last.get(card) ?? $('h2', card);
    after.after(box);
    last.set(card, box);
  }
}

/** Opens the named explanations (and closes the others); used by the story. */
export function showExplanations(ids = []) {
  for (const e of EXPLANATIONS) {
    const box = document.getElementById(`explain-${e.id}`);
    if (box) box.open = ids.includes(e.id);
  }
}
