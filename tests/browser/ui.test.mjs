// Page logic with a stand-in engine (fixtures/mock-advlab.js) and a made-up model: runs without the
// wasm build, so the protocol, error handling, cancel and download paths are tested on every machine
// that has Chromium. The numbers of the stand-in mean nothing; tests against the real engine are in
// the other files.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CHROMIUM,
  MOCK_SAMPLES,
  startLab,
  waitReady,
  readPrediction,
  predictSample,
  uploadAndPredict,
  drawStroke,
  predictionSeq,
  startAttack,
  attackState,
  readAttackResult,
  foreignRequests,
  makeTempDir,
  MOCK_THRESHOLD,
  readSqueeze,
  waitSqueeze,
  squeezeSeq,
  waitAttackOutcome,
  useLab,
  cancelAttack,
} from './harness.mjs';

const noChromium = await access(CHROMIUM).then(
  () => false,
  () => `no Chromium at ${CHROMIUM}`,
);

describe('page logic (stand-in engine)', { skip: noChromium, timeout: 180_000 }, () => {
  let lab;
  let page;
  let tmp;

  before(async () => {
    tmp = await makeTempDir();
  });
  useLab({ webgpu: false, mock: true, acceptDownloads: true }, 60_000, (l) => {
    lab = l;
    page = l.page;
  });

  it('starts on MNIST with a backend badge, sample thumbnails and a first prediction', async () => {
    assert.equal(await page.textContent('#backend'), 'CPU fallback');
    assert.match((await page.getAttribute('#backend', 'title')) ?? '', /CPU/);
    assert.equal(await page.locator('#samples [data-sample]').count(), MOCK_SAMPLES);
    const p = await readPrediction(page);
    assert.equal(p.probs.length, 10);
    assert.ok(Math.abs(p.probs.reduce((a, b) => a + b, 0) - 1) < 1e-4);
    const shown = await page.textContent(`[data-class="${p.predicted}"] .prob`);
    assert.match(shown, /^\d\.\d{4}$/);
    assert.ok(Math.abs(Number(shown) - p.probs[p.predicted]) < 1e-4);
    assert.equal(p.predictedName, String(p.predicted));
  });

  it('predicts a clicked sample', async () => {
    const p = await predictSample(page, 3);
    assert.equal(p.source, 'sample:3');
    assert.ok(await page.locator('#samples [data-sample="3"].selected').count());
  });

  it('shows an error for a file that is not an image, and keeps working', async () => {
    const bad = join(tmp, 'not-really.png');
    await writeFile(bad, 'this is plain text, not a PNG\n');
    await page.setInputFiles('#upload', bad);
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.textContent('#error-text'), /not-really\.png/);
    assert.equal(await page.getAttribute('#error', 'role'), 'alert');
    const p = await predictSample(page, 1);
    assert.equal(p.source, 'sample:1');
    assert.equal(await page.locator('#error').isVisible(), false, 'a new input clears the message');
  });

  it('refuses files over 10 MB before decoding them', async () => {
    const big = join(tmp, 'big.png');
    await writeFile(big, Buffer.alloc(10 * 1024 * 1024 + 1));
    await page.setInputFiles('#upload', big);
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.textContent('#error-text'), /10\.0 MB/);
    await page.click('#error-dismiss');
  });

  it('predicts after a mouse stroke on the drawing canvas', async () => {
    const seq = await predictionSeq(page);
    await drawStroke(page);
    await page.waitForFunction((n) => Number(document.querySelector('#prediction').dataset.seq) > n, seq);
    const p = await readPrediction(page);
    assert.equal(p.source, 'drawing');
    await page.click('#draw-clear');
  });

  it('predicts after a touch stroke', async () => {
    const seq = await predictionSeq(page);
    const box = await page.locator('#draw').boundingBox();
    const pt = (fx, fy) => [{ x: box.x + fx * box.width, y: box.y + fy * box.height, id: 1 }];
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: pt(0.3, 0.3) });
    for (const f of [0.35, 0.45, 0.55, 0.65]) {
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: pt(f, f) });
    }
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await cdp.detach();
    await page.waitForFunction((n) => Number(document.querySelector('#prediction').dataset.seq) > n, seq, {
      timeout: 10_000,
    });
    assert.equal((await readPrediction(page)).source, 'drawing');
    await page.click('#draw-clear');
  });

  it('runs an attack with live progress, shows the result and downloads a PNG that predicts as promised', async () => {
    await predictSample(page, 2);
    await startAttack(page, { attack: 'cw', fields: { '#p-steps': 10, '#p-bss': 2 } });
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 3);
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done', null, {
      timeout: 60_000,
    });
    const st = await attackState(page);
    assert.equal(st.reports, 20);
    const r = await readAttackResult(page);
    assert.ok(r.visible);
    assert.ok(r.l2 > 0 && r.linf > 0);
    assert.match(r.verdict, /8-bit/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#attack-download')]);
    assert.match(download.suggestedFilename(), /\.png$/);
    const file = join(tmp, download.suggestedFilename());
    await download.saveAs(file);
    const png = await readFile(file);
    assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], 'a PNG signature');
    assert.equal(png.readUInt32BE(16), 28, 'native width');
    assert.equal(png.readUInt32BE(20), 28, 'native height');
    const again = await uploadAndPredict(page, file);
    assert.equal(again.predicted, r.roundedPredicted);
  });

  it('cancels a running attack and reports how fast', async (t) => {
    await predictSample(page, 4);
    await startAttack(page, { attack: 'pgd', fields: { '#p-steps': 2000 } });
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 3);
    const ms = await cancelAttack(page);
    t.diagnostic(`cancel answered in ${ms} ms`);
    assert.equal(await page.isDisabled('#attack-start'), false);
    // the engine is free again: a prediction goes through
    const p = await predictSample(page, 5, 10_000);
    assert.equal(p.source, 'sample:5');
  });

  it('runs FGSM and a targeted PGD', async () => {
    await startAttack(page, { attack: 'fgsm' });
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done');
    await startAttack(page, { attack: 'pgd', targeted: true, target: 7, fields: { '#p-steps': 5 } });
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done');
    assert.ok((await readAttackResult(page)).visible);
  });

  it('says clearly when the CIFAR-10 model is missing, and MNIST still works', async () => {
    await page.click('#dataset-cifar10');
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.textContent('#error-text'), /CIFAR-10 model is not available/);
    await page.click('#dataset-mnist');
    await waitReady(page, 30_000);
    assert.equal(await page.locator('#error').isVisible(), false);
    const p = await predictSample(page, 0);
    assert.equal(p.source, 'sample:0');
  });

  it('makes no request to another origin', () => {
    assert.deepEqual(foreignRequests(lab.requests, lab.url), []);
  });
});

