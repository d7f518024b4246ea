// The page as a new user meets it (issue 15's "found wrong" list), with the stand-in engine
// (fixtures/mock-advlab.js) so every case runs in seconds: one engine call per non-adaptive
// attack against a defense, cancel keeping the best result, inputs locked while an attack runs,
// uploads checked and flattened, honest failures, remarks, the backend badge and its choice,
// keyboard use of the samples, accessible canvases, the chart and perturbation scales, the
// library's defaults and composed systems, and the Content-Security-Policy.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, access, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CHROMIUM,
  REPO,
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
  makeTempDir,
  readSqueeze,
  waitAttackOutcome,
  useLab,
  cancelAttack,
  encodePng,
} from './harness.mjs';

const noChromium = await access(CHROMIUM).then(
  () => false,
  () => `no Chromium at ${CHROMIUM}`,
);

/** A disc of radius r around the centre of a w x w image: 1 inside, 0 outside. */
const disc = (w, r) => (x, y) => (Math.hypot(x - w / 2, y - w / 2) < r && Math.hypot(x - w / 2, y - w / 2) > r - 5 ? 1 : 0);

/** Grey values of the model's input canvas (0..255), row-major. */
const modelInput = (page) =>
  page.evaluate(() => {
    const c = document.querySelector('#model-input');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return { w: c.width, grey: Array.from({ length: d.length / 4 }, (_, i) => d[4 * i]) };
  });

