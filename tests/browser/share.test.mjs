// Sharing, embedding and the guided story (stand-in engine, so they run without the wasm build):
// a shared link restores the view; a drawing never goes into a link; ?embed=<panel> shows one
// panel that fits 700x500, also through the page's own <iframe> snippet; the story steps through
// the paper's argument with the figures of results/squeeze-mnist.md beside the live ones.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, access, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CHROMIUM, REPO, startLab, waitReady, predictSample, drawStroke, predictionSeq, useLab, startAttack, makeTempDir } from './harness.mjs';
import { screenshot } from './screens.mjs';

const noChromium = await access(CHROMIUM).then(
  () => false,
  () => `no Chromium at ${CHROMIUM}`,
);

/**
 * A cell of a committed results table, read here on its own (not with the page's parser): the
 * row whose first cells are `lead` (e.g. ['mnist', 'detector']) or whose cell in `column0` equals
 * `key`, in the first table having `column`; a repeated header counts from 1 (['change', 2]).
 */
async function resultCell(file, match, [column, nth = 1]) {
  const text = await readFile(join(REPO, file), 'utf8');
  const blocks = text.split(/\n\s*\n/).map((b) => b.split('\n').filter((l) => l.startsWith('|')));
  const split = (l) => l.slice(1, -1).split('|').map((c) => c.trim());
  for (const lines of blocks) {
    if (lines.length < 3) continue;
    const head = split(lines[0]);
    const col = head.reduce((at, h, i) => (h === column ? [...at, i] : at), [])[nth - 1];
    if (col == null) continue;
    for (const l of lines.slice(2)) {
      const c = split(l);
      if (match(c, head)) return c[col];
    }
  }
  throw new Error(`no ${column} in ${file}`);
}
const byCells = (pairs) => (c, head) => Object.entries(pairs).every(([h, v]) => (v instanceof RegExp ? v.test(c[head.indexOf(h)]) : c[head.indexOf(h)] === v));

const figure = (page, column) =>
  page.evaluate((col) => {
    const td = Array.from(document.querySelectorAll('#story-figures td')).find((t) => t.dataset.column === col);
    return td ? { shown: td.textContent, source: td.dataset.source } : null;
  }, column);

async function waitStep(page, n, timeout = 60_000) {
  await page.waitForFunction(
    (k) => {
      const c = document.querySelector('#story-card');
      return c.dataset.step === String(k) && c.dataset.state === 'done';
    },
    n,
    { timeout },
  );
  await page.waitForFunction(() => Array.from(document.querySelectorAll('#story-figures td')).every((t) => t.textContent !== '…'));
}

