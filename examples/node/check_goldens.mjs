// node check_goldens.mjs BUNDLE [--variant fp32] [--pairs LABEL:SEED,...] [--json OUT.json]
//                        [--public-key public.pem]
// The bundle is checked first like edgegen.runtime does (schema, file rules, every sha256 and,
// with --public-key, bundle.sig); every golden file is read once and checked before use.
// (a) runs every golden test set through onnxruntime-node and matches output_0.pb within the
//     manifest's suggested atol (1e-5), after checking that input_0.pb is exactly the portable
//     latent of the set's seed and start;
// (b) checks the manifest's latent test vectors bit for bit;
// (c) generates the uint8 bytes of (label, seed) pairs, one request each, and writes them (hex)
//     to OUT.json for a Python test to compare with edgegen.runtime byte for byte.
// Exits 1 when (a) or (b) fails.

import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";

import { openGenerator, ort } from "./bundle.mjs";
import { latent, parseSeed, retrySeed, safeRelative, truncate } from "../js/edgegen.mjs";
import { readTensor } from "./tensorproto.mjs";

const DEFAULT_PAIRS = "0:0,1:1,2:42,3:18446744073709551615,4:1234567890123,5:7,6:99,7:42,8:9007199254740993,9:31337";

function parseArgs(argv) {
  const options = { variant: "fp32", pairs: DEFAULT_PAIRS, json: null, bundle: null, publicKey: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--variant") options.variant = argv[++i];
    else if (argv[i] === "--public-key") options.publicKey = argv[++i];
    else if (argv[i] === "--pairs") options.pairs = argv[++i];
    else if (argv[i] === "--json") options.json = argv[++i];
    else if (options.bundle === null) options.bundle = argv[i];
    else throw new Error(`unexpected argument ${argv[i]}`);
  }
  if (!options.bundle) throw new Error("usage: node check_goldens.mjs BUNDLE [--variant fp32] [--pairs 7:42,...] [--json OUT.json]");
  options.pairs = options.pairs.split(",").map((p) => {
    const [label, seed] = p.split(":");
    return { label: Number(label), seed: parseSeed(seed) };
  });
  return options;
}

function hex32(values) {
  const dv = new DataView(values.buffer, values.byteOffset, values.byteLength);
  return Array.from({ length: values.length }, (_, i) => dv.getUint32(i * 4, true).toString(16).padStart(8, "0"));
}

async function checkGoldens(read, manifest, session) {
  const gen = manifest.generator;
  const atol = manifest.golden.suggested_atol ?? 1e-5;
  let ok = true;
  for (const set of manifest.golden.sets) {
    const dir = safeRelative(set.dir);
    const feeds = {};
    gen.inputs.forEach((input, k) => {
      const t = readTensor(read(`${dir}/input_${k}.pb`));
      const type = input.dtype === "int64" ? "int64" : "float32";
      feeds[input.name] = new ort.Tensor(type, t.data, t.dims);
    });
    const expected = readTensor(read(`${dir}/output_0.pb`));
    const z = feeds[gen.inputs[0].name].data;
    const ours = latent(parseSeed(set.seed), set.batch, gen.z_dim, set.start);
    const zExact = ours.length === z.length && ours.every((v, i) => Object.is(v, z[i]));
    const got = (await session.run(feeds))[gen.outputs[0].name].data;
    let maxDiff = got.length === expected.data.length ? 0 : Infinity;
    for (let i = 0; i < got.length && maxDiff !== Infinity; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - expected.data[i]));
    const pass = zExact && maxDiff <= atol;
    ok &&= pass;
    console.log(`golden ${set.dir}: batch ${set.batch}, max |diff| ${maxDiff.toExponential(2)} (atol ${atol.toExponential(0)}), `
      + `z ${zExact ? "= latent(seed, start) bit for bit" : "DIFFERS from the portable latent"} ... ${pass ? "ok" : "FAIL"}`);
  }
  return ok;
}

function checkVectors(manifest) {
  let ok = true;
  for (const tv of manifest.latent.test_vectors) {
    const got = hex32(latent(parseSeed(tv.seed), tv.n, tv.z_dim));
    const pass = got.length === tv.float32_hex.length && got.every((h, i) => h === tv.float32_hex[i]);
    ok &&= pass;
    console.log(`latent test vector seed ${tv.seed} n ${tv.n} z_dim ${tv.z_dim}: ${got.length} float32 ${pass ? "bit for bit ok" : `FAIL (${got.join(",")})`}`);
  }
  const extra = manifest.latent.extra_test_vectors ?? { truncation: [], retry_seed: [] };
  for (const tv of extra.truncation) {
    const got = hex32(truncate(latent(parseSeed(tv.seed), tv.n, tv.z_dim), tv.psi));
    const pass = got.every((h, i) => h === tv.float32_hex[i]) && got.length === tv.float32_hex.length;
    ok &&= pass;
    console.log(`truncation test vector seed ${tv.seed} psi ${tv.psi}: ${pass ? "bit for bit ok" : `FAIL (${got.join(",")})`}`);
  }
  for (const tv of extra.retry_seed) {
    const got = retrySeed(parseSeed(tv.seed), tv.attempt).toString();
    const pass = got === tv.retry_seed;
    ok &&= pass;
    console.log(`retry seed test vector seed ${tv.seed} attempt ${tv.attempt}: ${pass ? "ok" : `FAIL (${got})`}`);
  }
  return ok;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { manifest, read, session, generator, signature } = await openGenerator(args.bundle, { variant: args.variant, publicKey: args.publicKey });
  console.log(`bundle ${args.bundle}: schema, paths and ${Object.keys(manifest.files).length} sha256 ok; signature: ${signature.status}; onnxruntime-node ${ort.env.versions.node}`);
  let goldens = true;
  if (args.variant === "fp32") goldens = await checkGoldens(read, manifest, session);
  else console.log(`goldens: skipped for ${args.variant} (they are fp32 references; see the manifest's deviation_from_fp32)`);
  const vectors = checkVectors(manifest);
  const pairs = [];
  for (const { label, seed } of args.pairs) {
    const { u8 } = await generator.generate([label], seed);
    const digest = createHash("sha256").update(u8).digest("hex");
    pairs.push({ label, seed: seed.toString(), variant: args.variant, u8_hex: Buffer.from(u8).toString("hex") });
    console.log(`generated label ${label} seed ${seed}: sha256 ${digest.slice(0, 16)}`);
  }
  if (args.json) writeFileSync(args.json, JSON.stringify({ onnxruntime_node: ort.env.versions.node, pairs }, null, 1));
  const ok = goldens && vectors;
  console.log(ok ? "all checks passed" : "CHECKS FAILED");
  process.exit(ok ? 0 : 1);
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
