// The portable latent (edgegen.runtime.latent), bit for bit: SplitMix64 words (BigInt, modulo
// 2**64) -> 53-bit uniforms (exact doubles) -> Box-Muller in doubles (Math.log/sqrt/cos/sin, as
// numpy's float64 calls) -> float32 (Math.fround: round to nearest, ties to even). Every bundle
// carries test vectors of it (manifest.latent.test_vectors); checkGoldens() checks them.
import { RuntimeInputError } from "./errors.js";

export const LATENT = "splitmix64-boxmuller-f64-to-f32/1";
export const MAX_SEED = (1n << 64n) - 1n;
const GAMMA = 0x9e3779b97f4a7c15n;
const MIX1 = 0xbf58476d1ce4e5b9n;
const MIX2 = 0x94d049bb133111ebn;
const RETRY_STEP = 0xd1b54a32d192ed03n;
const TWO_PI = 6.283185307179586;
const TWO_M53 = 2 ** -53;

/**
 * A seed as a BigInt in [0, 2**64): a BigInt, a safe non-negative integer Number, or a decimal
 * string (seeds above 2**53 do not fit a Number exactly: pass them as a BigInt or a string).
 */
export function parseSeed(value, what = "seed") {
  let seed;
  if (typeof value === "bigint") seed = value;
  else if (typeof value === "number" && Number.isSafeInteger(value)) seed = BigInt(value);
  else if (typeof value === "string" && /^[0-9]{1,20}$/.test(value.trim())) seed = BigInt(value.trim());
  else if (typeof value === "number" && Number.isInteger(value)) {
    throw new RuntimeInputError(`${what} ${value} is above 2**53 and not exact as a Number; pass it as a BigInt or a decimal string, e.g. ${what}: "${BigInt(value)}"`);
  } else {
    throw new RuntimeInputError(`${what} must be an integer in [0, 2**64) (a Number, BigInt or decimal string), got ${describe(value)}; e.g. { seed: 42 }`);
  }
  if (seed < 0n || seed > MAX_SEED) throw new RuntimeInputError(`${what} = ${seed} is outside [0, 2**64): seeds are unsigned 64-bit integers`);
  return seed;
}

export function describe(value) {
  let text;
  try {
    text = typeof value === "bigint" ? `${value}n` : typeof value === "string" ? JSON.stringify(value) : String(value);
    if (Array.isArray(value)) text = `[${value.map((v) => (typeof v === "string" ? JSON.stringify(v) : String(v))).join(", ")}]`;
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

/** SplitMix64's k-th output for `seed` (both BigInt): mix(seed + (k + 1) * GAMMA). */
export function word(seed, k) {
  let x = (seed + (k + 1n) * GAMMA) & MAX_SEED;
  x = ((x ^ (x >> 30n)) * MIX1) & MAX_SEED;
  x = ((x ^ (x >> 27n)) * MIX2) & MAX_SEED;
  return x ^ (x >> 31n);
}

/** Fill out[offset ...] with sample `row` of `seed`'s stream (zDim float32 values). */
function fillRow(out, offset, seed, row, zDim) {
  const pairs = Math.ceil(zDim / 2);
  let k = 2n * BigInt(row) * BigInt(pairs);
  for (let j = 0; j < pairs; j++, k += 2n) {
    // 53-bit integers convert to doubles exactly; so do their products by 2**-53.
    const u1 = Number((word(seed, k) >> 11n) + 1n) * TWO_M53; // (0, 1]
    const u2 = Number(word(seed, k + 1n) >> 11n) * TWO_M53; // [0, 1)
    const r = Math.sqrt(-2 * Math.log(u1));
    const t = TWO_PI * u2;
    out[offset + 2 * j] = Math.fround(r * Math.cos(t));
    if (2 * j + 1 < zDim) out[offset + 2 * j + 1] = Math.fround(r * Math.sin(t));
  }
}

/** Samples start .. start + n - 1 of `seed`'s stream: a Float32Array [n * zDim], row-major. */
export function latent(seed, n, zDim, start = 0) {
  const s = parseSeed(seed);
  if (!(Number.isInteger(n) && n >= 0 && Number.isInteger(zDim) && zDim > 0 && Number.isInteger(start) && start >= 0)) {
    throw new RuntimeInputError(`need n >= 0, zDim > 0, start >= 0 (integers); got ${n}, ${zDim}, ${start}`);
  }
  const out = new Float32Array(n * zDim);
  for (let i = 0; i < n; i++) fillRow(out, i * zDim, s, start + i, zDim);
  return out;
}

/** One latent per seed (sample 0 of each seed's stream): Float32Array [seeds.length * zDim]. */
export function latentForSeeds(seeds, zDim) {
  const out = new Float32Array(seeds.length * zDim);
  seeds.forEach((s, i) => fillRow(out, i * zDim, parseSeed(s), 0, zDim));
  return out;
}

/** The seed of the guard's attempt `a` (attempt 0 is the seed itself): BigInt. */
export function retrySeed(seed, attempt) {
  return (parseSeed(seed) + BigInt(attempt) * RETRY_STEP) & MAX_SEED;
}

/** z = float32(z * float32(psi)); a product of two float32 is exact in doubles, so fround
 * rounds once, as numpy's float32 multiply does. null/undefined/1 leave z unchanged. */
export function truncate(z, psi) {
  if (psi === null || psi === undefined || psi === 1) return z;
  const p = Math.fround(psi);
  const out = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) out[i] = Math.fround(z[i] * p);
  return out;
}

/** Float32 values as the manifest's test vectors write them: 8 hex digits of the bits. */
export function float32Hex(values) {
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  return Array.from(bits, (b) => b.toString(16).padStart(8, "0"));
}
