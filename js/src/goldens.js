// Self-tests a reader runs on a bundle (docs/embedding.md, "self-test"): the manifest's latent
// test vectors bit for bit, and every golden set through the model within the bundle's atol,
// after checking that each set's input_0.pb is exactly the portable latent of its seed and start.
import { float32Hex, latent, retrySeed, truncate } from "./latent.js";
import { goldenFiles } from "./manifest.js";
import { readTensor } from "./tensorproto.js";

/** Every latent, truncation and retry-seed test vector of the manifest: [{what, ok, ...}]. */
export function checkLatentVectors(manifest) {
  const out = [];
  const same = (a, b) => a.length === b.length && a.every((h, i) => h === b[i]);
  for (const tv of manifest.latent.test_vectors ?? []) {
    const got = float32Hex(latent(tv.seed, tv.n, tv.z_dim));
    out.push({ what: "latent", seed: tv.seed, n: tv.n, z_dim: tv.z_dim, values: got.length, ok: same(got, tv.float32_hex) });
  }
  const extra = manifest.latent.extra_test_vectors ?? {};
  for (const tv of extra.truncation ?? []) {
    const got = float32Hex(truncate(latent(tv.seed, tv.n, tv.z_dim), tv.psi));
    out.push({ what: "truncation", seed: tv.seed, psi: tv.psi, values: got.length, ok: same(got, tv.float32_hex) });
  }
  for (const tv of extra.retry_seed ?? []) {
    const got = retrySeed(tv.seed, tv.attempt).toString();
    out.push({ what: "retry seed", seed: tv.seed, attempt: tv.attempt, got, ok: got === tv.retry_seed });
  }
  return out;
}

/**
 * Run every golden set of `g`'s bundle through `variant` (fp32: the goldens are fp32
 * references; in g's format, so an ORT-format generator checks its .ort file) and compare with
 * output_0.pb within the manifest's suggested atol (default 1e-5). Returns { passed, sets, vectors }.
 */
export async function checkGoldens(g, { variant = "fp32", atol } = {}) {
  const m = g.manifest;
  const tol = atol ?? m.golden.suggested_atol ?? 1e-5;
  const session = await g.session(variant);
  const sets = [];
  for (let k = 0; k < m.golden.sets.length; k++) {
    const set = m.golden.sets[k];
    const [inputs, output] = goldenFiles(m, k, g.root);
    const feeds = {};
    const tensors = [];
    for (const [i, input] of m.generator.inputs.entries()) {
      const t = readTensor(await g.read(inputs[i]));
      tensors.push(t);
      feeds[input.name] = new g.ort.Tensor(input.dtype === "int64" ? "int64" : "float32", t.data, t.dims);
    }
    const expected = readTensor(await g.read(output));
    let zExact = null;
    if (set.seed !== undefined) {
      const ours = latent(set.seed, set.batch ?? tensors[0].dims[0], m.generator.z_dim, set.start ?? 0);
      zExact = ours.length === tensors[0].data.length && ours.every((v, i) => Object.is(v, tensors[0].data[i]));
    }
    const got = (await session.run(feeds))[m.generator.outputs[0].name].data;
    let maxAbs = got.length === expected.data.length ? 0 : Infinity;
    for (let i = 0; i < got.length && maxAbs !== Infinity; i++) {
      const d = Math.abs(got[i] - expected.data[i]);
      maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
    }
    sets.push({ dir: set.dir, batch: tensors[0].dims[0], maxAbs, atol: tol, zExact, ok: maxAbs <= tol && zExact !== false });
  }
  const vectors = checkLatentVectors(m);
  return { passed: sets.every((s) => s.ok) && vectors.every((v) => v.ok), variant, format: g.format, sets, vectors };
}
