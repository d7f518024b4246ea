// The committed result tables (results/*.md, written by `lab report` / `make squeeze-results`),
// read by the page so that the story shows the measured figures next to the live ones without
// copying a number into the page's code. A Markdown file -> its pipe tables -> rows as objects.

const cache = new Map(); // file -> Promise<tables>

/** Parses the pipe tables of a Markdown text: [{headers, rows: [{header: cell}]}] (a repeated header: "change (2)"). */
export function parseTables(text) {
  const tables = [];
  let cur = null;
  const cells = (line) => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  for (const line of text.split('\n')) {
    if (!line.trim().startsWith('|')) {
      cur = null;
      continue;
    }
    if (!cur) {
      // A repeated header gets its rank: "change", "change (2)".
      const seen = new Map();
      const headers = cells(line).map((h) => {
        const n = (seen.get(h) ?? 0) + 1;
        seen.set(h, n);
        return n > 1 ? `${h} (${n})` : h;
      });
      cur = { headers, rows: [] };
      tables.push(cur);
    } else if (/^\|?\s*:?-{3,}/.test(line.trim())) {
      continue; // the separator under the header
    } else {
      const c = cells(line);
      cur.rows.push(Object.fromEntries(cur.headers.map((h, i) => [h, c[i] ?? ''])));
    }
  }
  return tables;
}

/** The tables of a results file (a path under the page's root, e.g. results/squeeze-mnist.md). */
export function loadResults(file) {
  if (!/^results\/[\w.-]+\.md$/.test(file)) return Promise.reject(new Error(`not a results file: ${file}`));
  if (!cache.has(file)) {
    const url = new URL(`../${file}`, import.meta.url);
    cache.set(
      file,
      fetch(url).then(async (r) => {
        if (!r.ok) throw new Error(`${file} is not on this server (HTTP ${r.status})`);
        return parseTables(await r.text());
      }),
    );
    cache.get(file).catch(() => cache.delete(file));
  }
  return cache.get(file);
}

/**
 * The first row whose cells match `where` ({header: string (equal) or RegExp}) in a table that has
 * every column of `where` and `column`; its `column` cell, or null.
 */
export function findCell(tables, where, column) {
  for (const t of tables) {
    if (!t.headers.includes(column) || !Object.keys(where).every((h) => t.headers.includes(h))) continue;
    const row = t.rows.find((r) => Object.entries(where).every(([h, m]) => (m instanceof RegExp ? m.test(r[h]) : r[h] === m)));
    if (row) return row[column];
  }
  return null;
}