describe('the page as a new user meets it (stand-in engine)', { skip: noChromium, timeout: 240_000 }, () => {
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

  it('a non-adaptive attack against a defense runs once: the engine’s bare-model example is shown', async (t) => {
    await predictSample(page, 2);
    await startAttack(page, { attack: 'cw', defense: 'detector', adaptive: false, fields: { '#p-steps': 10, '#p-bss': 2 } });
    const r = await waitAttackOutcome(page, 60_000);
    const st = await attackState(page);
    // 10 steps x 2 rounds = 20 progress reports from one engine call; a second attack would add 20.
    assert.equal(st.reports, 20, `progress reports: ${st.reports}`);
    assert.equal(r.example, 'bare', 'the bare model’s example, from result.bare');
    assert.equal(r.outcome, 'detected', r.outcomeText);
    assert.match(r.outcomeText, /score \d\.\d{4} > threshold 0\.0500/, 'the detector’s own score and threshold');
    assert.doesNotMatch(await page.textContent('#attack-progress'), /bare model:/);
    t.diagnostic(`attack took ${await page.getAttribute('#attack-result', 'data-seconds')} s`);
  });

  it('Cancel keeps and shows the best result so far, and the squeezing panel shows no stale step', async () => {
    await predictSample(page, 4);
    await startAttack(page, { attack: 'pgd', fields: { '#p-steps': 2000 } });
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 30);
    await page.waitForFunction(() => document.querySelector('#squeeze-card').dataset.subject === 'attack-progress', null, { timeout: 10_000 });
    await cancelAttack(page);
    const r = await readAttackResult(page);
    assert.ok(r.visible, 'the result box is shown');
    assert.equal(r.cancelled, true);
    assert.equal(r.success, true, 'the stand-in has left the class after 30 grey steps');
    assert.ok(r.l2 > 0);
    assert.match(await page.textContent('#adv-verdict'), /cancelled: best result so far/);
    assert.match((await attackState(page)).statusText, /cancelled: best result so far shown/);
    // A live report in flight must not come back after the result (wait past its 1 s pace).
    await page.waitForTimeout(1500);
    const sq = await readSqueeze(page);
    assert.equal(sq.subject, 'attack-result');
    assert.doesNotMatch(sq.subjectText, /step \d+ \/ \d+/);
  });

  it('locks the sample picker, drawing, upload and data-set switch while an attack runs', async () => {
    await predictSample(page, 3);
    await startAttack(page, { attack: 'pgd', fields: { '#p-steps': 2000 } });
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 2);
    for (const sel of ['#samples [data-sample="5"]', '#upload', '#draw-clear', '#dataset-cifar10', '#dataset-mnist']) {
      assert.equal(await page.isDisabled(sel), true, `${sel} is disabled`);
    }
    assert.ok(await page.isVisible('#input-lock-note'));
    const seq = await predictionSeq(page);
    await page.click('#samples [data-sample="5"]', { force: true });
    await drawStroke(page);
    await page.waitForTimeout(300);
    assert.equal(await predictionSeq(page), seq, 'no new prediction while the attack runs');
    assert.equal((await readPrediction(page)).source, 'sample:3');
    await cancelAttack(page);
    assert.equal(await page.isDisabled('#samples [data-sample="5"]'), false);
    assert.equal(await page.isDisabled('#dataset-cifar10'), false);
    assert.equal((await predictSample(page, 5)).source, 'sample:5');
  });

  it('flattens a transparent PNG of a light digit on black, and a dark one on white, with a note', async () => {
    const light = join(tmp, 'light-digit.png');
    await writeFile(light, encodePng(56, 56, { colorType: 6, pixel: (x, y) => (disc(56, 18)(x, y) ? [255, 255, 255, 255] : [255, 255, 255, 0]) }));
    await uploadAndPredict(page, light);
    assert.match(await page.textContent('#input-remark'), /transparent: its light strokes were put on black/);
    let seen = await modelInput(page);
    assert.equal(seen.grey[0], 0, 'the background is black (the engine alone puts transparency on white)');
    assert.ok(Math.max(...seen.grey) > 200, 'the digit is light');

    const dark = join(tmp, 'dark-digit.png');
    await writeFile(dark, encodePng(56, 56, { colorType: 6, pixel: (x, y) => (disc(56, 18)(x, y) ? [0, 0, 0, 255] : [0, 0, 0, 0]) }));
    await uploadAndPredict(page, dark);
    assert.match(await page.textContent('#input-remark'), /dark strokes were put on white/);
    seen = await modelInput(page);
    assert.equal(seen.grey[0], 0, 'after the engine’s inversion: light on black');
    assert.ok(Math.max(...seen.grey) > 200);
  });

  it('says a near-black 16-bit PNG looks blank instead of classifying it', async () => {
    const file = join(tmp, 'near-black-16bit.png');
    await writeFile(file, encodePng(40, 40, { colorType: 0, bitDepth: 16, pixel: (x, y) => [disc(40, 12)(x, y) ? 1500 : 0] }));
    const seq = await predictionSeq(page);
    await page.setInputFiles('#upload', file);
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    const text = await page.textContent('#error-text');
    assert.match(text, /looks blank/);
    assert.match(text, /16-bit/);
    assert.equal(await predictionSeq(page), seq, 'no prediction');
    await page.click('#error-dismiss');
  });

  it('refuses a 20000x20000 PNG from its header, before decoding it', async () => {
    const file = join(tmp, 'huge.png');
    // The header of a 20000x20000 image; the data that follows is not even an image.
    await writeFile(file, encodePng(20000, 20000, { idat: Buffer.alloc(64) }));
    const t0 = Date.now();
    await page.setInputFiles('#upload', file);
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    const text = await page.textContent('#error-text');
    assert.match(text, /20000×20000 pixels \(400 megapixels, read from its PNG header\)/);
    assert.match(text, /up to 40 megapixels/);
    assert.ok(Date.now() - t0 < 5000, `answered in ${Date.now() - t0} ms`);
    await page.click('#error-dismiss');
  });

  it('decodes an image over 4096 pixels wide scaled down, and predicts it', async () => {
    const file = join(tmp, 'wide.png');
    await writeFile(file, encodePng(6000, 300, { pixel: (x, y) => (Math.abs(y - 150) < 60 && x % 1000 < 500 ? [255, 255, 255] : [0, 0, 0]) }));
    const p = await uploadAndPredict(page, file);
    assert.equal(p.source, 'upload:wide.png');
    assert.equal(await page.locator('#error').isVisible(), false);
  });

  it('tells an upload that the model knows only its 10 classes', async () => {
    const file = join(tmp, 'photo.png');
    await writeFile(file, encodePng(64, 48, { pixel: (x, y) => [(x * 4) & 255, (y * 5) & 255, 128] }));
    await uploadAndPredict(page, file);
    assert.match(await page.textContent('#input-remark'), /knows only 10 classes \(0, 1, 2, 3, 4, 5, 6, 7, 8, 9\)/);
  });

  it('says plainly that an attack failed: no L2 of 0 and the last attempt labelled as such', async () => {
    await predictSample(page, 2);
    await startAttack(page, { attack: 'fgsm', fields: { '#p-eps': 0.0001 } });
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done');
    const r = await readAttackResult(page);
    assert.ok(r.visible);
    assert.equal(r.success, false);
    assert.equal(r.example, 'attempt');
    assert.equal(await page.textContent('#adv-l2'), '–');
    assert.equal(await page.textContent('#adv-linf'), '–');
    assert.match(await page.textContent('#adv-verdict'), /failed: no adversarial example found.*last attempt \(step 1, L2/);
    assert.match(await page.textContent('#adv-caption'), /Last attempt/);
    assert.equal(await page.isDisabled('#attack-download'), true, 'nothing adversarial to download');
  });

  it('remarks on a sample the model already gets wrong (and not on one it gets right)', async () => {
    const found = { wrong: null, right: null };
    for (let i = 0; i < 12 && (found.wrong == null || found.right == null); i++) {
      const p = await predictSample(page, i);
      const label = i % 10; // the stand-in pack's labels
      if (p.predicted !== label && found.wrong == null) found.wrong = i;
      if (p.predicted === label && found.right == null) found.right = i;
    }
    assert.notEqual(found.wrong, null, 'the stand-in model gets some sample wrong');
    await predictSample(page, found.wrong);
    assert.ok(await page.isVisible('#input-remark'));
    assert.match(await page.textContent('#input-remark'), /already gets this sample wrong/);
    await startAttack(page, { attack: 'cw', fields: { '#p-steps': 10, '#p-bss': 1 } });
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done');
    if ((await readAttackResult(page)).success) assert.match(await page.textContent('#adv-verdict'), /already got this sample wrong before the attack/);
    if (found.right != null) {
      await predictSample(page, found.right);
      assert.equal(await page.isVisible('#input-remark'), false);
    }
  });

  it('reaches every sample with one tab stop and the arrow keys', async () => {
    assert.equal(await page.locator('#samples [tabindex="0"]').count(), 1, 'one tab stop in the grid');
    await page.focus('#samples [tabindex="0"]');
    const start = Number(await page.evaluate(() => document.activeElement.dataset.sample));
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.sample), String(start + 1));
    await page.keyboard.press('End');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.sample), '11');
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowDown');
    const below = Number(await page.evaluate(() => document.activeElement.dataset.sample));
    assert.ok(below > 1, `ArrowDown moves a row (to ${below})`);
    const seq = await predictionSeq(page);
    await page.keyboard.press('Enter');
    await page.waitForFunction((n) => Number(document.querySelector('#prediction').dataset.seq) > n, seq);
    assert.equal((await readPrediction(page)).source, `sample:${below}`);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'draw-clear', 'Tab leaves the grid at once');
  });

  it('reaches Start attack in a few Tab presses from the top and runs the attack from the keyboard', async (t) => {
    await page.evaluate(() => document.activeElement?.blur());
    await page.focus('body');
    let presses = 0;
    while (presses < 60 && (await page.evaluate(() => document.activeElement?.id)) !== 'attack-start') {
      await page.keyboard.press('Tab');
      presses++;
    }
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'attack-start');
    assert.ok(presses <= 30, `${presses} Tab presses to Start attack (each sample was one before)`);
    t.diagnostic(`${presses} Tab presses from the top to Start attack`);
    await page.selectOption('#attack-type', 'fgsm');
    await page.focus('#attack-start');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done');
    assert.ok((await readAttackResult(page)).visible);
  });

  it('gives every canvas role="img" and a label', async () => {
    const bad = await page.evaluate(() =>
      Array.from(document.querySelectorAll('canvas'))
        .filter((c) => !c.closest('[aria-hidden="true"]') && c.getAttribute('aria-hidden') !== 'true')
        .filter((c) => c.getAttribute('role') !== 'img' || !(c.getAttribute('aria-label') ?? '').trim())
        .map((c) => c.id || c.className),
    );
    assert.deepEqual(bad, []);
  });

  it('charts against the step, with axis titles and the binary-search rounds marked', async () => {
    await predictSample(page, 2);
    await startAttack(page, { attack: 'cw', fields: { '#p-steps': 10, '#p-bss': 3 } });
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done');
    assert.equal(await page.getAttribute('#attack-chart', 'data-rounds'), '10 20');
    assert.equal(await page.getAttribute('#attack-chart', 'data-points'), '30');
  });

  it('draws a tiny perturbation faint, on a stated scale', async () => {
    const out = await page.evaluate(async () => {
      const { drawPerturbation, describeScale } = await import('./web/chart.js');
      const orig = new Float32Array(28 * 28).fill(0.5);
      const adv = orig.map((v, i) => v + (i % 2 ? 5e-7 : -5e-7));
      const cv = document.createElement('canvas');
      const s = drawPerturbation(cv, orig, adv, [1, 28, 28]);
      const d = cv.getContext('2d').getImageData(0, 0, 28, 28).data;
      const big = drawPerturbation(cv, orig, orig.map((v, i) => v + (i % 2 ? 0.2 : -0.2)), [1, 28, 28]);
      const e = cv.getContext('2d').getImageData(0, 0, 28, 28).data;
      return { text: describeScale(s), minChannel: Math.min(...d.filter((_, i) => i % 4 !== 3)), bigText: describeScale(big), red: [e[4], e[5], e[6]] };
    });
    assert.ok(out.minChannel >= 250, `a ±5e-7 change is nearly white (darkest channel ${out.minChannel})`);
    assert.match(out.text, /under one 8-bit level/);
    assert.equal(out.bigText, '(full colour = ±0.200)');
    assert.deepEqual(out.red, [255, 0, 0], 'a +0.2 change is full red');
  });

  it('explains the C&W settings and fills the fields with the library’s defaults', async () => {
    await page.selectOption('#attack-type', 'cw');
    for (const id of ['#help-bss', '#help-const', '#help-conf']) assert.ok(await page.isVisible(id), id);
    assert.equal(await page.getAttribute('#p-bss', 'aria-describedby'), 'help-bss');
    assert.equal(await page.inputValue('#p-steps'), '100');
    assert.equal(await page.inputValue('#p-bss'), '3');
    assert.equal(await page.getAttribute('#attack-defaults', 'data-source'), 'library');
    assert.match(await page.textContent('#attack-defaults'), /from the library.*binary search steps 3/);
    await page.selectOption('#attack-type', 'pgd');
    assert.equal(await page.inputValue('#p-steps'), '40');
    assert.equal(await page.inputValue('#p-eps'), '0.2');
    assert.equal(await page.isVisible('#help-bss'), false);
    await page.selectOption('#attack-type', 'cw');
  });

  it('lists the library’s composed systems and attacks one adaptively, with the library’s verdict', async () => {
    const values = await page.$$eval('#attack-defense option', (os) => os.map((o) => o.value));
    assert.ok(values.includes('bit-depth+detector'), values.join(', '));
    await predictSample(page, 2);
    await startAttack(page, { attack: 'cw', defense: 'bit-depth+detector', adaptive: true, fields: { '#p-steps': 10, '#p-bss': 2 } });
    const r = await waitAttackOutcome(page, 60_000);
    assert.equal(r.defense, 'bit-depth+detector');
    assert.match(await page.textContent('#attack-status'), /./);
    const verdict = await page.evaluate(async () => {
      const c = document.querySelector('#adv-image');
      const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
      const px = Float32Array.from({ length: 28 * 28 }, (_, i) => d[4 * i] / 255);
      return window.advlab.judge('mnist', px, 'bit-depth+detector');
    });
    assert.equal(verdict.detectors.length, 1);
    assert.equal(typeof verdict.flagged, 'boolean');
    if (r.success) {
      assert.equal(r.outcome, 'fooled');
      assert.match(r.outcomeText, /^Not detected and misclassified/);
    }
  });

  it('runs under the Content-Security-Policy with no violation', async () => {
    const meta = await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content');
    assert.match(meta, /script-src 'self' 'wasm-unsafe-eval'/);
    assert.doesNotMatch(meta, /'unsafe-eval'|'unsafe-inline'/);
    const violations = lab.consoleLines.filter((l) => /Content Security Policy|Refused to/i.test(l));
    assert.deepEqual(violations, []);
  });
});

