#!/usr/bin/env node
// A tiny static file server for the advlab page (no dependencies).
//
//   node web/serve.mjs [--port 8000] [--root .]
//
// Serves the repository root on 127.0.0.1 only, with the MIME types the page needs
// (application/wasm for the module, text/javascript for .js/.mjs). Port 0 picks a free port.
// Importable too: `startServer({port, root})` resolves to {server, port, url}.

import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
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

export function mimeType(path) {
  return MIME[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

function send(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
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
      res.writeHead(200, {
        'Content-Type': mimeType(file),
        'Content-Length': info.size,
        'Cache-Control': 'no-cache',
        'X-Content-Type-Options': 'nosniff',
      });
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
