// Case study 3 in the page with the real engine on the CPU fallback: Gong's, Metzen's and
// Feinman's detectors on CIFAR-10, offered with their size and downloaded only when chosen; the
// panel's scores against the thresholds of the committed manifests; C&W made on the bare
// classifier is flagged by at least one detector, He et al.'s adaptive C&W by none. Everything is
// read from the page, as a user would.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO, missingPrerequisites, predictSample, startAttack, attackState, waitAttackOutcome, startLab, waitReady } from './harness.mjs';

const KINDS = ['gong', 'metzen', 'feinman'];
let skip = await missingPrerequisites({ needLab: false });
const manifests = {};
if (!skip) {
  try {
    for (const k of KINDS) manifests[k] = JSON.parse(await readFile(join(REPO, 'models', `cifar10-${k}.json`), 'utf8'));
  } catch {
    skip = 'models/cifar10-{gong,metzen,feinman}.json missing (lab train detector ...)';
  }
}
if (skip) console.log(`# skipping the detector browser tests: ${skip}`);

// Sample 9 of the CIFAR-10 pack (a truck), which no detector flags as it is: C&W at the page's
// budget made on the bare model is flagged by Feinman's density (score ~39 against a threshold of
// ~23); He et al.'s adaptive C&W gets past all three (checked natively with `lab attack --dataset
// cifar10 --data samples --count 12 --defense gong+metzen+feinman [--adaptive]` at this budget).
const SAMPLE = 9;
const CW = { '#p-steps': 100, '#p-bss': 3, '#p-const': 1, '#p-lr': 0.05, '#p-conf': 0 };

async function readPanel(page) {
  return page.evaluate(() => {
    const card = document.querySelector('#detectors-card');
    return {
      state: card.dataset.state,
      subject: card.dataset.subject,
      seq: Number(card.dataset.seq),
      note: document.querySelector('#detectors-note').textContent,
      button: document.querySelector('#detectors-load').hidden ? null : document.querySelector('#detectors-load').textContent,
      bodyVisible: !document.querySelector('#detectors-body').hidden,
      verdict: document.querySelector('#detectors-verdict').textContent,
      flagged: document.querySelector('#detectors-verdict').dataset.flagged,
      rows: Array.from(document.querySelectorAll('#detectors-table tbody tr'), (tr) => ({
        name: tr.dataset.name,
        flagged: tr.dataset.flagged === 'true',
        score: Number(tr.dataset.score),
        threshold: Number(tr.dataset.threshold),
        cells: Array.from(tr.cells, (c) => c.textContent),
      })),
    };
  });
}

async function waitPanel(page, subject, after, timeout = 120_000) {
  await page.waitForFunction(
    ([s, a]) => {
      const card = document.querySelector('#detectors-card');
      return card.dataset.subject === s && Number(card.dataset.seq) > a;
    },
    [subject, after],
    { timeout },
  );
  return readPanel(page);
}

