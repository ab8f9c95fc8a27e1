// The "same bytes everywhere" check, shared by the Node test (bundles.test.js) and the browser
// page (browser/run.js): for each bundle of a cases file written by the Python tests
// (tests/examples/conftest.py), check the goldens and the latent vectors, run every job — a
// batch of (label, seed) pairs on a variant, with truncation, the guard, another sampler
// setting, or a golden set's own latents — in one batched request, and count the bytes that
// differ from the Python runtime's (base64 in the file). Returns a report; asserts nothing.
import { checkGoldens, latent } from "edgegen-runtime";

export function b64(text) {
  const bin = atob(text);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function options(job, g) {
  const o = { variant: job.variant };
  if (job.latent) o.z = latent(job.latent.seed, job.labels.length, g.zDim, job.latent.start);
  else o.seeds = job.seeds;
  for (const k of ["truncation", "guard", "steps", "guidance"]) if (job[k] !== undefined && job[k] !== null) o[k] = job[k];
  return o;
}

/** One job's run against Python's bytes: images, pixels and bytes that differ, and for a
 * guarded job the redraw counts that differ. */
export async function runJob(g, job) {
  const t0 = performance.now();
  const run = await g.run(job.labels, options(job, g));
  const seconds = (performance.now() - t0) / 1e3;
  const want = b64(job.expected);
  const got = run.images;
  const per = got.length / job.labels.length;
  let bytes = got.length === want.length ? 0 : Math.max(got.length, want.length);
  let images = 0;
  let maxLevels = got.length === want.length ? 0 : 255;
  for (let i = 0; i < job.labels.length && got.length === want.length; i++) {
    let diff = 0;
    for (let k = i * per; k < (i + 1) * per; k++) {
      if (got[k] !== want[k]) { diff++; maxLevels = Math.max(maxLevels, Math.abs(got[k] - want[k])); }
    }
    bytes += diff;
    if (diff) images++;
  }
  const attemptsDiffer = job.attempts ? job.attempts.filter((a, i) => a !== run.attempts[i]).length : null;
  return {
    name: job.name, variant: job.variant, images: job.labels.length, bytes: got.length, differing_bytes: bytes,
    differing_images: images, max_level_diff: maxLevels, attempts_differ: attemptsDiffer, seconds,
  };
}

/** Every bundle of `cases` (open(name) gives its Generator): goldens, vectors and jobs. */
export async function runCases(cases, open) {
  const out = [];
  for (const c of cases.bundles) {
    const g = await open(c);
    const goldens = await checkGoldens(g);
    const jobs = [];
    for (const job of c.jobs) jobs.push(await runJob(g, job));
    out.push({ bundle: c.name, format: g.format, signature: g.signature.status, goldens, jobs });
    await g.release();
  }
  return out;
}
