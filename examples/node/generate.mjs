// node generate.mjs BUNDLE LABEL SEED OUT.pgm [--variant fp32|fp16|int8] [--truncation PSI]
//                   [--public-key public.pem]
// One image from a verified bundle, written as a binary PGM (P5, maxval 255; an RGB bundle: PPM,
// P6): the same pixel bytes as `Generator.load(BUNDLE).generate([LABEL], seed=SEED)` in Python. With --public-key
// the bundle must carry a bundle.sig by that key over exactly its files.

import { writeFileSync } from "node:fs";

import { openGenerator } from "./bundle.mjs";
import { parseSeed } from "../js/edgegen.mjs";

function parseArgs(argv) {
  const positional = [];
  const options = { variant: "fp32", truncation: null, publicKey: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--variant") options.variant = argv[++i];
    else if (argv[i] === "--public-key") options.publicKey = argv[++i];
    else if (argv[i] === "--truncation") options.truncation = Number(argv[++i]);
    else positional.push(argv[i]);
  }
  if (positional.length !== 4) {
    throw new Error("usage: node generate.mjs BUNDLE LABEL SEED OUT.pgm [--variant fp32] [--truncation PSI]");
  }
  const [bundle, label, seed, out] = positional;
  if (!/^[0-9]+$/.test(label)) throw new Error(`LABEL must be a class index such as 7, got ${JSON.stringify(label)}`);
  return { bundle, label: Number(label), seed: parseSeed(seed), out, ...options };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { manifest, generator } = await openGenerator(args.bundle, { variant: args.variant, publicKey: args.publicKey });
  const { u8, shape } = await generator.generate([args.label], args.seed, { truncation: args.truncation });
  const [channels, height, width] = shape;
  const magic = channels === 3 ? "P6" : "P5";
  writeFileSync(args.out, Buffer.concat([Buffer.from(`${magic}\n${width} ${height}\n255\n`, "ascii"), Buffer.from(u8)]));
  console.log(`wrote ${args.out}: label ${args.label}, seed ${args.seed}, ${args.variant}, ${width}x${height} uint8`);
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
