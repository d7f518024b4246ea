// Reads an image's width and height from its first bytes (PNG, JPEG, GIF, WebP, BMP), so that an
// enormous image is refused before the browser decodes it whole. Pure: no DOM, usable in tests.

const u16be = (b, i) => (b[i] << 8) | b[i + 1];
const u32be = (b, i) => ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];
const u16le = (b, i) => b[i] | (b[i + 1] << 8);
const u24le = (b, i) => b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);
const i32le = (b, i) => b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
const ascii = (b, i, n) => String.fromCharCode(...b.subarray(i, i + n));

function png(b) {
  if (b.length < 26 || ascii(b, 12, 4) !== 'IHDR') return null;
  return { format: 'PNG', width: u32be(b, 16), height: u32be(b, 20), bitDepth: b[24], colorType: b[25] };
}

function jpeg(b) {
  // Walk the markers up to the first start-of-frame (SOF0..SOF15 but DHT, JPG and DAC).
  let i = 2;
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) return null;
    const m = b[i + 1];
    if (m === 0xff) {
      i++; // fill byte
      continue;
    }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      i += 2; // markers without a length
      continue;
    }
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      return { format: 'JPEG', width: u16be(b, i + 7), height: u16be(b, i + 5), bitDepth: b[i + 4] };
    }
    if (m === 0xda || m === 0xd9) return null; // image data or end before any frame header
    i += 2 + u16be(b, i + 2);
  }
  return null;
}

function webp(b) {
  const chunk = ascii(b, 12, 4);
  if (b.length < (chunk === 'VP8L' ? 25 : 30)) return null;
  if (chunk === 'VP8 ') return { format: 'WebP', width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff, bitDepth: 8 };
  if (chunk === 'VP8L') {
    const bits = b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24);
    return { format: 'WebP', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, bitDepth: 8 };
  }
  if (chunk === 'VP8X') return { format: 'WebP', width: u24le(b, 24) + 1, height: u24le(b, 27) + 1, bitDepth: 8 };
  return null;
}

/**
 * {format, width, height, bitDepth} of an image from its first bytes (a few kB suffice but for
 * JPEGs with large metadata: pass up to 256 kB), or null when the format is not recognised.
 */
export function readImageSize(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (b.length >= 8 && b[0] === 0x89 && ascii(b, 1, 3) === 'PNG') return png(b);
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) return jpeg(b);
  if (b.length >= 10 && ascii(b, 0, 4) === 'GIF8') return { format: 'GIF', width: u16le(b, 6), height: u16le(b, 8), bitDepth: 8 };
  if (b.length >= 16 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return webp(b);
  if (b.length >= 26 && ascii(b, 0, 2) === 'BM') return { format: 'BMP', width: Math.abs(i32le(b, 18)), height: Math.abs(i32le(b, 22)), bitDepth: u16le(b, 28) };
  return null;
}
