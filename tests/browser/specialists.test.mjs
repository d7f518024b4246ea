// Specialists+1 in the page with the real engine on the CPU fallback (He et al. 2017, case study
// 2): the ensemble is offered with its size and downloaded only when chosen; the vote table of a
// clean digit; then He et al.'s targeted attack through the vote, after which the target wins and
// the vote's detector does not flag it. Everything is read from the page, as a user would.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO, missingPrerequisites, predictSample, startAttack, attackState, waitAttackOutcome, startLab, waitReady } from './harness.mjs';

let skip = await missingPrerequisites({ needLab: false });
let manifest = null;
if (!skip) {
  try {
    manifest = JSON.parse(await readFile(join(REPO, 'models', 'mnist-specialists.json'), 'utf8'));
  } catch {
    skip = 'models/mnist-specialists.json missing (lab train specialists)';
  }
}
if (skip) console.log(`# skipping the Specialists+1 browser tests: ${skip}`);

// He et al.'s attack at the budget of `make specialists-results` (confidence 10: every classifier
// that must vote for the target is confidently wrong), sample 0 (a 7) aimed at 3.
const ADAPTIVE = { '#p-steps': 100, '#p-bss': 3, '#p-const': 3, '#p-lr': 0.05, '#p-conf': 10 };

async function readVote(page) {
  return page.evaluate(() => {
    const card = document.querySelector('#specialists-card');
    return {
      state: card.dataset.state,
      subject: card.dataset.subject,
      seq: Number(card.dataset.seq),
      note: document.querySelector('#specialists-note').textContent,
      button: document.querySelector('#specialists-load').hidden ? null : document.querySelector('#specialists-load').textContent,
      bodyVisible: !document.querySelector('#specialists-body').hidden,
      verdict: document.querySelector('#specialists-verdict').textContent,
      flagged: document.querySelector('#specialists-verdict').dataset.flagged,
      winner: Number(document.querySelector('#specialists-winner').dataset.class),
      unanimous: document.querySelector('#specialists-unanimous').textContent,
      confidence: Number(document.querySelector('#specialists-confidence').textContent),
      minimum: Number(document.querySelector('#specialists-min').textContent),
      rows: Array.from(document.querySelectorAll('#specialists-table tbody tr'), (tr) => ({
        cells: Array.from(tr.cells, (c) => c.textContent),
        vote: Number(tr.dataset.vote),
        counted: tr.dataset.counted === 'true',
      })),
    };
  });
}

async function waitVote(page, subject, after, timeout = 120_000) {
  await page.waitForFunction(
    ([s, a]) => {
      const card = document.querySelector('#specialists-card');
      return card.dataset.subject === s && Number(card.dataset.seq) > a;
    },
    [subject, after],
    { timeout },
  );
  return readVote(page);
}

describe('Specialists+1 in the page (CPU fallback)', { skip: skip || false, timeout: 900_000 }, () => {
  let lab;
  let page;
  before(async () => {
    lab = await startLab({ webgpu: false });
    page = lab.page;
    await waitReady(page, 300_000);
  });
  after(async () => {
    if (lab && process.env.ADVLAB_TEST_VERBOSE) console.log(lab.consoleLines.join('\n'));
    await lab?.close();
  });

  it('says its size and downloads nothing until it is chosen', async () => {
    await page.waitForFunction(() => /MB\)/.test(document.querySelector('#specialists-load').textContent), null, { timeout: 30_000 });
    const v = await readVote(page);
    assert.equal(v.state, 'idle');
    assert.equal(v.bodyVisible, false);
    assert.match(v.note, /downloaded only when you choose/);
    assert.equal(v.button, `Load Specialists+1 (${(manifest.bytes / 1048576).toFixed(1)} MB)`);
    assert.ok(!lab.requests.some((u) => u.includes(manifest.weights)), 'the weights were not fetched before the choice');
    const option = await page.$eval('#attack-defense option[value="specialists"]', (o) => ({ disabled: o.disabled, text: o.textContent }));
    assert.equal(option.disabled, false, 'offered as a target system');
    assert.match(option.text, /Specialists\+1/);
  });

  it('loads when chosen and shows the vote table of a clean digit', async () => {
    const clean = await predictSample(page, 0);
    await page.click('#specialists-load');
    const v = await waitVote(page, 'input', 0, 240_000);
    assert.ok(lab.requests.some((u) => u.includes(manifest.weights)), 'the weights are fetched now');
    assert.equal(v.state, 'loaded');
    assert.match(v.note, /Loaded: 21 classifiers/);
    assert.equal(v.rows.length, manifest.specialists.length + 1);
    assert.deepEqual(v.rows[0].cells.slice(0, 2), ['generalist', 'all 10']);
    for (const [k, s] of manifest.specialists.entries()) assert.equal(v.rows[k + 1].cells[1], s.classes.join(', '), `specialist ${k + 1}'s classes`);
    assert.equal(v.winner, clean.predicted);
    assert.match(v.unanimous, /^\(unanimous/);
    // Unanimous: exactly the classifiers that know the winner count, and all of them vote for it.
    for (const [k, row] of v.rows.entries()) {
      const knows = k === 0 || manifest.specialists[k - 1].classes.includes(v.winner);
      assert.equal(row.counted, knows, `row ${k}`);
      if (knows) assert.equal(row.vote, v.winner, `row ${k} votes for the winner`);
    }
    assert.equal(v.flagged, 'false');
    assert.equal(v.verdict, 'Not flagged');
    assert.ok(Math.abs(v.minimum - manifest.detector.min_confidence) < 1e-5, `minimum ${v.minimum}`);
    assert.ok(v.confidence >= v.minimum, `confidence ${v.confidence} >= ${v.minimum}`);
  });

  it('He et al.’s targeted attack: the target wins and the vote is not flagged', async (t) => {
    await predictSample(page, 0);
    const t0 = Date.now();
    await startAttack(page, { attack: 'cw', targeted: true, target: 3, defense: 'specialists', adaptive: true, fields: ADAPTIVE });
    const r = await waitAttackOutcome(page, 600_000);
    t.diagnostic(`adaptive targeted attack on Specialists+1: ${((Date.now() - t0) / 1000).toFixed(1)} s, L2 ${r.l2}; ${r.outcomeText}`);
    const st = await attackState(page);
    assert.equal(st.status, 'done', `${st.statusText} ${st.error}`);
    assert.equal(r.defense, 'specialists');
    assert.equal(r.success, true, 'the defended system is fooled');
    assert.equal(r.predicted, 3, 'the target wins the vote');
    assert.equal(r.outcome, 'fooled', r.outcomeText);
    assert.match(r.outcomeText, /^Not detected and misclassified/);
    assert.match(r.outcomeText, /mean confidence \d\.\d{5} ≥ minimum \d\.\d{5}/);
    const v = await page.waitForFunction(() => document.querySelector('#specialists-card').dataset.subject === 'attack-result', null, { timeout: 60_000 }).then(() => readVote(page));
    assert.equal(v.winner, 3);
    assert.equal(v.verdict, 'Not flagged');
    assert.ok(v.confidence >= v.minimum, `confidence ${v.confidence} >= minimum ${v.minimum}`);
  });
});

