// Embed mode (?embed=attack, ?embed=squeeze, ?embed=predict, ... any "<name>-card" panel): one
// panel, compact, without the page's header and footer, sized for an <iframe> of about 700x500.
// A slim bar above it shows the input (the link's sample, which can be changed by number) and
// links to the full lab in a new tab.

import { $ } from './util.js';
import { state, params, className } from './state.js';
import { pickSample } from './samples.js';
import { inputsOpen } from './ui.js';
import { viewUrl } from './share.js';

/** The panel named by ?embed= (its card element), or null when the page is not embedded. */
export function embedTarget() {
  const name = params.get('embed');
  if (!name || !/^[a-z0-9-]+$/.test(name)) return null;
  return document.getElementById(`${name}-card`);
}

function updateBar() {
  const cv = $('#embed-input');
  const src = $('#model-input');
  cv.width = src.width;
  cv.height = src.height;
  cv.getContext('2d').drawImage(src, 0, 0);
  const p = $('#prediction');
  const source = p.dataset.source ?? '';
  const n = source.startsWith('sample:') ? source.slice(7) : '';
  if (n && document.activeElement !== $('#embed-sample')) $('#embed-sample').value = n;
  const said = p.dataset.predicted != null ? `model says “${className(state.dataset, Number(p.dataset.predicted))}”` : '';
  $('#embed-said').textContent = said;
  cv.setAttribute('aria-label', `The input${n ? `: sample ${n}` : ''}${said ? `, ${said}` : ''}`);
  $('#embed-open').href = viewUrl({ embed: false });
}

function buildBar(card) {
  const bar = document.createElement('div');
  bar.className = 'embed-bar';
  bar.innerHTML = `
    <canvas id="embed-input" class="pixelated" width="28" height="28" role="img" aria-label="The input"></canvas>
    <label>Sample <input type="number" id="embed-sample" min="0" step="1" value="0"></label>
    <span id="embed-said" class="muted small"></span>
    <a id="embed-open" href="./" target="_blank" rel="noopener">Open in advlab ↗</a>`;
  card.before(bar);
  const num = $('#embed-sample', bar);
  num.addEventListener('change', async () => {
    const samples = await state.samples[state.dataset]?.catch(() => null);
    const i = Number(num.value);
    if (!samples || !Number.isInteger(i) || i < 0 || i >= samples.count || !inputsOpen()) {
      num.setCustomValidity(samples ? `a sample from 0 to ${samples.count - 1}` : 'no samples');
      num.reportValidity();
      return;
    }
    num.setCustomValidity('');
    await pickSample(i);
  });
  new MutationObserver(updateBar).observe($('#prediction'), { attributes: true, attributeFilter: ['data-seq'] });
  new MutationObserver(() => {
    num.disabled = $('#input-card').classList.contains('disabled');
  }).observe($('#input-card'), { attributes: true, attributeFilter: ['class'] });
}

/** Switches the page to embed mode when ?embed= names one of its panels; returns that name or null. */
export function setupEmbed() {
  const card = embedTarget();
  if (!card) return null;
  const name = card.id.slice(0, -'-card'.length);
  document.body.classList.add('embed');
  document.body.dataset.embed = name;
  card.classList.add('embed-target');
  const help = $('#param-help-box');
  if (help) help.open = false;
  if (name !== 'input') buildBar(card);
  return name;
}