// The stand-in's detector (fixtures/mock-advlab.js): 1-bit depth only, threshold MOCK_THRESHOLD; a
// clean sample scores 0, a grey (non-adaptive) attack is flagged, the adaptive one flips pixels and
// is not.
describe('feature squeezing and defended attacks (stand-in engine)', { skip: noChromium, timeout: 180_000 }, () => {
  let lab;
  let page;

  useLab({ webgpu: false, mock: true }, 60_000, (l) => {
    lab = l;
    page = l.page;
  });

  it('loads the defenses with the model and says what they are', async () => {
    const sq = await readSqueeze(page);
    assert.equal(sq.available, 'true');
    assert.match(sq.note, /1-bit depth/);
    assert.match(sq.note, /3x3 median/);
    for (const v of ['none', 'bit-depth', 'median', 'detector']) {
      assert.equal(await page.isDisabled(`#attack-defense option[value="${v}"]`), false, v);
    }
    assert.equal(await page.isDisabled('#attack-mode'), true, 'no attacker mode for the bare model');
    await page.selectOption('#attack-defense', 'detector');
    assert.equal(await page.isDisabled('#attack-mode'), false);
    assert.match(await page.textContent('#defense-note'), /bare model’s gradients/);
    await page.selectOption('#attack-mode', 'adaptive');
    assert.match(await page.textContent('#defense-note'), /through the defense/);
    await page.selectOption('#attack-defense', 'none');
  });

  it('shows the squeezed views, the score and a verdict for a clean sample', async () => {
    const seq = await squeezeSeq(page);
    const p = await predictSample(page, 3);
    const sq = await waitSqueeze(page, 'input', seq, 10_000);
    assert.ok(sq.bodyVisible);
    assert.match(sq.subjectText, /Sample #3/);
    assert.equal(sq.flagged, 'false');
    assert.equal(sq.verdict, 'Not flagged');
    assert.equal(sq.threshold, MOCK_THRESHOLD);
    assert.ok(sq.score <= sq.threshold);
    assert.deepEqual(
      sq.views.map((v) => [v.name, v.inDetector, v.preprocessing]),
      [
        ['1-bit depth', true, 'bit-depth'],
        ['3x3 median', false, 'median'],
      ],
    );
    for (const v of sq.views) {
      assert.ok(Number.isInteger(v.predicted) && v.predicted >= 0 && v.predicted < 10);
      assert.ok(Number.isFinite(v.l1) && v.l1 >= 0);
      assert.equal(v.canvas.width, 28);
      assert.ok(v.canvas.shownWidth >= 56, `magnified: ${v.canvas.shownWidth}px`);
    }
    assert.equal(Number(sq.bitDepth), sq.views[0].predicted);
    assert.equal(Number(sq.median), sq.views[1].predicted);
    assert.ok(await page.locator('#squeeze-views .squeeze-orig').count(), 'the image itself is shown too');
    assert.equal(await page.getAttribute('.squeeze-orig', 'data-predicted'), String(p.predicted));
  });

  it('reports on a drawing too', async () => {
    const seq = await squeezeSeq(page);
    await drawStroke(page);
    const sq = await waitSqueeze(page, 'input', seq, 10_000);
    assert.match(sq.subjectText, /drawing/);
    assert.ok(['true', 'false'].includes(sq.flagged));
    await page.click('#draw-clear');
  });

  it('attack the bare model, target the detector: shown as detected, with the bare model’s example flagged', async () => {
    await predictSample(page, 2);
    await startAttack(page, { attack: 'cw', defense: 'detector', adaptive: false, fields: { '#p-steps': 10, '#p-bss': 2 } });
    const r = await waitAttackOutcome(page, 60_000);
    assert.equal(r.defense, 'detector');
    assert.equal(r.adaptive, false);
    assert.equal(r.success, false, 'the defended system is not fooled');
    assert.equal(r.example, 'bare', 'the page shows the bare model’s example');
    assert.equal(r.outcome, 'detected');
    assert.match(r.outcomeText, /^Detected by the squeezing detector/);
    const sq = await readSqueeze(page);
    assert.equal(sq.subject, 'attack-result');
    assert.equal(sq.flagged, 'true');
    assert.equal(sq.verdict, 'Flagged as adversarial');
    assert.ok(sq.score > sq.threshold);
    assert.match((await attackState(page)).statusText, /holds/);
  });

  it('attack the defense (adaptive): not detected and misclassified', async () => {
    const before = await predictSample(page, 2);
    await startAttack(page, { attack: 'cw', defense: 'detector', adaptive: true, fields: { '#p-steps': 10, '#p-bss': 2 } });
    const r = await waitAttackOutcome(page, 60_000);
    assert.equal(r.adaptive, true);
    assert.equal(r.success, true);
    assert.equal(r.example, 'result');
    assert.equal(r.outcome, 'fooled');
    assert.match(r.outcomeText, /^Not detected and misclassified/);
    assert.notEqual(r.predicted, before.predicted);
    const sq = await waitSqueeze(page, 'attack-result', 0, 10_000);
    assert.equal(sq.flagged, 'false');
    assert.match((await attackState(page)).statusText, /fooled/);
  });

  it('bit-depth reduction undoes the non-adaptive attack; the adaptive one gets through', async () => {
    const before = await predictSample(page, 2);
    await startAttack(page, { attack: 'cw', defense: 'bit-depth', adaptive: false, fields: { '#p-steps': 10, '#p-bss': 2 } });
    let r = await waitAttackOutcome(page, 60_000);
    assert.equal(r.outcome, 'not-fooled');
    assert.match(r.outcomeText, /after bit-depth reduction \(1-bit depth\) the model says “\d” again/);
    const sq = await readSqueeze(page);
    assert.equal(Number(sq.bitDepth), before.predicted);
    await startAttack(page, { attack: 'cw', defense: 'bit-depth', adaptive: true, fields: { '#p-steps': 10, '#p-bss': 2 } });
    r = await waitAttackOutcome(page, 60_000);
    assert.equal(r.outcome, 'fooled');
    assert.match(r.outcomeText, /^Misclassified after bit-depth reduction/);
  });

  it('a bare-model attack tells what the detector would say', async () => {
    await predictSample(page, 2);
    await startAttack(page, { attack: 'cw', fields: { '#p-steps': 10, '#p-bss': 2 } });
    const r = await waitAttackOutcome(page, 60_000);
    assert.equal(r.defense, 'none');
    assert.equal(r.outcome, 'fooled');
    await page.waitForFunction(() => /squeezing detector would/.test(document.querySelector('#adv-defense').textContent));
    assert.equal((await readSqueeze(page)).subject, 'attack-result');
  });

  it('follows a running attack live, at most about once a second, and stops with it', async () => {
    await predictSample(page, 4);
    const seq0 = await squeezeSeq(page);
    await startAttack(page, { attack: 'pgd', defense: 'detector', adaptive: false, fields: { '#p-steps': 2000 } });
    const t0 = Date.now();
    const first = await waitSqueeze(page, 'attack-progress', seq0, 30_000);
    assert.match(first.subjectText, /step \d+ \/ 2000/);
    // The panel judges the attack's current image (the verdict itself depends on the stand-in's
    // caricature of a detector; the real engine's verdicts are checked in defenses.test.mjs).
    assert.ok(['true', 'false'].includes(first.flagged), `verdict ${first.flagged}`);
    await page.waitForFunction((n) => Number(document.querySelector('#squeeze-card').dataset.seq) > n, first.seq, { timeout: 5_000 });
    await page.waitForTimeout(2500);
    const seq1 = await squeezeSeq(page);
    const secs = (Date.now() - t0) / 1000;
    assert.ok(seq1 - seq0 <= secs + 2, `${seq1 - seq0} reports in ${secs.toFixed(1)} s`);
    assert.equal((await attackState(page)).status, 'running', 'the attack goes on meanwhile');
    // The attack is not held up by the live reports: its own progress keeps coming.
    const reports = (await attackState(page)).reports;
    await page.waitForFunction((n) => Number(document.querySelector('#attack-progress').dataset.count) > n + 20, reports, { timeout: 30_000 });
    await page.click('#attack-cancel');
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'cancelled');
    const p = await predictSample(page, 5, 10_000);
    assert.equal(p.source, 'sample:5');
    await waitSqueeze(page, 'input', seq1, 10_000);
  });

  it('passes the target system to a batch attack through the debug handle', async () => {
    const r = await page.evaluate(async () => {
      const n = 28 * 28;
      const px = new Float32Array(3 * n);
      for (let i = 0; i < px.length; i++) px[i] = (i % 28) / 27;
      let reports = 0;
      const out = await window.advlab.attackMany('mnist', px, [1, 2, 3], null, { attack: 'pgd', steps: 5, epsilon: 0.3, defense: 'none' }, () => reports++);
      return { ...out, reports };
    });
    assert.equal(r.success.length, 3);
    assert.equal(r.l2.length, 3);
    assert.equal(r.predicted.length, 3);
    assert.equal(r.reports, 3);
    assert.ok(r.success_rate >= 0 && r.success_rate <= 1);
  });
});

