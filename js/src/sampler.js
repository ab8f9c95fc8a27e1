// The iterative sampler of a flow-matching bundle (cflow) over denoiser.onnx, bit for bit the
// loop of edgegen.runtime.sampler (numpy, float32 throughout):
//   t_i = float32(i / N); x_0 = z as [B, C, H, W];
//   v = denoiser(x, t_i, label) when w == 1, else one call on ([x; x], [t_i; t_i], [label; null])
//       giving [v_c; v_u] and v = v_u + float32(w) * (v_c - v_u);
//   x_{i+1} = x_i + float32(t_{i+1} - t_i) * v;  image = clamp(x_N, -1, 1).
// Each float32 operation is done in doubles and rounded once with Math.fround: for +, -, * of
// two float32 values that gives the correctly rounded float32 result (53 >= 2 * 24 + 2 bits, so
// the double rounding is innocuous), which is what numpy computes. The network calls see the
// same batches as Python's (chunks of `batch` samples, doubled when guided).
export const DENOISER_IO = ["x", "t", "label", "velocity"];

/** Float32Array [steps + 1]: t_i = float32(i / steps). */
export function timeGrid(steps) {
  return Float32Array.from({ length: steps + 1 }, (_, i) => i / steps);
}

/** The guided velocity [B * C * H * W] at grid time t (one denoiser call). */
async function velocity(ort, session, x, t, labels, guidance, nullLabel, shape) {
  const [xName, tName, labelName, vName] = DENOISER_IO;
  const b = labels.length;
  const per = x.length / b;
  const w = Math.fround(guidance);
  if (guidance === 1) {
    const out = await session.run({
      [xName]: new ort.Tensor("float32", x, [b, ...shape]),
      [tName]: new ort.Tensor("float32", new Float32Array(b).fill(t), [b]),
      [labelName]: new ort.Tensor("int64", BigInt64Array.from(labels, BigInt), [b]),
    });
    return out[vName].data;
  }
  const xx = new Float32Array(2 * x.length);
  xx.set(x);
  xx.set(x, x.length);
  const yy = new BigInt64Array(2 * b);
  labels.forEach((y, i) => { yy[i] = BigInt(y); yy[b + i] = BigInt(nullLabel); });
  const out = await session.run({
    [xName]: new ort.Tensor("float32", xx, [2 * b, ...shape]),
    [tName]: new ort.Tensor("float32", new Float32Array(2 * b).fill(t), [2 * b]),
    [labelName]: new ort.Tensor("int64", yy, [2 * b]),
  });
  const v = out[vName].data; // [v_c; v_u]
  const guided = new Float32Array(b * per);
  for (let k = 0; k < guided.length; k++) {
    const vc = v[k];
    const vu = v[b * per + k];
    guided[k] = Math.fround(vu + Math.fround(w * Math.fround(vc - vu)));
  }
  return guided;
}

/**
 * float32 images [N * C * H * W] in [-1, 1] for latents z (Float32Array [N * zDim], zDim = C*H*W)
 * and labels (N numbers), run in chunks of `batch` samples.
 */
export async function sample(ort, session, z, labels, { steps, guidance, nullLabel, imageShape, batch = 64 }) {
  const grid = timeGrid(steps);
  const dts = Float32Array.from({ length: steps }, (_, i) => grid[i + 1] - grid[i]);
  const per = imageShape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(labels.length * per);
  for (let s = 0; s < labels.length; s += batch) {
    const y = labels.slice(s, s + batch);
    let x = z.slice(s * per, (s + y.length) * per);
    for (let i = 0; i < steps; i++) {
      const v = await velocity(ort, session, x, grid[i], y, guidance, nullLabel, imageShape);
      const next = new Float32Array(x.length);
      const dt = dts[i];
      for (let k = 0; k < x.length; k++) next[k] = Math.fround(x[k] + Math.fround(dt * v[k]));
      x = next;
    }
    for (let k = 0; k < x.length; k++) out[s * per + k] = Math.min(1, Math.max(-1, x[k]));
  }
  return out;
}