describe('layout (stand-in engine)', { skip: noChromium, timeout: 60_000 }, () => {
  it('shows the attack’s Start button without scrolling at 1440x900, with no horizontal scroll', async () => {
    const lab = await startLab({ webgpu: false, mock: true, viewport: { width: 1440, height: 900 } });
    try {
      await waitReady(lab.page, 30_000);
      const r = await lab.page.evaluate(() => ({
        bottom: document.querySelector('#attack-start').getBoundingClientRect().bottom,
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
      }));
      assert.ok(r.bottom <= 900, `Start attack ends at ${r.bottom}px`);
      assert.ok(r.scroll <= r.client, `page is ${r.scroll}px wide on ${r.client}px`);
      if (process.env.ADVLAB_SCREENSHOTS) {
        await lab.page.screenshot({ path: join(process.env.ADVLAB_SCREENSHOTS, 'desktop-1440x900.png') });
      }
    } finally {
      await lab.close();
    }
  });
});

describe('any static host, any sub-path (stand-in engine)', { skip: noChromium, timeout: 60_000 }, () => {
  it('works served under /some/where/advlab/, asking only for files under it', async () => {
    const host = await makeTempDir('advlab-host-');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(host, 'some', 'where'), { recursive: true });
    await symlink(REPO, join(host, 'some', 'where', 'advlab'));
    const lab = await startLab({ webgpu: false, mock: true, root: host, path: 'some/where/advlab/?dataset=mnist' });
    try {
      await waitReady(lab.page, 30_000);
      assert.equal((await predictSample(lab.page, 2)).source, 'sample:2');
      const outside = lab.requests.filter((u) => !u.startsWith(`${lab.url}some/where/advlab/`) && !u.startsWith('data:') && !u.startsWith('blob:'));
      assert.deepEqual(outside, []);
    } finally {
      await lab.close();
    }
  });
});

