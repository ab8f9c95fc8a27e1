// Checks of what a caller hands generate()/run() (edgegen.runtime.inputs): a RuntimeInputError
// with what was found, what is expected and an example — never an ONNX Runtime exception.
import { RuntimeInputError } from "./errors.js";
import { describe, parseSeed } from "./latent.js";

export const MAX_SAMPLES = 1 << 16; // per call, as Python: a server forwarding user input stays bounded
export const MAX_STEPS = 1000;
export const MAX_GUIDANCE = 20;
export const OUTPUTS = ["uint8", "float"];

const isIndex = (v) => (typeof v === "number" && Number.isSafeInteger(v)) || typeof v === "bigint";

function items(value, what, example) {
  const ok = Array.isArray(value) || value instanceof Int32Array || value instanceof Uint8Array
    || value instanceof Uint16Array || value instanceof Int8Array || value instanceof Int16Array
    || value instanceof Uint32Array || value instanceof BigInt64Array || value instanceof BigUint64Array;
  if (!ok) throw new RuntimeInputError(`${what} must be an array of integers, got ${typeof value} ${describe(value)}; e.g. ${example}`);
  const out = Array.from(value);
  out.forEach((v, i) => {
    if (!isIndex(v)) throw new RuntimeInputError(`${what}[${i}] is ${describe(v)} (${typeof v}); ${what} must be integers, e.g. ${example}`);
  });
  if (out.length === 0) throw new RuntimeInputError(`${what} is empty: ask for at least one sample, e.g. [7]`);
  if (out.length > MAX_SAMPLES) throw new RuntimeInputError(`${what} asks for ${out.length} samples; at most ${MAX_SAMPLES} per call — split the request`);
  return out;
}

/** Labels as Numbers, every one an integer in [0, nClasses). */
export function checkLabels(labels, nClasses) {
  return items(labels, "labels", "generate([3, 1, 4], { seed: 42 })").map((v, i) => {
    const n = Number(v);
    if (!(n >= 0 && n < nClasses)) throw new RuntimeInputError(`labels[${i}] = ${v} is out of range: this bundle has ${nClasses} classes, labels 0..${nClasses - 1}`);
    return n;
  });
}

/** One seed per label, each a BigInt in [0, 2**64). */
export function checkSeeds(seeds, n) {
  if (!Array.isArray(seeds) && !(seeds instanceof BigUint64Array)) {
    throw new RuntimeInputError(`seeds must be an array (one seed per label), got ${describe(seeds)}; e.g. { seeds: [11, 12, 13] }`);
  }
  if (seeds.length !== n) throw new RuntimeInputError(`seeds has ${seeds.length} entries for ${n} labels: give one seed per label`);
  return Array.from(seeds, (s, i) => parseSeed(s, `seeds[${i}]`));
}

/** null, or a finite number in (0, 4]. */
export function checkTruncation(psi) {
  if (psi === null || psi === undefined) return null;
  if (typeof psi !== "number" || !(Number.isFinite(psi) && psi > 0 && psi <= 4)) {
    throw new RuntimeInputError(`truncation must be a finite number in (0, 4], got ${describe(psi)}; e.g. { truncation: 0.7 } (smaller: more typical digits)`);
  }
  return psi;
}

/** Caller-given latents: finite values, n * zDim of them, as a Float32Array. */
export function checkLatents(z, n, zDim) {
  if (!(z instanceof Float32Array || z instanceof Float64Array || Array.isArray(z))) {
    throw new RuntimeInputError(`z must be a Float32Array of ${n} x ${zDim} values, got ${describe(z)}`);
  }
  if (z.length !== n * zDim) throw new RuntimeInputError(`z has ${z.length} values; expected ${n} x ${zDim} = ${n * zDim}: one latent of ${zDim} values per label`);
  const out = Float32Array.from(z);
  const bad = out.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new RuntimeInputError(`z[${bad}] is ${z[bad]}: latents must be finite float32 values (NaN or inf, or too large for float32)`);
  return out;
}

export function checkChoice(value, what, choices) {
  if (typeof value !== "string" || !choices.includes(value)) {
    throw new RuntimeInputError(`${what} must be one of ${choices.map((c) => JSON.stringify(c)).join(", ")}, got ${describe(value)}`);
  }
  return value;
}

export function checkFlag(value, what) {
  if (typeof value !== "boolean") throw new RuntimeInputError(`${what} must be true or false, got ${describe(value)}`);
  return value;
}

/** An iterative sampler's step count: an integer in [1, MAX_STEPS]. */
export function checkSteps(steps) {
  if (!(Number.isInteger(steps) && steps >= 1 && steps <= MAX_STEPS)) {
    throw new RuntimeInputError(`steps must be an integer in [1, ${MAX_STEPS}], got ${describe(steps)}; e.g. { steps: 4 }`);
  }
  return steps;
}

/** Classifier-free guidance w: a finite number in [0, MAX_GUIDANCE] (1 = none). */
export function checkGuidance(w) {
  if (typeof w !== "number" || !(Number.isFinite(w) && w >= 0 && w <= MAX_GUIDANCE)) {
    throw new RuntimeInputError(`guidance must be a finite number in [0, ${MAX_GUIDANCE}], got ${describe(w)}; e.g. { guidance: 2 } (1 = no guidance)`);
  }
  return w;
}
