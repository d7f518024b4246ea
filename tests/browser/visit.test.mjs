// A full visit on the real engine (CPU fallback): load, predict, attack, the story through the
// adaptive attack. Every request is recorded: only the page's own static files, each answered with
// the Content-Security-Policy header, and no securitypolicyviolation event. Then what can still
// go wrong: a weights file that fails its sha256, and a shared CIFAR-10 link.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { missingPrerequisites, startLab, waitReady, predictSample, startAttack, waitAttackOutcome, useLab, REPO } from './harness.mjs';
import { screenshot } from './screens.mjs';

const skip = await missingPrerequisites();
if (skip) console.log(`# skipping the full-visit tests: ${skip}`);

/** Records every request and response of the context (the page and its worker), and CSP violations. */
function recorder(log) {
  return async (context) => {
    context.on('request', (r) => log.requests.push({ url: r.url(), method: r.method() }));
    context.on('response', async (r) => log.responses.push({ url: r.url(), status: r.status(), csp: (await r.allHeaders())['content-security-policy'] ?? null }));
    await context.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(`${e.violatedDirective}: ${e.blockedURI}`));
    });
  };
}

async function waitStep(page, n, timeout) {
  await page.waitForFunction(
    (k) => document.querySelector('#story-card').dataset.step === String(k) && document.querySelector('#story-card').dataset.state === 'done',
    n,
    { timeout },
  );
  await page.waitForFunction(() => Array.from(document.querySelectorAll('#story-figures td')).every((t) => t.textContent !== '…'));
}

describe('a full visit (real engine, CPU fallback)', { skip: skip || false, timeout: 1_200_000 }, () => {
  const log = { requests: [], responses: [] };
  let lab;
  let page;
  useLab({ webgpu: false, setup: recorder(log) }, 300_000, (l) => {
    lab = l;
    page = l.page;
  });

  it('predicts and attacks a sample', async () => {
    const p = await predictSample(page, 3);
    assert.equal(p.source, 'sample:3');
    await startAttack(page, { attack: 'cw', fields: { '#p-steps': 30, '#p-bss': 1 } });
    const r = await waitAttackOutcome(page);
    assert.ok(r.visible);
  });

  it('steps through the story to the adaptive attack, on the real detector', async (t) => {
    await page.click('#story-button');
    await waitStep(page, 1, 60_000);
    assert.match((await page.textContent('#story-figures')) ?? '', /99\.40%/, 'the manifest’s accuracy');
    const shown = {};
    for (const n of [2, 3, 4]) {
      await page.click('#story-next');
      await waitStep(page, n, 900_000);
      shown[n] = { outcome: await page.getAttribute('#story-live', 'data-outcome'), l2: await page.getAttribute('#story-live', 'data-l2') };
      t.diagnostic(`step ${n}: ${await page.textContent('#story-live')}`);
    }
    assert.equal(shown[2].outcome, 'fooled', 'C&W fools the bare model');
    assert.equal(shown[3].outcome, 'detected', 'the squeezing detector flags the bare model’s example');
    assert.ok(['fooled', 'not-fooled'].includes(shown[4].outcome), 'the adaptive attack gets a verdict');
    const md = await readFile(join(REPO, 'results', 'squeeze-mnist.md'), 'utf8');
    const cell = await page.evaluate(() => Array.from(document.querySelectorAll('#story-figures td')).find((td) => td.dataset.column === 'mean L2').textContent);
    assert.ok(md.includes(`| ${cell} |`), `the adaptive mean L2 ${cell} is in results/squeeze-mnist.md`);
    await screenshot(page, 'story-step4-real-engine');
  });

  it('asked only for its own static files, each with the CSP header, and saw no CSP violation', async () => {
    const origin = new URL(lab.url).origin;
    assert.ok(log.requests.length > 10, `${log.requests.length} requests`);
    const foreign = log.requests.filter(({ url }) => !url.startsWith('data:') && !url.startsWith(`blob:${origin}/`) && new URL(url).origin !== origin);
    assert.deepEqual(foreign, [], 'no request to another origin');
    const ownFiles = /^\/(|index\.html|web\/[\w.-]+\.(js|css)|pkg\/advlab(_bg)?\.(js|wasm)|models\/[\w.-]+\.(json|bin|safetensors)|results\/[\w.-]+\.md)$/;
    const odd = log.requests.filter(({ url }) => url.startsWith(origin)).filter(({ url, method }) => method !== 'GET' || !ownFiles.test(new URL(url).pathname));
    assert.deepEqual(odd, [], 'only GETs of static files');
    const served = log.responses.filter((r) => r.url.startsWith(origin));
    assert.ok(served.some((r) => /\/web\/worker\.js$/.test(r.url)), 'the worker script was fetched');
    assert.deepEqual(served.filter((r) => !r.csp).map((r) => r.url), [], 'every answer carries the policy');
    const doc = served.find((r) => new URL(r.url).pathname === '/');
    assert.match(doc.csp, /script-src 'self' 'wasm-unsafe-eval'/);
    assert.deepEqual(await page.evaluate(() => window.__cspViolations), []);
    assert.deepEqual(lab.consoleLines.filter((l) => /Content Security Policy|Refused to/i.test(l)), []);
  });
});

describe('what can still go wrong (real engine, CPU fallback)', { skip: skip || false, timeout: 600_000 }, () => {
  it('refuses weights that fail their sha256, with a clear message', async () => {
    const weights = await readFile(join(REPO, 'models', 'mnist.safetensors'));
    const bad = Buffer.from(weights);
    bad[bad.length - 1] ^= 0xff; // one bit pattern changed in the last weight, same size
    const lab = await startLab({
      webgpu: false,
      setup: (ctx) => ctx.route(/\/models\/mnist\.safetensors$/, (r) => r.fulfill({ status: 200, contentType: 'application/octet-stream', body: bad })),
    });
    try {
      await lab.page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 300_000 });
      assert.equal(await lab.page.evaluate(() => document.body.dataset.state), 'error');
      assert.match(await lab.page.textContent('#error-text'), /mnist weights could not be loaded.*sha256/i);
      assert.equal(await lab.page.locator('#samples [data-sample]').count(), 0, 'nothing computed with them');
    } finally {
      await lab.close();
    }
  });

  it('a shared CIFAR-10 link restores the data set, the sample and the attack settings', async () => {
    const lab = await startLab({ webgpu: false, path: '?dataset=cifar10&sample=3&attack=fgsm&epsilon=0.01' });
    try {
      await waitReady(lab.page, 300_000);
      await lab.page.waitForFunction(() => document.querySelector('#prediction').dataset.source === 'sample:3', null, { timeout: 120_000 });
      const v = await lab.page.evaluate(() => ({
        dataset: document.querySelector('#dataset-cifar10').getAttribute('aria-checked'),
        size: [document.querySelector('#model-input').width, document.querySelector('#model-input').height],
        attack: document.querySelector('#attack-type').value,
        eps: document.querySelector('#p-eps').value,
        remark: document.querySelector('#input-remark').textContent,
      }));
      assert.deepEqual({ ...v, remark: undefined }, { dataset: 'true', size: [32, 32], attack: 'fgsm', eps: '0.01', remark: undefined });
      assert.match(v.remark, /already gets this sample wrong/, 'sample 3 (a cat read as a dog) keeps its remark');
    } finally {
      await lab.close();
    }
  });
});