describe('sharing a view (stand-in engine)', { skip: noChromium, timeout: 180_000 }, () => {
  let lab;
  let page;
  useLab({ webgpu: false, mock: true, setup: (ctx) => ctx.grantPermissions(['clipboard-read', 'clipboard-write']) }, 60_000, (l) => {
    lab = l;
    page = l.page;
  });

  it('Share copies a link of the view, and the link restores sample, attack, parameters and target system', async () => {
    await predictSample(page, 5);
    await page.selectOption('#attack-type', 'pgd');
    await page.selectOption('#attack-goal', 'targeted');
    await page.selectOption('#attack-target', '3');
    await page.fill('#p-eps', '0.25');
    await page.fill('#p-steps', '17');
    await page.selectOption('#attack-defense', 'detector');
    await page.selectOption('#attack-mode', 'adaptive');
    await page.click('#share-button');
    await page.waitForFunction(() => document.querySelector('#share-copied').dataset.copied === 'Link');
    const link = await page.inputValue('#share-link');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), link, 'the clipboard holds the link shown');
    assert.equal(link, page.url(), 'the address bar follows the view');
    const q = new URL(link).searchParams;
    assert.equal(new URL(link).origin, new URL(lab.url).origin);
    for (const [k, v] of Object.entries({ sample: '5', attack: 'pgd', goal: 'targeted', target: '3', epsilon: '0.25', steps: '17', defense: 'detector', adaptive: '1' })) {
      assert.equal(q.get(k), v, `${k} in ${link}`);
    }
    assert.match(await page.textContent('#share-origin'), /never put in a link/);

    const other = await lab.context.newPage();
    try {
      await other.goto(link);
      await waitReady(other, 30_000);
      await other.waitForFunction(() => document.querySelector('#prediction').dataset.source === 'sample:5');
      const shown = await other.evaluate(() => ({
        attack: document.querySelector('#attack-type').value,
        goal: document.querySelector('#attack-goal').value,
        target: document.querySelector('#attack-target').value,
        eps: document.querySelector('#p-eps').value,
        steps: document.querySelector('#p-steps').value,
        defense: document.querySelector('#attack-defense').value,
        mode: document.querySelector('#attack-mode').value,
        selected: document.querySelector('#samples .selected')?.dataset.sample,
        note: document.querySelector('#share-restore-note').hidden,
      }));
      assert.deepEqual(shown, { attack: 'pgd', goal: 'targeted', target: '3', eps: '0.25', steps: '17', defense: 'detector', mode: 'adaptive', selected: '5', note: true });
      assert.equal(other.url(), link, 'the restored page has the same address');
    } finally {
      await other.close();
    }
  });

  it('says what a link could not restore', async () => {
    const other = await lab.context.newPage();
    try {
      await other.goto(`${lab.url}?sample=999&defense=no-such-defense`);
      await waitReady(other, 30_000);
      await other.locator('#share-restore-note').waitFor({ state: 'visible' });
      const note = await other.textContent('#share-restore-note');
      assert.match(note, /sample 999/);
      assert.match(note, /no-such-defense/);
    } finally {
      await other.close();
    }
  });

  it('never puts a drawing in the link, and says so next to Share', async () => {
    const before = lab.requests.length;
    const seq = await predictionSeq(page);
    await drawStroke(page);
    await page.waitForFunction((n) => Number(document.querySelector('#prediction').dataset.seq) > n && document.querySelector('#prediction').dataset.source === 'drawing', seq);
    await page.click('#share-button');
    const origin = await page.textContent('#share-origin');
    assert.match(origin, /Your drawing is not in the link and is sent nowhere: the link opens sample 0/);
    const link = await page.inputValue('#share-link');
    assert.equal(new URL(link).searchParams.get('sample'), null);
    assert.ok(link.length < 300, `a short link: ${link}`);
    assert.deepEqual(lab.requests.slice(before), [], 'drawing and sharing asked the server for nothing');
    await page.click('#share-close');
    await page.click('#draw-clear');
  });

  it('offers an <iframe> snippet of one panel, which embeds that panel in another page', async () => {
    await page.click('#share-button');
    const panels = await page.$$eval('#embed-panel option', (os) => os.map((o) => o.value));
    assert.ok(panels.includes('attack') && panels.includes('squeeze'), panels.join(', '));
    await page.selectOption('#embed-panel', 'squeeze');
    const snippet = await page.inputValue('#embed-snippet');
    assert.match(snippet, /^<iframe src="[^"]+(\?|&amp;)embed=squeeze[^"]*" width="700" height="500" title="advlab: [^"]+"/);
    const src = snippet.match(/src="([^"]+)"/)[1].replace(/&amp;/g, '&');
    assert.equal(new URL(src).origin, new URL(lab.url).origin);
    // A page of the same origin (the policy allows framing by 'self') holding the snippet as is.
    await lab.context.route(/\/embed-host\.html$/, (r) => r.fulfill({ status: 200, contentType: 'text/html', body: `<!doctype html><title>host</title><h1>A blog post</h1>${snippet}` }));
    const host = await lab.context.newPage();
    try {
      await host.goto(`${lab.url}embed-host.html`);
      const frame = host.frameLocator('iframe');
      await frame.locator('body[data-state="ready"]').waitFor({ timeout: 30_000 });
      await frame.locator('#squeeze-card').waitFor({ state: 'visible' });
      assert.equal(await frame.locator('header.top').isVisible(), false, 'no page chrome');
      assert.equal(await frame.locator('#attack-card').isVisible(), false, 'one panel');
      const box = await host.locator('iframe').boundingBox();
      assert.deepEqual([Math.round(box.width), Math.round(box.height)], [700, 500]);
      const fh = await host.locator('iframe').elementHandle();
      const inner = await (await fh.contentFrame()).evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      assert.ok(inner[0] <= inner[1], `the embedded page is ${inner[0]}px wide in ${inner[1]}px`);
    } finally {
      await host.close();
      await page.click('#share-close');
    }
  });
});

