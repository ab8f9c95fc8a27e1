// The packed package against the Python runtime, on the bundles of a cases file
// (EDGEGEN_TEST_CASES, written by tests/examples; bundles under EDGEGEN_TEST_BUNDLES): goldens
// and latent vectors pass, and every job gives Python's bytes, 0 differing. The counts go to
// EDGEGEN_TEST_REPORT (JSON) for the Python test to report. Skipped without the variables.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { loadBundle } from "edgegen-runtime";

import { runCases } from "./cases.js";

const { EDGEGEN_TEST_CASES: casesFile, EDGEGEN_TEST_BUNDLES: bundles, EDGEGEN_TEST_REPORT: reportFile } = process.env;

test("goldens reproduce and every job gives the Python runtime's bytes", { skip: !casesFile && "EDGEGEN_TEST_CASES is not set" }, async () => {
  const cases = JSON.parse(readFileSync(casesFile, "utf8"));
  const results = await runCases(cases, (c) => loadBundle(join(bundles, c.name), { format: c.format ?? "onnx" }));
  if (reportFile) writeFileSync(reportFile, JSON.stringify({ reader: "node", versions: process.versions, results }, null, 1));
  for (const r of results) {
    assert.ok(r.goldens.passed, `${r.bundle}: goldens ${JSON.stringify(r.goldens.sets)}`);
    for (const j of r.jobs) {
      assert.equal(j.differing_bytes, 0, `${r.bundle} ${j.name}: ${j.differing_bytes} bytes differ`);
      assert.ok(!j.attempts_differ, `${r.bundle} ${j.name}: ${j.attempts_differ} redraw counts differ`);
    }
  }
});
