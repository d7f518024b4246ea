// web/serve.mjs: MIME types, 127.0.0.1 only, no escape from the root, and its command line.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { startServer } from '../../web/serve.mjs';
import { REPO } from './harness.mjs';

function get(url, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
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
    };
    for (const [name, body] of Object.entries(files)) await writeFile(join(root, name), body);
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