// The guided story's case-study-2 step, opened from a link on the CPU fallback: it downloads the
// ensemble, runs He et al.'s targeted attack and puts the recorded figures (results/) beside it.
const RESULTS = 'results/specialists-mnist.md';
let results = null;
if (!skip) results = await readFile(join(REPO, RESULTS), 'utf8').catch(() => null);

/** The cells of the first row of a table of `text` that has `column` and matches `where` (header -> RegExp). */
function cell(text, where, column) {
  for (const block of text.split(/\n\s*\n/)) {
    const lines = block.split('\n').filter((l) => l.startsWith('|'));
    if (lines.length < 3) continue;
    const split = (l) => l.slice(1, -1).split('|').map((c) => c.trim());
    const head = split(lines[0]);
    if (!head.includes(column) || !Object.keys(where).every((h) => head.includes(h))) continue;
    const row = lines.slice(2).map(split).find((c) => Object.entries(where).every(([h, re]) => re.test(c[head.indexOf(h)])));
    if (row) return row[head.indexOf(column)];
  }
  return null;
}

describe('the story’s Specialists+1 step (CPU fallback)', { skip: skip || (!results && `${RESULTS} missing (make specialists-results)`) || false, timeout: 900_000 }, () => {
  it('?story=6 loads the ensemble, beats the vote and shows the recorded figures', async (t) => {
    const lab = await startLab({ webgpu: false, path: '?story=6' });
    try {
      const page = lab.page;
      await page.waitForFunction(() => {
        const c = document.querySelector('#story-card');
        return c?.dataset.step === '6' && ['done', 'error'].includes(c.dataset.state);
      }, null, { timeout: 600_000 });
      await page.waitForFunction(() => Array.from(document.querySelectorAll('#story-figures td')).every((td) => td.textContent !== '…'));
      assert.match(await page.textContent('#story-step-title'), /Specialists\+1/);
      assert.equal(await page.inputValue('#attack-defense'), 'specialists');
      assert.equal(await page.inputValue('#attack-target'), '3');
      const shown = await page.evaluate(() => Object.fromEntries(Array.from(document.querySelectorAll('#story-figures td'), (td) => [td.dataset.column, td.textContent])));
      t.diagnostic(JSON.stringify(shown));
      const adaptive = { 'data set': /^mnist$/, defense: /^specialists$/ };
      assert.equal(shown['mean L2'], cell(results, adaptive, 'mean L2'));
      assert.equal(shown.change, cell(results, adaptive, 'change'));
      assert.equal(shown['detected by the system'], cell(results, { system: /^specialists$/, attack: /made on the bare model/ }, 'detected by the system'));
      assert.equal(shown['mean on adversarial examples'], cell(results, { system: /^specialists$/, attack: /\(adaptive\)/ }, 'mean on adversarial examples'));
      const r = await readAttackResultOutcome(page);
      assert.equal(r.outcome, 'fooled', r.text);
      assert.equal(r.predicted, 3, 'the target wins the vote');
      assert.equal(await page.getAttribute('#specialists-card', 'data-state'), 'loaded');
    } finally {
      await lab.close();
    }
  });
});

async function readAttackResultOutcome(page) {
  return page.evaluate(() => ({
    outcome: document.querySelector('#adv-defense').dataset.outcome,
    text: document.querySelector('#adv-defense').textContent,
    predicted: Number(document.querySelector('#attack-result').dataset.predicted),
  }));
}
