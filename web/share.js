// Sharing: the page's view lives in its URL (kept up to date with history.replaceState, so the
// address bar is always a link to what is on screen); "Share" copies it; the share panel also
// offers an <iframe> snippet for one panel (embed mode, web/embed.js). Opening a link restores
// the view (restoreFromUrl). Drawn and uploaded images are never put in a link.

import { $, $$ } from './util.js';
import { state, params } from './state.js';
import { readView, viewQuery, parseView, applyView, inputOrigin, VIEW_KEYS } from './view-state.js';

let restored = false; // no URL updates until the link's own view has been applied

/**
 * The page's address for the current view, keeping the keys this module does not own (story,
 * large...). `embed`: a panel name (an embed link), false (the full page), or left out (as now).
 */
export function viewUrl({ embed } = {}) {
  const u = new URL(location.href);
  const q = viewQuery(readView());
  for (const [k, v] of new URLSearchParams(u.search)) if (!VIEW_KEYS.includes(k) && k !== 'embed') q.append(k, v);
  if (embed) {
    q.delete('story');
    q.set('embed', embed);
  } else if (embed === undefined && params.get('embed')) q.set('embed', params.get('embed'));
  u.search = q.toString();
  u.hash = '';
  return u.href;
}

/** Keeps the address bar in step with the view. */
export function syncUrl() {
  if (!restored || !state.dataset) return;
  const href = viewUrl();
  if (href !== location.href) history.replaceState(history.state, '', href);
  renderShare();
}

/** What the link does with the current input, in words. */
function originNote() {
  const o = inputOrigin();
  if (o.kind === 'drawing' || o.kind === 'upload') {
    return `Your ${o.kind === 'drawing' ? 'drawing' : 'uploaded image'} is not in the link and is sent nowhere: the link opens sample 0 with the same settings.`;
  }
  return 'Drawn and uploaded images are never put in a link or sent anywhere; a link names only a sample’s number.';
}

/** The panels that can be embedded: every card of the page that has a title. */
export function embeddablePanels() {
  return $$('main > section.card[id$="-card"]')
    .filter((c) => c.id !== 'story-card' && c.id !== 'input-card')
    .map((c) => ({ name: c.id.slice(0, -'-card'.length), title: ($('h2', c)?.firstChild?.textContent ?? c.id).replace(/^\d+\.\s*/, '').trim() }));
}

function iframeSnippet(panel) {
  const p = embeddablePanels().find((x) => x.name === panel);
  const src = viewUrl({ embed: panel });
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  return `<iframe src="${esc(src)}" width="700" height="500" title="advlab: ${esc(p?.title ?? panel)}" loading="lazy" style="border:0"></iframe>`;
}

function renderShare() {
  const panel = $('#share-panel');
  if (!panel || panel.hidden) return;
  $('#share-link').value = viewUrl();
  $('#share-origin').textContent = originNote();
  $('#share-origin').dataset.origin = inputOrigin().kind;
  $('#embed-snippet').value = iframeSnippet($('#embed-panel').value);
}

/** Copies text to the clipboard; falls back to selecting it in `field` and execCommand. */
async function copyText(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    field.focus();
    field.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
}

async function copyFrom(field, what) {
  const ok = await copyText(field.value, field);
  const el = $('#share-copied');
  el.dataset.copied = ok ? what : '';
  el.textContent = ok ? `${what} copied.` : `Select the ${what.toLowerCase()} above and copy it (the browser refused the clipboard).`;
}

function openPanel(open) {
  const panel = $('#share-panel');
  panel.hidden = !open;
  $('#share-button').setAttribute('aria-expanded', String(open));
  if (open) {
    const sel = $('#embed-panel');
    const before = sel.value;
    sel.textContent = '';
    for (const p of embeddablePanels()) sel.append(new Option(p.title, p.name));
    // The attack panel first: it is the one most worth embedding in a post.
    const keep = [before, 'attack'].find((v) => v && Array.from(sel.options).some((o) => o.value === v));
    if (keep) sel.value = keep;
    $('#share-copied').textContent = '';
    renderShare();
  }
}

/** Starts keeping the URL in step without restoring a view (the first data set failed to load). */
export function startUrlSync() {
  restored = true;
}

export function setupShare() {
  $('#share-button').title = 'Copy a link to this view: data set, sample number, attack settings, target system. Drawn and uploaded images never go into a link.';
  $('#share-button').addEventListener('click', async () => {
    openPanel(true);
    await copyFrom($('#share-link'), 'Link');
  });
  $('#share-close').addEventListener('click', () => {
    openPanel(false);
    $('#share-button').focus();
  });
  $('#share-copy').addEventListener('click', () => copyFrom($('#share-link'), 'Link'));
  $('#embed-copy').addEventListener('click', () => copyFrom($('#embed-snippet'), 'Snippet'));
  $('#embed-panel').addEventListener('change', renderShare);
  // The view changes through the form, the data set and the input (a new prediction).
  $('#attack-form').addEventListener('change', syncUrl);
  $('#attack-form').addEventListener('input', syncUrl);
  new MutationObserver(syncUrl).observe($('#prediction'), { attributes: true, attributeFilter: ['data-seq', 'data-source'] });
}

/**
 * Applies the view the page was opened with (after the first data set is ready); says what of
 * it could not be restored. From then on the URL follows the view.
 */
export async function restoreFromUrl() {
  const v = parseView(params);
  try {
    const missed = await applyView(v);
    const note = $('#share-restore-note');
    note.hidden = missed.length === 0;
    note.textContent = missed.length ? `This link asked for ${missed.join(', ')}, which this page could not restore.` : '';
  } finally {
    restored = true;
    syncUrl();
  }
}
