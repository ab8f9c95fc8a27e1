// The one post-processing rule (edgegen.runtime.postprocess) and its image files.
// u8 = clamp(floor((float64(x) + 1.0) * 127.5 + 0.5), 0, 255): every step is one IEEE double
// operation, so numpy, JavaScript and C give the same bytes. encodePgm/encodePng write the same
// bytes as Python's encode_pgm/encode_png (PNG: stored deflate blocks, no compressor choices).
import { BundleError } from "./errors.js";

export const RULE = "u8 = clamp(floor((float64(x) + 1.0) * 127.5 + 0.5), 0, 255)";

/** The uint8 rule on float32 values in [-1, 1] (a JavaScript number is a double). */
export function toUint8(values) {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (!Number.isFinite(x)) throw new BundleError(`the model produced ${x} at value ${i}; the bundle is broken — re-export it or use another variant`);
    out[i] = Math.min(255, Math.max(0, Math.floor((x + 1.0) * 127.5 + 0.5)));
  }
  return out;
}

/**
 * float32 images [n, C, H, W] -> what a user sees, as the Python runtime lays it out: uint8
 * [n, H, W] for one channel, [n, H, W, C] (interleaved, as image files store RGB) for more.
 */
export function toPixels(values, [c, h, w]) {
  const u8 = toUint8(values);
  if (c === 1) return u8;
  const out = new Uint8Array(u8.length);
  const plane = h * w;
  for (let n0 = 0; n0 < u8.length; n0 += c * plane) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < plane; i++) out[n0 + i * c + ch] = u8[n0 + ch * plane + i];
    }
  }
  return out;
}

const ascii = (text) => new TextEncoder().encode(text);

function concat(parts) {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** Binary PGM (P5) of one grey image [H, W] (uint8, row-major); PPM (P6) for channels = 3. */
export function encodePgm(pixels, [c, h, w]) {
  if (pixels.length !== c * h * w || (c !== 1 && c !== 3)) throw new RangeError(`expected ${c * h * w} pixels of a grey or RGB image, got ${pixels.length}`);
  return concat([ascii(`${c === 3 ? "P6" : "P5"}\n${w} ${h}\n255\n`), pixels]);
}

let crcTable = null;
function crc32(bytes) {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function adler32(bytes) {
  let a = 1;
  let b = 0;
  for (const x of bytes) { a = (a + x) % 65521; b = (b + a) % 65521; }
  return ((b << 16) | a) >>> 0;
}

const u32be = (v) => Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);

function chunk(kind, data) {
  const body = concat([ascii(kind), data]);
  return concat([u32be(data.length), body, u32be(crc32(body))]);
}

/** PNG (8-bit grey, or RGB for channels = 3), no interlace, filter 0, stored deflate blocks:
 * the bytes of edgegen.runtime.postprocess.encode_png for the same pixels. */
export function encodePng(pixels, [c, h, w]) {
  if (pixels.length !== c * h * w || (c !== 1 && c !== 3)) throw new RangeError(`expected ${c * h * w} pixels of a grey or RGB image, got ${pixels.length}`);
  const row = w * c;
  const raw = new Uint8Array(h * (row + 1)); // every scanline starts with filter type 0
  for (let y = 0; y < h; y++) raw.set(pixels.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  const blocks = [Uint8Array.of(0x78, 0x01)];
  const count = Math.max(1, Math.ceil(raw.length / 0xffff));
  for (let i = 0; i < count; i++) {
    const block = raw.subarray(i * 0xffff, (i + 1) * 0xffff);
    const n = block.length;
    blocks.push(Uint8Array.of(i === count - 1 ? 1 : 0, n & 255, n >>> 8, ~n & 255, (~n >>> 8) & 255), block);
  }
  blocks.push(u32be(adler32(raw)));
  const header = concat([u32be(w), u32be(h), Uint8Array.of(8, c === 3 ? 2 : 0, 0, 0, 0)]);
  return concat([Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a), chunk("IHDR", header),
    chunk("IDAT", concat(blocks)), chunk("IEND", new Uint8Array(0))]);
}
