// node generate.mjs BUNDLE LABEL SEED OUT.pgm [--variant fp32|fp16|int8] [--truncation PSI]
//                   [--public-key public.pem] [--format onnx|ort]
// One image from a verified bundle, written as a binary PGM (P5; an RGB bundle: PPM, P6): the
// same pixel bytes as `Generator.load(BUNDLE).generate([LABEL], seed=SEED)` in Python. A user of
// the edgegen-runtime package: loadBundle checks everything first (schema, file rules, every
// sha256 and, with --public-key, bundle.sig). EDGEGEN_BUNDLE_SCHEMA: validate with another
// schema file instead of the package's.
import { writeFileSync } from "node:fs";

import { encodePgm, loadBundle, parseSeed } from "edgegen-runtime";

import { parseArgs } from "./args.mjs";

async function main() {
  const { values, positionals } = parseArgs(process.argv.slice(2), { variant: "fp32", truncation: undefined, "public-key": undefined, format: "onnx" });
  if (positionals.length !== 4) throw new Error("usage: node generate.mjs BUNDLE LABEL SEED OUT.pgm [--variant fp32] [--truncation PSI]");
  const [bundle, label, seed, out] = positionals;
  if (!/^[0-9]+$/.test(label)) throw new Error(`LABEL must be a class index such as 7, got ${JSON.stringify(label)}`);
  const g = await loadBundle(bundle, { publicKey: values["public-key"] ?? null, format: values.format, schema: process.env.EDGEGEN_BUNDLE_SCHEMA });
  const truncation = values.truncation === undefined ? null : Number(values.truncation);
  const u8 = await g.generate([Number(label)], { seed: parseSeed(seed), variant: values.variant, truncation });
  writeFileSync(out, encodePgm(u8, g.imageShape));
  const [, height, width] = g.imageShape;
  console.log(`wrote ${out}: label ${label}, seed ${seed}, ${values.variant}, ${width}x${height} uint8`);
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
