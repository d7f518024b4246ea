// web/serve.mjs: MIME types, 127.0.0.1 only, no escape from the root, gzip where the browser
// accepts it (pre-compressed or compressed once and kept), the Content-Security-Policy on every
// answer, and its command line.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile, mkdir, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import { utimes } from 'node:fs/promises';
import { startServer, CSP, acceptsGzip } from '../../web/serve.mjs';
import { REPO } from './harness.mjs';

function get(url, method = 'GET', headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web/serve.mjs', () => {
  let root;
  let srv;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'advlab-serve-'));
    await mkdir(join(root, 'pkg'));
    await mkdir(join(root, 'models'));
    const files = {
      'index.html': '<!doctype html><title>x</title>',
      'pkg/advlab.js': 'export default 1;',
      'pkg/advlab_bg.wasm': Buffer.from([0, 97, 115, 109, 1, 0, 0, 0]),
      'a.mjs': 'export {}',
      'a.css': 'body{}',
      'models/mnist.json': '{}',
      'models/mnist.safetensors': Buffer.alloc(16),
      'models/mnist-samples.bin': Buffer.alloc(16),
      'x.png': Buffer.alloc(4),
      'x.jpg': Buffer.alloc(4),
      // Compressible (repetitive) stand-ins for the glue and the module.
      'big.js': 'export const x = 1;\n'.repeat(20000),
      'big.wasm': Buffer.concat([Buffer.from([0, 97, 115, 109, 1, 0, 0, 0]), Buffer.alloc(200_000, 7)]),
      'pre.js': 'the file itself\n',
    };
    for (const [name, body] of Object.entries(files)) await writeFile(join(root, name), body);
    // A pre-compressed copy, newer than its file, whose content differs so the test can tell.
    await writeFile(join(root, 'pre.js.gz'), gzipSync('the pre-compressed copy\n'));
    const later = new Date(Date.now() + 60_000);
    await utimes(join(root, 'pre.js.gz'), later, later);
    srv = await startServer({ port: 0, root, quiet: true });
  });

  after(async () => {
    await new Promise((r) => srv.server.close(r));
    await rm(root, { recursive: true, force: true });
  });

  it('listens on 127.0.0.1', () => {
    assert.equal(srv.server.address().address, '127.0.0.1');
    assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  const cases = [
    ['', 'text/html'],
    ['index.html', 'text/html'],
    ['pkg/advlab.js', 'text/javascript'],
    ['a.mjs', 'text/javascript'],
    ['a.css', 'text/css'],
    ['pkg/advlab_bg.wasm', 'application/wasm'],
    ['models/mnist.json', 'application/json'],
    ['models/mnist.safetensors', 'application/octet-stream'],
    ['models/mnist-samples.bin', 'application/octet-stream'],
    ['x.png', 'image/png'],
    ['x.jpg', 'image/jpeg'],
  ];
  for (const [path, type] of cases) {
    it(`serves /${path} as ${type}`, async () => {
      const r = await get(srv.url + path);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'].split(';')[0], type);
    });
  }

  it('answers HEAD with the length and no body', async () => {
    const r = await get(srv.url + 'pkg/advlab_bg.wasm', 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '8');
    assert.equal(r.body.length, 0);
  });

  it('404s missing files and refuses to leave the root', async () => {
    assert.equal((await get(srv.url + 'models/cifar10.json')).status, 404);
    assert.equal((await get(srv.url + '..%2f..%2fetc%2fpasswd')).status, 403);
    const r = await get(srv.url + '../../etc/passwd');
    assert.notEqual(r.status, 200);
  });

  it('sends JavaScript and wasm gzipped where the browser accepts gzip, and keeps the compressed copy', async (t) => {
    for (const name of ['big.js', 'big.wasm']) {
      const plainR = await get(srv.url + name);
      assert.equal(plainR.headers['content-encoding'], undefined, 'no gzip unasked');
      const t0 = process.hrtime.bigint();
      const gz = await get(srv.url + name, 'GET', { 'Accept-Encoding': 'gzip, deflate, br' });
      const first = Number(process.hrtime.bigint() - t0) / 1e6;
      assert.equal(gz.headers['content-encoding'], 'gzip');
      assert.equal(gz.headers.vary, 'Accept-Encoding');
      assert.equal(Number(gz.headers['content-length']), gz.body.length);
      assert.ok(gz.body.length < plainR.body.length / 10, `${name}: ${gz.body.length} of ${plainR.body.length} bytes`);
      assert.deepEqual(gunzipSync(gz.body), plainR.body, 'the same bytes once unzipped');
      const again = await get(srv.url + name, 'GET', { 'Accept-Encoding': 'gzip' });
      assert.deepEqual(again.body, gz.body, 'the kept copy');
      t.diagnostic(`${name}: ${plainR.body.length} -> ${gz.body.length} bytes gzipped (first answer ${first.toFixed(1)} ms)`);
    }
    assert.equal((await get(srv.url + 'big.js', 'GET', { 'Accept-Encoding': 'gzip;q=0' })).headers['content-encoding'], undefined);
    assert.equal((await get(srv.url + 'models/mnist.safetensors', 'GET', { 'Accept-Encoding': 'gzip' })).headers['content-encoding'], undefined, 'weights go as they are');
  });

  it('serves a newer pre-compressed <file>.gz as is', async () => {
    const r = await get(srv.url + 'pre.js', 'GET', { 'Accept-Encoding': 'gzip' });
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(r.body).toString(), 'the pre-compressed copy\n');
    assert.equal((await get(srv.url + 'pre.js')).body.toString(), 'the file itself\n');
  });

  it('reads Accept-Encoding as browsers send it', () => {
    assert.equal(acceptsGzip('gzip, deflate, br, zstd'), true);
    assert.equal(acceptsGzip('br;q=1.0, gzip;q=0.8, *;q=0.1'), true);
    assert.equal(acceptsGzip('gzip;q=0'), false);
    assert.equal(acceptsGzip('identity'), false);
    assert.equal(acceptsGzip(undefined), false);
  });

  it('sends the Content-Security-Policy with every answer, the same as index.html’s <meta>', async () => {
    for (const path of ['', 'pkg/advlab.js', 'pkg/advlab_bg.wasm', 'models/cifar10.json']) {
      const r = await get(srv.url + path);
      assert.equal(r.headers['content-security-policy'], CSP, path);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
    }
    assert.match(CSP, /script-src 'self' 'wasm-unsafe-eval'(;|$)/);
    assert.doesNotMatch(CSP, /'unsafe-eval'|'unsafe-inline'|\*/);
    const html = await readFile(join(REPO, 'index.html'), 'utf8');
    const meta = html.match(/<meta http-equiv="Content-Security-Policy" content="([^"]+)">/);
    assert.ok(meta, 'index.html has the policy as a <meta>');
    // A <meta> policy cannot carry frame-ancestors; everything else is the same.
    assert.equal(meta[1], CSP.replace(/; frame-ancestors [^;]+/, ''));
  });

  it('prints its address when started from the command line', async () => {
    const child = spawn(process.execPath, [join(REPO, 'web', 'serve.mjs'), '--port', '0', '--root', root]);
    try {
      const line = await new Promise((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        child.on('error', reject);
        child.on('exit', (code) => reject(new Error(`exited with ${code}`)));
        setTimeout(() => reject(new Error('no output')), 10_000);
      });
      const m = line.match(/^Serving (http:\/\/127\.0\.0\.1:(\d+)\/)$/);
      assert.ok(m, line);
      const r = await get(m[1] + 'pkg/advlab_bg.wasm');
      assert.equal(r.headers['content-type'], 'application/wasm');
    } finally {
      child.kill();
    }
  });
});