describe('case study 3’s detectors in the page (CPU fallback)', { skip: skip || false, timeout: 900_000 }, () => {
  let lab;
  let page;
  before(async () => {
    lab = await startLab({ webgpu: false, path: '?dataset=cifar10' });
    page = lab.page;
    await waitReady(page, 300_000);
  });
  after(async () => {
    if (lab && process.env.ADVLAB_TEST_VERBOSE) console.log(lab.consoleLines.join('\n'));
    await lab?.close();
  });

  it('says their size and downloads nothing until they are chosen', async () => {
    await page.waitForFunction(() => /MB\)/.test(document.querySelector('#detectors-load').textContent), null, { timeout: 30_000 });
    const p = await readPanel(page);
    assert.equal(p.state, 'idle');
    assert.equal(p.bodyVisible, false);
    const total = KINDS.reduce((a, k) => a + manifests[k].bytes, 0);
    assert.equal(p.button, `Load the three detectors (${(total / 1048576).toFixed(1)} MB)`);
    for (const k of KINDS) assert.ok(!lab.requests.some((u) => u.includes(manifests[k].weights)), `${k}'s file not fetched yet`);
    const option = await page.$eval('#attack-defense option[value="gong+metzen+feinman"]', (o) => ({ disabled: o.disabled, text: o.textContent }));
    assert.equal(option.disabled, false, 'offered as a target system');
    assert.match(option.text, /Gong/);
  });

  it('loads when chosen as the target and shows each score against its threshold', async () => {
    await predictSample(page, SAMPLE);
    await page.selectOption('#attack-defense', 'gong+metzen+feinman');
    const p = await waitPanel(page, 'input', 0, 240_000);
    for (const k of KINDS) assert.ok(lab.requests.some((u) => u.includes(manifests[k].weights)), `${k}'s file fetched`);
    assert.equal(p.state, 'loaded');
    assert.deepEqual(p.rows.map((r) => r.name), KINDS);
    for (const r of p.rows) {
      assert.ok(Math.abs(r.threshold - manifests[r.name].threshold) < 1e-4, `${r.name}: threshold ${r.threshold}`);
      assert.equal(r.flagged, r.score > r.threshold, `${r.name}: flagged exactly above the threshold`);
    }
    assert.equal(p.flagged, String(p.rows.some((r) => r.flagged)), 'the ensemble flags when any detector does');
    assert.equal(p.flagged, 'false', 'the clean sample is not flagged');
    assert.equal(p.verdict, 'Not flagged by any detector');
  });

  it('C&W made on the bare classifier: flagged by at least one detector', async (t) => {
    await predictSample(page, SAMPLE);
    await startAttack(page, { attack: 'cw', defense: 'gong+metzen+feinman', adaptive: false, fields: CW });
    const r = await waitAttackOutcome(page, 300_000);
    t.diagnostic(`non-adaptive: ${r.outcomeText}`);
    assert.equal((await attackState(page)).status, 'done');
    assert.equal(r.example, 'bare', 'the page shows the bare model’s example');
    assert.equal(r.outcome, 'detected', r.outcomeText);
    const p = await page.waitForFunction(() => document.querySelector('#detectors-card').dataset.subject === 'attack-result', null, { timeout: 60_000 }).then(() => readPanel(page));
    assert.equal(p.flagged, 'true');
    assert.ok(p.rows.some((x) => x.flagged), JSON.stringify(p.rows));
    assert.match(p.verdict, /^Flagged as adversarial \(by /);
  });

  it('He et al.’s adaptive C&W: misclassified and flagged by none', async (t) => {
    await predictSample(page, SAMPLE);
    await startAttack(page, { attack: 'cw', defense: 'gong+metzen+feinman', adaptive: true, fields: CW });
    const r = await waitAttackOutcome(page, 600_000);
    t.diagnostic(`adaptive: L2 ${r.l2}; ${r.outcomeText}`);
    assert.equal((await attackState(page)).status, 'done');
    assert.equal(r.success, true);
    assert.equal(r.outcome, 'fooled', r.outcomeText);
    assert.match(r.outcomeText, /^Not detected and misclassified/);
    const p = await page.waitForFunction(() => document.querySelector('#detectors-card').dataset.subject === 'attack-result', null, { timeout: 60_000 }).then(() => readPanel(page));
    assert.equal(p.flagged, 'false');
    assert.ok(p.rows.every((x) => !x.flagged), JSON.stringify(p.rows));
    assert.equal(p.verdict, 'Not flagged by any detector');
  });
});

// The guided story's case-study-3 step, opened from a link: it loads CIFAR-10 and the detectors,
// runs He et al.'s adaptive attack on sample 9 and puts the recorded figures beside it.
describe('the story’s detectors step (CPU fallback)', { skip: skip || false, timeout: 900_000 }, () => {
  it('?story=7 loads the detectors, gets past all three and shows the recorded figures', async (t) => {
    const results = await readFile(join(REPO, 'results', 'detectors-cifar10.md'), 'utf8');
    const lab = await startLab({ webgpu: false, path: '?story=7' });
    try {
      const page = lab.page;
      await page.waitForFunction(() => {
        const c = document.querySelector('#story-card');
        return c?.dataset.step === '7' && ['done', 'error'].includes(c.dataset.state);
      }, null, { timeout: 600_000 });
      await page.waitForFunction(() => Array.from(document.querySelectorAll('#story-figures td')).every((td) => td.textContent !== '…'));
      assert.match(await page.textContent('#story-step-title'), /three unrelated detectors/);
      assert.equal(await page.inputValue('#attack-defense'), 'gong+metzen+feinman');
      const shown = await page.evaluate(() => Object.fromEntries(Array.from(document.querySelectorAll('#story-figures td'), (td) => [td.dataset.column, td.textContent])));
      t.diagnostic(JSON.stringify(shown));
      // The same cells, read from the file here.
      const row = results.split('\n').find((l) => l.startsWith('| cifar10 | gong+metzen+feinman | CW-L2') && /\| \d+% \| [\d.]+ \| [\d.]+ \| [+-]\d+% \|/.test(l));
      assert.ok(row, 'the adaptive ensemble row of the results');
      const cells = row.slice(1, -1).split('|').map((c) => c.trim());
      assert.equal(shown['mean L2'], cells[6]);
      assert.equal(shown["bare model's mean L2"], cells[7]);
      assert.equal(shown.change, cells[8]);
      assert.equal(await page.getAttribute('#adv-defense', 'data-outcome'), 'fooled');
      assert.equal(await page.getAttribute('#detectors-card', 'data-state'), 'loaded');
      // The panel's report on the result comes after the attack's end (until then it shows the last live iterate).
      await page.waitForFunction(() => document.querySelector('#detectors-card').dataset.subject === 'attack-result', null, { timeout: 60_000 });
      assert.equal(await page.textContent('#detectors-verdict'), 'Not flagged by any detector');
    } finally {
      await lab.close();
    }
  });
});
