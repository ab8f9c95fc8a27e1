// node check_goldens.mjs BUNDLE [--variant fp32] [--pairs LABEL:SEED,...] [--json OUT.json]
//                        [--public-key public.pem] [--format onnx|ort]
// A user of the edgegen-runtime package. The bundle is checked first (schema, file rules, every
// sha256 and, with --public-key, bundle.sig); then
// (a) every golden test set runs through onnxruntime-node and matches output_0.pb within the
//     manifest's suggested atol, after checking that input_0.pb is exactly the portable latent
//     of the set's seed and start (checkGoldens);
// (b) the manifest's latent test vectors are checked bit for bit (checkLatentVectors);
// (c) the uint8 bytes of (label, seed) pairs, one request each, go (hex) to OUT.json for a Python
//     test to compare with edgegen.runtime byte for byte.
// Exits 1 when (a) or (b) fails.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";

import { checkGoldens, checkLatentVectors, loadBundle, parseSeed } from "edgegen-runtime";

import { parseArgs } from "./args.mjs";

const DEFAULT_PAIRS = "0:0,1:1,2:42,3:18446744073709551615,4:1234567890123,5:7,6:99,7:42,8:9007199254740993,9:31337";

async function main() {
  const { values, positionals } = parseArgs(process.argv.slice(2), { variant: "fp32", pairs: DEFAULT_PAIRS, json: undefined, "public-key": undefined, format: "onnx" });
  if (positionals.length !== 1) throw new Error("usage: node check_goldens.mjs BUNDLE [--variant fp32] [--pairs 7:42,...] [--json OUT.json]");
  const pairs = values.pairs.split(",").map((p) => { const [label, seed] = p.split(":"); return { label: Number(label), seed: parseSeed(seed) }; });
  const g = await loadBundle(positionals[0], { publicKey: values["public-key"] ?? null, format: values.format, schema: process.env.EDGEGEN_BUNDLE_SCHEMA });
  console.log(`bundle ${positionals[0]}: schema, paths and ${Object.keys(g.manifest.files).length} sha256 ok; signature: ${g.signature.status}; onnxruntime-node ${g.ort.env.versions.node}`);
  let ok = true;
  if (values.variant === "fp32") {
    const res = await checkGoldens(g);
    for (const s of res.sets) {
      ok &&= s.ok;
      console.log(`golden ${s.dir}: batch ${s.batch}, max |diff| ${s.maxAbs.toExponential(2)} (atol ${s.atol.toExponential(0)}), `
        + `z ${s.zExact === false ? "DIFFERS from the portable latent" : "= latent(seed, start) bit for bit"} ... ${s.ok ? "ok" : "FAIL"}`);
    }
  } else {
    console.log(`goldens: skipped for ${values.variant} (they are fp32 references; see the manifest's deviation_from_fp32)`);
  }
  for (const v of checkLatentVectors(g.manifest)) {
    ok &&= v.ok;
    const what = v.what === "latent" ? `latent test vector seed ${v.seed} n ${v.n} z_dim ${v.z_dim}: ${v.values} float32`
      : v.what === "truncation" ? `truncation test vector seed ${v.seed} psi ${v.psi}:` : `retry seed test vector seed ${v.seed} attempt ${v.attempt}:`;
    console.log(`${what} ${v.ok ? (v.what === "retry seed" ? "ok" : "bit for bit ok") : "FAIL"}`);
  }
  const out = [];
  for (const { label, seed } of pairs) {
    const u8 = await g.generate([label], { seed, variant: values.variant });
    out.push({ label, seed: seed.toString(), variant: values.variant, u8_hex: Buffer.from(u8).toString("hex") });
    console.log(`generated label ${label} seed ${seed}: sha256 ${createHash("sha256").update(u8).digest("hex").slice(0, 16)}`);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ onnxruntime_node: g.ort.env.versions.node, pairs: out }, null, 1));
  console.log(ok ? "all checks passed" : "CHECKS FAILED");
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