describe('embed mode (stand-in engine)', { skip: noChromium, timeout: 120_000 }, () => {
  it('?embed=attack shows the attack panel alone, fitting 700x500, and runs an attack', async () => {
    const lab = await startLab({ webgpu: false, mock: true, viewport: { width: 700, height: 500 }, path: '?embed=attack&sample=2' });
    try {
      await waitReady(lab.page, 30_000);
      const page = lab.page;
      await page.waitForFunction(() => document.querySelector('#prediction').dataset.source === 'sample:2');
      const visible = await page.$$eval('main > section.card', (cs) => cs.filter((c) => c.offsetParent !== null).map((c) => c.id));
      assert.deepEqual(visible, ['attack-card']);
      assert.equal(await page.locator('header.top').isVisible(), false);
      assert.equal(await page.locator('footer.foot').isVisible(), false);
      assert.equal(await page.inputValue('#embed-sample'), '2', 'the bar names the input');
      const r = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
        start: document.querySelector('#attack-start').getBoundingClientRect().bottom,
      }));
      assert.ok(r.scroll <= r.client, `${r.scroll}px wide in ${r.client}px`);
      assert.ok(r.start <= 500, `Start attack ends at ${r.start}px of 500`);
      assert.match(await page.getAttribute('#embed-open', 'href'), /[?&]sample=2/);
      assert.doesNotMatch(await page.getAttribute('#embed-open', 'href'), /embed=/);
      await screenshot(page, 'embed-attack-700x500');
      // Another sample by number, then an attack, all inside the panel.
      await page.fill('#embed-sample', '4');
      await page.press('#embed-sample', 'Enter');
      await page.waitForFunction(() => document.querySelector('#prediction').dataset.source === 'sample:4');
      await page.fill('#p-steps', '5');
      await page.fill('#p-bss', '1');
      await page.click('#attack-start');
      await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done', null, { timeout: 30_000 });
      assert.equal(await page.locator('#attack-result').isVisible(), true);
    } finally {
      await lab.close();
    }
  });

  it('?embed=squeeze shows the squeezing panel alone, without horizontal scroll at 700 px', async () => {
    const lab = await startLab({ webgpu: false, mock: true, viewport: { width: 700, height: 500 }, path: '?embed=squeeze' });
    try {
      await waitReady(lab.page, 30_000);
      const visible = await lab.page.$$eval('main > section.card', (cs) => cs.filter((c) => c.offsetParent !== null).map((c) => c.id));
      assert.deepEqual(visible, ['squeeze-card']);
      await lab.page.locator('#squeeze-views figure').first().waitFor();
      const [scroll, client] = await lab.page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      assert.ok(scroll <= client, `${scroll}px wide in ${client}px`);
      await screenshot(lab.page, 'embed-squeeze-700x500');
    } finally {
      await lab.close();
    }
  });
});