describe('without calibrated defenses (stand-in engine)', { skip: noChromium, timeout: 120_000 }, () => {
  it('says the defenses are not calibrated, and attacks the bare model as before', async () => {
    const lab = await startLab({
      webgpu: false,
      mock: true,
      setup: (ctx) => ctx.route(/\/models\/mnist-squeeze\.json/, (r) => r.fulfill({ status: 404, body: 'not found' })),
    });
    try {
      const page = lab.page;
      await waitReady(page, 30_000);
      const sq = await readSqueeze(page);
      assert.equal(sq.available, 'false');
      assert.match(sq.note, /not calibrated yet/);
      assert.equal(sq.bodyVisible, false);
      assert.equal(await page.locator('#error').isVisible(), false, 'no error for a missing file');
      for (const v of ['bit-depth', 'median', 'detector']) {
        assert.equal(await page.isDisabled(`#attack-defense option[value="${v}"]`), true, v);
      }
      await predictSample(page, 1);
      await startAttack(page, { attack: 'fgsm' });
      const r = await waitAttackOutcome(page, 30_000);
      assert.ok(r.visible);
      assert.equal(r.defense, 'none');
      assert.equal((await readSqueeze(page)).bodyVisible, false);
    } finally {
      await lab.close();
    }
  });
});

