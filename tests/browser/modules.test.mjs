// The page's pure modules, in Node (no browser): image sizes read from file headers
// (web/image-header.js) and the choice of compute backend (web/backend-choice.js).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readImageSize } from '../../web/image-header.js';
import { initialChoice, probeChoice, readableNote, isSoftwareAdapter } from '../../web/backend-choice.js';
import { encodePng } from './harness.mjs';

const u16be = (v) => [v >> 8, v & 255];
const u16le = (v) => [v & 255, v >> 8];
const u24le = (v) => [v & 255, (v >> 8) & 255, v >> 16];
const u32le = (v) => [v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >>> 24) & 255];
const bytes = (...parts) => Uint8Array.from(parts.flat());
const ascii = (s) => Array.from(s, (c) => c.charCodeAt(0));

describe('readImageSize', () => {
  it('reads PNG width, height and bit depth from IHDR', () => {
    assert.deepEqual(readImageSize(encodePng(20000, 20000, { idat: Buffer.alloc(8) })), { format: 'PNG', width: 20000, height: 20000, bitDepth: 8, colorType: 2 });
    assert.equal(readImageSize(encodePng(3, 2, { colorType: 0, bitDepth: 16, pixel: () => [0] })).bitDepth, 16);
  });

  it('walks JPEG markers (metadata first) to the frame header', () => {
    const app1 = [0xff, 0xe1, ...u16be(2 + 3000), ...new Array(3000).fill(0)];
    const sof2 = [0xff, 0xc2, ...u16be(17), 8, ...u16be(4000), ...u16be(6000), 3, ...new Array(9).fill(0)];
    assert.deepEqual(readImageSize(bytes([0xff, 0xd8], app1, [0xff, 0xdb, ...u16be(4), 0, 0], sof2)), { format: 'JPEG', width: 6000, height: 4000, bitDepth: 8 });
    // DHT (0xc4) looks like a SOF marker but is not one.
    const dht = [0xff, 0xc4, ...u16be(5), 1, 2, 3];
    const sof0 = [0xff, 0xc0, ...u16be(11), 8, ...u16be(10), ...u16be(20), 1, 1, 0x11, 0];
    assert.deepEqual(readImageSize(bytes([0xff, 0xd8], dht, sof0)), { format: 'JPEG', width: 20, height: 10, bitDepth: 8 });
    assert.equal(readImageSize(bytes([0xff, 0xd8], [0xff, 0xda, 0, 2])), null, 'no frame header before the scan');
  });

  it('reads GIF, WebP (lossy, lossless, extended) and BMP', () => {
    assert.deepEqual(readImageSize(bytes(ascii('GIF89a'), u16le(640), u16le(480))), { format: 'GIF', width: 640, height: 480, bitDepth: 8 });
    const riff = (chunk, body) => bytes(ascii('RIFF'), u32le(100), ascii('WEBP'), ascii(chunk), u32le(body.length), body);
    assert.equal(readImageSize(riff('VP8X', [0, 0, 0, 0, ...u24le(19999), ...u24le(9999), 0, 0])).width, 20000);
    const bits = (300 - 1) | ((200 - 1) << 14);
    const vp8l = readImageSize(riff('VP8L', [0x2f, ...u32le(bits), 0, 0, 0, 0]));
    assert.deepEqual([vp8l.width, vp8l.height], [300, 200]);
    const vp8 = readImageSize(riff('VP8 ', [0, 0, 0, 0x9d, 0x01, 0x2a, ...u16le(1024), ...u16le(768), 0, 0]));
    assert.deepEqual([vp8.width, vp8.height], [1024, 768]);
    const bmp = bytes(ascii('BM'), new Array(16).fill(0), u32le(800), u32le(-600 >>> 0), [1, 0, 24, 0]);
    assert.deepEqual(readImageSize(bmp), { format: 'BMP', width: 800, height: 600, bitDepth: 24 });
  });

  it('says null for what it does not know', () => {
    assert.equal(readImageSize(new TextEncoder().encode('this is plain text, not a PNG')), null);
    assert.equal(readImageSize(new Uint8Array(0)), null);
  });
});

describe('backend choice', () => {
  const swiftshader = { vendor: 'google', architecture: 'swiftshader', device: '', description: '' };
  const gpu = { vendor: 'nvidia', architecture: 'ada', device: '', description: 'NVIDIA GeForce RTX 4070' };

  it('knows software adapters', () => {
    assert.equal(isSoftwareAdapter(swiftshader), true);
    assert.equal(isSoftwareAdapter({ vendor: 'mesa', architecture: '', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' }), true);
    assert.equal(isSoftwareAdapter({ ...gpu, isFallbackAdapter: true }), true);
    assert.equal(isSoftwareAdapter(gpu), false);
  });

  it('chooses the CPU for a software adapter, WebGPU (then a probe) for a real one', () => {
    assert.deepEqual(
      [initialChoice({ hasGpuApi: true, adapter: swiftshader }).want, initialChoice({ hasGpuApi: true, adapter: swiftshader }).probe],
      ['cpu', false],
    );
    assert.match(initialChoice({ hasGpuApi: true, adapter: swiftshader }).reason, /software one \(google \/ swiftshader\)/);
    const real = initialChoice({ hasGpuApi: true, adapter: gpu });
    assert.deepEqual([real.want, real.probe], ['webgpu', true]);
    assert.equal(initialChoice({ hasGpuApi: false, adapter: null }).want, 'cpu');
    assert.equal(initialChoice({ hasGpuApi: true, adapter: null }).want, 'cpu');
  });

  it('follows ?backend=', () => {
    assert.equal(initialChoice({ preference: 'cpu', hasGpuApi: true, adapter: gpu }).want, 'cpu');
    const forced = initialChoice({ preference: 'webgpu', hasGpuApi: true, adapter: swiftshader });
    assert.deepEqual([forced.want, forced.probe], ['webgpu', false]);
    assert.match(forced.reason, /much slower than the CPU fallback/);
    const measure = initialChoice({ preference: 'measure', hasGpuApi: true, adapter: swiftshader });
    assert.deepEqual([measure.want, measure.probe], ['webgpu', true]);
  });

  it('keeps the faster backend after the probe, with the figures', () => {
    assert.equal(probeChoice({ webgpuMs: 400, cpuMs: 3 }).backend, 'cpu');
    assert.match(probeChoice({ webgpuMs: 400, cpuMs: 3 }).reason, /400 ms per prediction on WebGPU, 3\.0 ms on the CPU fallback/);
    assert.equal(probeChoice({ webgpuMs: 2, cpuMs: 30 }).backend, 'webgpu');
  });

  it('turns the engine’s Rust debug note into words', () => {
    const raw = 'WebGPU is not available (AdapterUnavailable { device: WgpuDevice { id: 0, kind: DefaultDevice } }); running on the CPU inside WebAssembly';
    assert.equal(readableNote(raw), 'WebGPU is not available; running on the CPU inside WebAssembly');
    assert.equal(readableNote('WebGPU adapter of this browser'), 'WebGPU adapter of this browser');
  });
});