describe('the guided story (stand-in engine)', { skip: noChromium, timeout: 240_000 }, () => {
  let page;
  useLab({ webgpu: false, mock: true }, 60_000, (l) => {
    page = l.page;
  });

  it('explains each panel in words, with the formula behind a toggle and the paper', async () => {
    for (const [card, id] of [['predict-card', 'model'], ['attack-card', 'attack'], ['squeeze-card', 'squeezer'], ['squeeze-card', 'detector']]) {
      const box = page.locator(`#${card} #explain-${id}`);
      assert.equal(await box.count(), 1, `${id} in ${card}`);
      await box.locator('summary').first().click();
      const words = (await box.locator(':scope > p').first().textContent()).split(/\s+/).length;
      assert.ok(words > 15, `${id}: ${words} words`);
      assert.equal(await box.locator('details.formula').count(), 1);
      assert.equal(await box.locator('details.formula p').isVisible(), false, 'the formula starts folded');
      assert.match(await box.locator('.paper').textContent(), /\(20\d\d\)/);
      await box.locator('summary').first().click();
    }
  });

  it('walks through the paper’s argument one click per step, with the results’ figures beside the live ones', async () => {
    await page.click('#story-button');
    await waitStep(page, 1);
    assert.match(page.url(), /[?&]story=1/);
    assert.equal(await page.textContent('#story-step-title'), 'A model and its accuracy');
    // The stand-in serves its own manifest (test accuracy 0.5): the page shows the manifest's figure.
    assert.equal((await figure(page, 'test_accuracy')).shown, '50.00%');
    assert.match(await page.textContent('#story-live'), /the model says/);
    assert.equal(await page.getAttribute('#explain-model', 'open'), '');
    // Step 1 invites picking other samples; the later steps attack the one picked.
    await predictSample(page, 2);

    const file = 'results/squeeze-mnist.md';
    await page.click('#story-next');
    // While the step's attack runs, the story echoes its progress and the time left.
    await page.waitForFunction(() => /^Running: step \d+ \/ \d+ .* left$/.test(document.querySelector('#story-live').textContent), null, { timeout: 30_000 });
    await waitStep(page, 2);
    assert.equal(await page.textContent('#story-step-title'), 'A naive attack, and what it changes');
    const bareL2 = await resultCell(file, byCells({ system: 'mnist.safetensors', attack: /^CW-L2/ }), ['mean L2']);
    assert.deepEqual(await figure(page, 'mean L2'), { shown: bareL2, source: file });
    assert.equal(await page.getAttribute('#story-live', 'data-outcome'), 'fooled');
    assert.ok(Number(await page.getAttribute('#story-live', 'data-l2')) > 0);
    assert.match(await page.textContent('#story-live'), /L2 of the example: \d/);
    // What the attack changed, shown in the story itself: the input, the example, the perturbation.
    assert.equal(await page.locator('#story-images canvas[role="img"]').count(), 3);

    await page.click('#story-next');
    await waitStep(page, 3);
    assert.equal(await page.textContent('#story-step-title'), 'A defense that catches it');
    const through = await resultCell(file, byCells({ system: 'mnist.safetensors + detector (attack on the bare model)', attack: /^CW-L2/ }), ['success']);
    assert.equal((await figure(page, 'success')).shown, through);
    // The stand-in's caricature of a detector may miss a long run's example; the story must say
    // what the attack panel says (visit.test.mjs checks the real detector's verdict).
    const outcome = await page.getAttribute('#adv-defense', 'data-outcome');
    assert.ok(['detected', 'fooled'].includes(outcome), outcome);
    assert.equal(await page.getAttribute('#story-live', 'data-outcome'), outcome);
    assert.ok((await page.textContent('#story-live')).includes(await page.textContent('#adv-defense')));
    assert.equal(await page.inputValue('#attack-defense'), 'detector');
    assert.equal(await page.inputValue('#attack-mode'), 'bare');

    await page.click('#story-next');
    await waitStep(page, 4);
    assert.equal(await page.textContent('#story-step-title'), 'The adaptive attack that beats it');
    const adaptive = byCells({ 'data set': 'mnist', defense: 'detector' });
    assert.equal((await figure(page, 'mean L2')).shown, await resultCell(file, adaptive, ['mean L2']));
    assert.equal((await figure(page, 'change')).shown, await resultCell(file, adaptive, ['change']));
    assert.equal(await page.getAttribute('#story-live', 'data-outcome'), 'fooled');
    assert.equal(await page.inputValue('#attack-mode'), 'adaptive');

    await page.click('#story-next');
    await waitStep(page, 5);
    assert.equal(await page.textContent('#story-step-title'), 'An ensemble that fares no better');
    assert.equal((await figure(page, "strongest part's mean L2")).shown, await resultCell(file, adaptive, ["strongest part's mean L2"]));
    assert.equal((await figure(page, 'change (2)')).shown, await resultCell(file, adaptive, ['change', 2]));
    assert.match(await page.textContent('#story-live'), /Against the detector \(previous step\): L2 \d/);
    await screenshot(page, 'story-step5-1280', { fullPage: false });

    await page.click('#story-prev');
    await waitStep(page, 4);
    assert.match(page.url(), /[?&]story=4/);
  });

  it('?story=4 opens the adaptive step directly', async () => {
    const other = await page.context().newPage();
    try {
      await other.goto(new URL('?story=4', page.url()).href);
      await waitStep(other, 4);
      assert.equal(await other.textContent('#story-step-title'), 'The adaptive attack that beats it');
      assert.equal(await other.getAttribute('#story-live', 'data-outcome'), 'fooled');
    } finally {
      await other.close();
    }
  });

  it('a click on the next step while an attack runs cancels it: one attack at a time', async () => {
    await page.click('#story-exit');
    await predictSample(page, 1);
    // PGD on the bare model runs all its steps with the stand-in (the story left the detector chosen).
    await startAttack(page, { attack: 'pgd', defense: 'none', fields: { '#p-steps': 3000 } });
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 3);
    // A second start from the form (Start is disabled; Enter in a field) starts nothing: the same run goes on.
    assert.equal(await page.isDisabled('#attack-start'), true);
    const before = Number(await page.getAttribute('#attack-progress', 'data-count'));
    await page.focus('#p-eps');
    await page.keyboard.press('Enter');
    await page.waitForFunction((n) => Number(document.querySelector('#attack-progress').dataset.count) > n + 2, before);
    assert.equal(await page.getAttribute('#attack-status', 'data-state'), 'running');
    // The story's step gives the running attack way: it is cancelled, the step's own attack runs.
    await page.click('#story-button');
    await waitStep(page, 1);
    await page.click('#story-next');
    await waitStep(page, 2);
    assert.equal(await page.inputValue('#attack-type'), 'cw');
    assert.equal(await page.getAttribute('#attack-status', 'data-state'), 'done');
    assert.equal(await page.getAttribute('#story-live', 'data-outcome'), 'fooled');
  });
});

describe('the story and embed mode under a sub-path (stand-in engine)', { skip: noChromium, timeout: 120_000 }, () => {
  it('served under /some/where/advlab/, reads results/ and embeds with relative URLs only', async () => {
    const host = await makeTempDir('advlab-host-');
    await mkdir(join(host, 'some', 'where'), { recursive: true });
    await symlink(REPO, join(host, 'some', 'where', 'advlab'));
    const lab = await startLab({ webgpu: false, mock: true, root: host, path: 'some/where/advlab/?story=3' });
    try {
      await waitReady(lab.page, 30_000);
      await waitStep(lab.page, 3);
      const fig = await figure(lab.page, 'success');
      assert.equal(fig.source, 'results/squeeze-mnist.md');
      assert.match(fig.shown, /^\d+%$/);
      await lab.page.click('#share-button');
      const snippet = await lab.page.inputValue('#embed-snippet');
      assert.match(snippet, new RegExp(`src="${lab.url}some/where/advlab/\\?`));
      const base = `${lab.url}some/where/advlab/`;
      const outside = lab.requests.filter((u) => !u.startsWith(base) && !u.startsWith('data:') && !u.startsWith('blob:'));
      assert.deepEqual(outside, []);
    } finally {
      await lab.close();
    }
  });
});