describe('error states (stand-in engine)', { skip: noChromium, timeout: 120_000 }, () => {
  const openWith = async (setup) => {
    const lab = await startLab({ webgpu: false, mock: true, setup });
    await lab.page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, {
      timeout: 30_000,
    });
    return lab;
  };

  it('shows a message when the wasm module cannot be loaded', async () => {
    const lab = await openWith((ctx) => ctx.route(/\/pkg\/advlab\.js/, (r) => r.fulfill({ status: 404, body: 'gone' })));
    try {
      assert.equal(await lab.page.evaluate(() => document.body.dataset.state), 'error');
      assert.ok(await lab.page.locator('#error').isVisible());
      assert.match(await lab.page.textContent('#error-text'), /WebAssembly module/);
      assert.ok(await lab.page.locator('#error-reload').isVisible());
    } finally {
      await lab.close();
    }
  });

  it('shows a message when the model download fails', async () => {
    const lab = await openWith((ctx) => ctx.route(/\/models\/mnist\.safetensors/, (r) => r.abort('failed')));
    try {
      assert.equal(await lab.page.evaluate(() => document.body.dataset.state), 'error');
      assert.match(await lab.page.textContent('#error-text'), /could not download the mnist weights/i);
    } finally {
      await lab.close();
    }
  });

  it('shows the engine’s message for corrupted weights', async () => {
    const lab = await openWith((ctx) =>
      ctx.route(/\/models\/mnist\.safetensors/, (r) =>
        r.fulfill({ status: 200, contentType: 'application/octet-stream', body: Buffer.alloc(1000, 7) }),
      ),
    );
    try {
      assert.equal(await lab.page.evaluate(() => document.body.dataset.state), 'error');
      assert.match(await lab.page.textContent('#error-text'), /weights could not be loaded.*sha256 mismatch/i);
    } finally {
      await lab.close();
    }
  });

  it('?backend=cpu asks the engine for the CPU even where WebGPU exists', async () => {
    const lab = await startLab({ webgpu: true, mock: true, path: '?backend=cpu' });
    try {
      await waitReady(lab.page, 30_000);
      assert.equal(await lab.page.getAttribute('#backend', 'data-backend'), 'cpu');
    } finally {
      await lab.close();
    }
  });

  it('fits a phone-width screen without horizontal scrolling', async () => {
    const lab = await startLab({ webgpu: false, mock: true, viewport: { width: 375, height: 740 } });
    try {
      await waitReady(lab.page, 30_000);
      const { scroll, client } = await lab.page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
      }));
      assert.ok(scroll <= client, `page is ${scroll}px wide on a ${client}px screen`);
      if (process.env.ADVLAB_SCREENSHOTS) {
        await lab.page.screenshot({ path: join(process.env.ADVLAB_SCREENSHOTS, 'phone.png'), fullPage: true });
      }
    } finally {
      await lab.close();
    }
  });
});
