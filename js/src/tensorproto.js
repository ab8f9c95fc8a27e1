// A tiny reader of ONNX TensorProto files (the golden input_K.pb / output_0.pb), so the package
// needs no protobuf package. Fields read (onnx.proto): dims = 1, data_type = 2, float_data = 4,
// int64_data = 7, name = 8, raw_data = 9; every other field is skipped by its wire type.

import { BundleError } from "./errors.js";

const FLOAT = 1;
const INT64 = 7;

function reader(bytes) {
  let pos = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= bytes.length) throw new BundleError("truncated varint");
      const b = bytes[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
      if (shift > 63n) throw new BundleError("varint longer than 64 bits");
    }
  };
  const take = (n) => {
    if (pos + n > bytes.length) throw new BundleError("truncated field");
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  return { varint, take, view, done: () => pos >= bytes.length, at: () => pos };
}

/** Parse a serialized TensorProto: { name, dataType, dims, data } (Float32Array or BigInt64Array). */
export function readTensor(bytes) {
  const r = reader(bytes);
  const tensor = { name: "", dataType: 0, dims: [], floats: [], ints: [], raw: null };
  while (!r.done()) {
    const key = Number(r.varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) {
      const v = r.varint();
      if (field === 1) tensor.dims.push(Number(BigInt.asIntN(64, v)));
      else if (field === 2) tensor.dataType = Number(v);
      else if (field === 7) tensor.ints.push(BigInt.asIntN(64, v));
    } else if (wire === 2) {
      const chunk = r.take(Number(r.varint()));
      if (field === 8) tensor.name = new TextDecoder().decode(chunk);
      else if (field === 9) tensor.raw = chunk;
      else if (field === 1 || field === 7) { // packed repeated varints
        const inner = reader(chunk);
        while (!inner.done()) {
          const v = BigInt.asIntN(64, inner.varint());
          if (field === 1) tensor.dims.push(Number(v)); else tensor.ints.push(v);
        }
      } else if (field === 4) { // packed repeated floats
        const dv = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        for (let i = 0; i + 4 <= chunk.length; i += 4) tensor.floats.push(dv.getFloat32(i, true));
      }
    } else if (wire === 5) {
      const chunk = r.take(4);
      if (field === 4) tensor.floats.push(new DataView(chunk.buffer, chunk.byteOffset, 4).getFloat32(0, true));
    } else if (wire === 1) {
      r.take(8);
    } else {
      throw new BundleError(`unsupported protobuf wire type ${wire} at byte ${r.at()}`);
    }
  }
  return { name: tensor.name, dataType: tensor.dataType, dims: tensor.dims, data: decode(tensor) };
}

function decode(t) {
  const count = t.dims.reduce((a, b) => a * b, 1);
  let data;
  if (t.dataType === FLOAT) {
    data = t.raw ? littleEndian(t.raw, 4, (dv, i) => dv.getFloat32(i, true), Float32Array)
      : Float32Array.from(t.floats);
  } else if (t.dataType === INT64) {
    data = t.raw ? littleEndian(t.raw, 8, (dv, i) => dv.getBigInt64(i, true), BigInt64Array)
      : BigInt64Array.from(t.ints);
  } else {
    throw new BundleError(`tensor ${t.name}: data_type ${t.dataType} is not float (1) or int64 (7)`);
  }
  if (data.length !== count) throw new BundleError(`tensor ${t.name}: ${data.length} values for dims [${t.dims}]`);
  return data;
}

function littleEndian(raw, size, get, Kind) {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Kind(Math.floor(raw.length / size));
  for (let i = 0; i < out.length; i++) out[i] = get(dv, i * size);
  return out;
}
