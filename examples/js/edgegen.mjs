// The parts of edgegen that an app reimplements, in plain JavaScript (Node.js and browsers):
// the portable latent, the uint8 rule and the guard, each as the bundle's manifest words it.
// Shared by examples/node and examples/web; the ONNX Runtime package is passed in (`ort`), since
// onnxruntime-node and onnxruntime-web have the same API.

export const SCHEMA = "edgegen.bundle/1";
export const LATENT = "splitmix64-boxmuller-f64-to-f32/1";
export const RULE = "u8 = clamp(floor((float64(x) + 1.0) * 127.5 + 0.5), 0, 255)";
export const GUARD = { maxRetries: 4, minProb: 0.5 }; // edgegen.runtime.guard's defaults

const M64 = (1n << 64n) - 1n;
const GAMMA = 0x9e3779b97f4a7c15n;
const MIX1 = 0xbf58476d1ce4e5b9n;
const MIX2 = 0x94d049bb133111ebn;
const RETRY_STEP = 0xd1b54a32d192ed03n;
const TWO_PI = 6.283185307179586;
const TWO_M53 = 2 ** -53;

/** A seed from text or a number: an integer in [0, 2**64), as a BigInt. */
export function parseSeed(value) {
  const text = String(value).trim();
  if (!/^[0-9]+$/.test(text)) throw new Error(`seed must be an integer in [0, 2**64), got ${JSON.stringify(value)}`);
  const seed = BigInt(text);
  if (seed > M64) throw new Error(`seed ${text} is outside [0, 2**64)`);
  return seed;
}

/** SplitMix64's k-th output for `seed` (both BigInt): mix(seed + (k + 1) * GAMMA). */
function word(seed, k) {
  let x = (seed + (k + 1n) * GAMMA) & M64;
  x = ((x ^ (x >> 30n)) * MIX1) & M64;
  x = ((x ^ (x >> 27n)) * MIX2) & M64;
  return x ^ (x >> 31n);
}

/** Samples start .. start + n - 1 of `seed`'s stream: a Float32Array [n * zDim], row-major. */
export function latent(seed, n, zDim, start = 0) {
  const pairs = Math.ceil(zDim / 2);
  const out = new Float32Array(n * zDim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < pairs; j++) {
      const k1 = 2n * (BigInt(start + i) * BigInt(pairs) + BigInt(j));
      // 53-bit integers convert to doubles exactly; the products by 2**-53 are exact too.
      const u1 = Number((word(seed, k1) >> 11n) + 1n) * TWO_M53; // (0, 1]
      const u2 = Number(word(seed, k1 + 1n) >> 11n) * TWO_M53; // [0, 1)
      const r = Math.sqrt(-2 * Math.log(u1));
      const t = TWO_PI * u2;
      out[i * zDim + 2 * j] = Math.fround(r * Math.cos(t));
      if (2 * j + 1 < zDim) out[i * zDim + 2 * j + 1] = Math.fround(r * Math.sin(t));
    }
  }
  return out;
}

/** The seed of the guard's attempt `a` (attempt 0 is the seed itself). */
export function retrySeed(seed, attempt) {
  return (seed + BigInt(attempt) * RETRY_STEP) & M64;
}

/** z = float32(z * float32(psi)); exact in doubles, since a product of two float32 fits in 53 bits. */
export function truncate(z, psi) {
  if (psi === null || psi === undefined || psi === 1) return z;
  if (!(Number.isFinite(psi) && psi > 0 && psi <= 4)) throw new Error(`truncation must be in (0, 4], got ${psi}`);
  const p = Math.fround(psi);
  return z.map((v) => Math.fround(v * p));
}

/** The uint8 rule on float32 values in [-1, 1] (JavaScript numbers are float64). */
export function toUint8(values) {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (!Number.isFinite(x)) throw new Error(`the model produced ${x} at pixel ${i}`);
    out[i] = Math.min(255, Math.max(0, Math.floor((x + 1.0) * 127.5 + 0.5)));
  }
  return out;
}

/** Refuse a manifest whose schema, latent or uint8 rule is not the one implemented here. */
export function checkContract(manifest) {
  const found = [manifest.schema, manifest.latent?.name, manifest.postprocess?.rule];
  const expected = [SCHEMA, LATENT, RULE];
  const what = ["schema", "latent", "post-processing rule"];
  for (let i = 0; i < 3; i++) {
    if (found[i] !== expected[i]) {
      throw new Error(`the bundle's ${what[i]} is ${JSON.stringify(found[i])}; this app implements ${JSON.stringify(expected[i])}`);
    }
  }
}

