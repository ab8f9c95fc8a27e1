// `npm pack` hooks. The package ships the one JSON Schema of the manifest, a validator that ajv
// compiled from it, and the licence; the repository keeps each source file once
// (runtime/src/edgegen/runtime/bundle.schema.json, LICENSE) and never the generated one.
//   node scripts/schema.js copy   (prepack) copies the schema and LICENSE into the package and
//                                 writes bundle.schema.validate.js: ajv's standalone code for
//                                 the schema (ESM), stamped with the schema's sha256, so a
//                                 reader skips compiling the schema at run time (the slowest
//                                 part of a cold start) and refuses the code for another schema;
//   node scripts/schema.js clean  (postpack) removes the three again.
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";

import Ajv2020 from "ajv/dist/2020.js";
import standaloneCode from "ajv/dist/standalone/index.js";
import ucs2length from "ajv/dist/runtime/ucs2length.js";

const here = (rel) => new URL(rel, import.meta.url);
const SCHEMA = here("../bundle.schema.json");
const VALIDATOR = here("../bundle.schema.validate.js");
const COPIES = [
  [here("../../runtime/src/edgegen/runtime/bundle.schema.json"), SCHEMA],
  [here("../../LICENSE"), here("../LICENSE")],
];
export const AJV_OPTIONS = { allErrors: false, strict: false }; // what src/manifest.js compiles with

function writeValidator() {
  const text = readFileSync(SCHEMA);
  const ajv = new Ajv2020({ ...AJV_OPTIONS, code: { source: true, esm: true } });
  let code = standaloneCode.default(ajv, ajv.compile(JSON.parse(text)));
  // ajv's one runtime helper (string length in code points, as Python's jsonschema counts),
  // inlined from ajv itself so the module imports nothing (it runs in a page without a bundler)
  const helper = 'require("ajv/dist/runtime/ucs2length").default';
  code = code.replaceAll(helper, "ucs2length");
  if (code.includes("require(")) throw new Error("ajv's standalone code needs a runtime module this script does not inline");
  const digest = createHash("sha256").update(text).digest("hex");
  writeFileSync(VALIDATOR, `// Generated at \`npm pack\` by scripts/schema.js with ajv ${JSON.parse(readFileSync(new URL("../node_modules/ajv/package.json", import.meta.url))).version} from bundle.schema.json; do not edit.\n`
    + `export const SCHEMA_SHA256 = "${digest}";\n${ucs2length.default.toString()}\n${code.replace(/^"use strict";/, "")}\n`);
}

const action = process.argv[2];
if (action === "copy") {
  for (const [from, to] of COPIES) copyFileSync(from, to);
  writeValidator();
} else if (action === "clean") {
  for (const to of [SCHEMA, VALIDATOR, here("../LICENSE")]) rmSync(to, { force: true });
} else {
  console.error("usage: node scripts/schema.js copy|clean");
  process.exit(2);
}