describe('the backend badge and its choice (stand-in engine)', { skip: noChromium, timeout: 120_000 }, () => {
  it('passes over a software WebGPU adapter for the CPU fallback, and says why', async () => {
    const lab = await startLab({ webgpu: true, mock: true });
    try {
      await waitReady(lab.page, 30_000);
      assert.equal(await lab.page.getAttribute('#backend', 'data-backend'), 'cpu');
      assert.equal((await lab.page.textContent('#backend')).trim(), 'CPU fallback');
      const title = await lab.page.getAttribute('#backend', 'title');
      assert.match(title, /software one \(.*swiftshader.*\)/i);
      assert.doesNotMatch(title, /[{}]|WgpuDevice|AdapterUnavailable/);
      assert.equal(await lab.page.textContent('#backend-switch'), 'Use WebGPU');
      // The switch reloads with ?backend=webgpu: WebGPU on the software adapter, said so.
      await lab.page.click('#backend-switch');
      await lab.page.waitForURL(/[?&]backend=webgpu/);
      await waitReady(lab.page, 30_000);
      assert.equal(await lab.page.getAttribute('#backend', 'data-backend'), 'webgpu');
      assert.equal((await lab.page.textContent('#backend')).trim(), 'WebGPU (software adapter)');
      assert.match(await lab.page.getAttribute('#backend', 'title'), /asked for \(\?backend=webgpu\)/);
      assert.equal(await lab.page.textContent('#backend-switch'), 'Use the CPU fallback');
    } finally {
      await lab.close();
    }
  });

  it('?backend=measure times both backends and keeps the faster', async () => {
    const lab = await startLab({ webgpu: true, mock: true, path: '?backend=measure' });
    try {
      await waitReady(lab.page, 30_000);
      assert.equal(await lab.page.getAttribute('#backend', 'data-backend'), 'cpu');
      assert.match(await lab.page.getAttribute('#backend', 'title'), /Measured at start: the CPU fallback is faster here \([\d.]+ ms per prediction on WebGPU, [\d.]+ ms on the CPU fallback\)/);
      const info = await lab.page.evaluate(() => window.advlab.backendInfo);
      assert.ok(info.timings.webgpuMs > info.timings.cpuMs, JSON.stringify(info.timings));
      // The model was loaded into the CPU backend: predictions and squeeze reports still work.
      assert.equal((await predictSample(lab.page, 1)).source, 'sample:1');
      assert.equal((await readSqueeze(lab.page)).available, 'true');
    } finally {
      await lab.close();
    }
  });

  it('without WebGPU: the CPU fallback with a readable reason', async () => {
    const lab = await startLab({ webgpu: false, mock: true });
    try {
      await waitReady(lab.page, 30_000);
      const title = await lab.page.getAttribute('#backend', 'title');
      assert.match(title, /^This browser (has no WebGPU|offers no WebGPU adapter)/);
      assert.match(await lab.page.textContent('#backend-reason'), /CPU inside WebAssembly/);
    } finally {
      await lab.close();
    }
  });
});
