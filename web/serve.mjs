#!/usr/bin/env node
// A tiny static file server for the advlab page (no dependencies).
//
//   node web/serve.mjs [--port 8000] [--root .]
//
// Serves the repository root on 127.0.0.1 only, with the MIME types the page needs
// (application/wasm for the module, text/javascript for .js/.mjs). Port 0 picks a free port.
// Text and wasm go out gzipped where the browser accepts it (Content-Encoding: gzip): a
// pre-compressed `<file>.gz` no older than the file is sent as is, otherwise the file is
// compressed once and kept in memory until it changes (the 15 MB wasm is about 3 MB gzipped).
// Every answer carries the page's Content-Security-Policy (CSP below; index.html has the same
// policy as a <meta> for hosts that cannot send headers).
// Importable too: `startServer({port, root})` resolves to {server, port, url}.

import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat, readFile } from 'node:fs/promises';
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { resolve, join, extname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

const gzipAsync = promisify(gzip);

/**
 * The page's policy: its own files only; no eval (the wasm glue needs none), WebAssembly
 * compilation allowed ('wasm-unsafe-eval', which allows nothing else); no plugins, no <base>,
 * no form posts, no framing by other sites.
 */
export const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data: blob:",
  "style-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'self'",
].join('; ');

const SECURITY_HEADERS = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/** Types worth compressing (weights and sample packs are float / pixel bytes: little gain). */
const COMPRESSIBLE = new Set(['.html', '.htm', '.js', '.mjs', '.css', '.json', '.wasm', '.svg', '.txt', '.md', '.map']);

export function acceptsGzip(header) {
  if (!header) return false;
  for (const part of String(header).split(',')) {
    const [coding, ...rest] = part.trim().split(';');
    if (coding.trim().toLowerCase() !== 'gzip' && coding.trim() !== '*') continue;
    const q = rest.map((r) => r.trim()).find((r) => r.startsWith('q='));
    return !(q && Number(q.slice(2)) === 0);
  }
  return false;
}

/** file -> {mtimeMs, size, body: Promise<Buffer>}: each version compressed once. */
const gzipCache = new Map();

function gzipped(file, info) {
  const hit = gzipCache.get(file);
  if (hit && hit.mtimeMs === info.mtimeMs && hit.size === info.size) return hit.body;
  const body = (async () => {
    try {
      const pre = await stat(`${file}.gz`);
      if (pre.isFile() && pre.mtimeMs >= info.mtimeMs) return await readFile(`${file}.gz`);
    } catch {
      /* no pre-compressed copy */
    }
    return gzipAsync(await readFile(file), { level: 6 });
  })();
  gzipCache.set(file, { mtimeMs: info.mtimeMs, size: info.size, body });
  body.catch(() => gzipCache.delete(file));
  return body;
}

export function mimeType(path) {
  return MIME[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

function send(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...SECURITY_HEADERS });
  res.end(text);
}

export function startServer({ port = 8000, root = '.', host = '127.0.0.1', quiet = false } = {}) {
  const rootDir = resolve(root);
  const server = createServer(async (req, res) => {
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n');
      let pathname;
      try {
        pathname = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
      } catch {
        return send(res, 400, 'bad request\n');
      }
      if (pathname.includes('\0')) return send(res, 400, 'bad request\n');
      let file = resolve(join(rootDir, pathname));
      if (file !== rootDir && !file.startsWith(rootDir + sep)) return send(res, 403, 'forbidden\n');
      let info;
      try {
        info = await stat(file);
        if (info.isDirectory()) {
          file = join(file, 'index.html');
          info = await stat(file);
        }
      } catch {
        return send(res, 404, `not found: ${pathname}\n`);
      }
      if (!info.isFile()) return send(res, 404, `not found: ${pathname}\n`);
      const headers = { 'Content-Type': mimeType(file), 'Cache-Control': 'no-cache', Vary: 'Accept-Encoding', ...SECURITY_HEADERS };
      if (COMPRESSIBLE.has(extname(file).toLowerCase()) && acceptsGzip(req.headers['accept-encoding'])) {
        const body = await gzipped(file, info);
        res.writeHead(200, { ...headers, 'Content-Encoding': 'gzip', 'Content-Length': body.length });
        return res.end(req.method === 'HEAD' ? undefined : body);
      }
      res.writeHead(200, { ...headers, 'Content-Length': info.size });
      if (req.method === 'HEAD') return res.end();
      const stream = createReadStream(file);
      stream.on('error', () => res.destroy());
      stream.pipe(res);
    } catch (e) {
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
      if (!quiet) console.error(e);
    }
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const actual = server.address().port;
      resolvePromise({ server, port: actual, url: `http://${host}:${actual}/` });
    });
  });
}

function parseArgs(argv) {
  const opts = { port: 8000, root: '.' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port' || a === '-p') opts.port = Number(next());
    else if (a.startsWith('--port=')) opts.port = Number(a.slice(7));
    else if (a === '--root' || a === '-r') opts.root = next();
    else if (a.startsWith('--root=')) opts.root = a.slice(7);
    else if (a === '--help' || a === '-h') {
      console.log('usage: node web/serve.mjs [--port 8000] [--root .]');
      process.exit(0);
    } else throw new Error(`unknown argument: ${a}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('bad --port');
  return opts;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const opts = parseArgs(process.argv.slice(2));
    const { url } = await startServer(opts);
    console.log(`Serving ${url}`);
  } catch (e) {
    console.error(`serve.mjs: ${e.message}`);
    process.exit(1);
  }
}