/** A manifest path that stays inside the bundle (no absolute path, no "..", no backslash). */
export function safeRelative(rel) {
  if (typeof rel !== "string" || rel.startsWith("/") || rel.includes("\\") || rel.split("/").includes("..")
      || /^[A-Za-z]:/.test(rel)) {
    throw new Error(`manifest path ${JSON.stringify(rel)} leaves the bundle: the manifest was tampered with`);
  }
  return rel;
}

function softmaxAt(logits, row, nClasses) {
  let max = -Infinity;
  for (let c = 0; c < nClasses; c++) max = Math.max(max, logits[row * nClasses + c]);
  const e = [];
  let sum = 0;
  for (let c = 0; c < nClasses; c++) { e.push(Math.exp(logits[row * nClasses + c] - max)); sum += e[c]; }
  return e.map((v) => v / sum);
}

/**
 * A generator over ONNX Runtime sessions: `generate(labels, seed, {truncation, guard})`.
 * Sample i of a request is row i of latent(seed, labels.length, zDim), as in edgegen.runtime;
 * the guard redraws a rejected sample i from row i of retrySeed(seed, a), a = 1..maxRetries.
 */
export function createGenerator(ort, manifest, generatorSession, evaluatorSession = null) {
  checkContract(manifest);
  const gen = manifest.generator;
  const zDim = gen.z_dim;
  const nClasses = gen.n_classes;
  const [zName, labelName] = gen.inputs.map((i) => i.name);
  const imageName = gen.outputs[0].name;
  const pixels = gen.outputs[0].shape.slice(1).reduce((a, b) => a * b, 1);

  async function forward(z, labels) {
    const feeds = {
      [zName]: new ort.Tensor("float32", z, [labels.length, zDim]),
      [labelName]: new ort.Tensor("int64", BigInt64Array.from(labels.map(BigInt)), [labels.length]),
    };
    const out = await generatorSession.run(feeds);
    return out[imageName].data; // Float32Array [n * 1 * 28 * 28]
  }

  async function judge(images, labels) {
    const ev = manifest.evaluator;
    const feeds = { [ev.inputs[0].name]: new ort.Tensor("float32", images, [labels.length, ...ev.inputs[0].shape.slice(1)]) };
    const logits = (await evaluatorSession.run(feeds))[ev.outputs[0].name].data;
    return labels.map((label, i) => {
      const p = softmaxAt(logits, i, nClasses);
      const predicted = p.indexOf(Math.max(...p));
      return { predicted, prob: p[label], accepted: predicted === label && p[label] >= GUARD.minProb };
    });
  }

  async function generate(labels, seed, { truncation = null, guard = false } = {}) {
    for (const y of labels) {
      if (!Number.isInteger(y) || y < 0 || y >= nClasses) throw new Error(`label ${y} is not an integer in 0..${nClasses - 1}`);
    }
    if (labels.length === 0) throw new Error("labels is empty");
    const s = typeof seed === "bigint" ? seed : parseSeed(seed);
    const n = labels.length;
    const images = await forward(truncate(latent(s, n, zDim), truncation), labels);
    const result = { images, attempts: new Array(n).fill(0), verdicts: null };
    if (evaluatorSession && manifest.evaluator) result.verdicts = await judge(images, labels);
    if (!guard) return finish(result);
    if (!result.verdicts) throw new Error("guard needs the evaluator, and this bundle has none");
    for (let a = 1; a <= GUARD.maxRetries; a++) {
      const todo = result.verdicts.flatMap((v, i) => (v.accepted ? [] : [i]));
      if (todo.length === 0) break;
      const zAll = truncate(latent(retrySeed(s, a), n, zDim), truncation);
      const z = new Float32Array(todo.length * zDim);
      todo.forEach((i, k) => z.set(zAll.subarray(i * zDim, (i + 1) * zDim), k * zDim));
      const redoLabels = todo.map((i) => labels[i]);
      const redo = await forward(z, redoLabels);
      const verdicts = await judge(redo, redoLabels);
      todo.forEach((i, k) => {
        result.images.set(redo.subarray(k * pixels, (k + 1) * pixels), i * pixels);
        result.verdicts[i] = verdicts[k];
        result.attempts[i] = a;
      });
    }
    return finish(result);
  }

  function finish(result) {
    return { ...result, u8: toUint8(result.images), pixels };
  }

  return { generate, forward, zDim, nClasses, pixels };
}
