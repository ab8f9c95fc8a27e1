// Unit tests of the package's parts that need no bundle: the latent against vectors made by the
// Python runtime (edgegen.runtime.latent.latent_test_vectors / extra_test_vectors), the strict
// bounded manifest read, the uint8 rule, the PNG bytes of Python's encode_png, seeds, errors.
// Run with `node --test` where "edgegen-runtime" resolves (the packed package in CI).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  BundleError, ConfigError, EdgegenError, ProviderError, RuntimeInputError, compileSchema, derToP1363, encodePng, float32Hex,
  latent, nestingDepth, parseManifest, parseSeed, retrySeed, strictParse, timeGrid, toPixels, toUint8, truncate,
} from "edgegen-runtime";

test("the latent reproduces the Python runtime's test vectors bit for bit", () => {
  assert.deepEqual(float32Hex(latent(0, 2, 5)), ["bee7cfdd", "3e54c09f", "4029a387", "befb18b3", "bf7d1529", "3e8142cb", "bfed3d02", "3fcccc97", "befeaa1a", "3dc0fd71"]);
  assert.deepEqual(float32Hex(latent("42", 3, 4)), ["3ed45626", "3f27161e", "bf6452a8", "3fa9d5af", "3fdd634e", "bff113cd", "3f0badc8", "bfd41332", "bf8a4af9", "bf7ecfa1", "bfe3b14b", "3da0951e"]);
  assert.deepEqual(float32Hex(truncate(latent(42n, 1, 4), 0.7)), ["3e94a2b4", "3ee9ebc3", "bf1fd375", "3f6dc4c2"]);
  assert.deepEqual(float32Hex(truncate(latent(7, 1, 4), 0.5)), ["3f2eb811", "3d93fd5f", "be4b0531", "bde90f02"]);
  assert.equal(retrySeed(42, 1), 15111065706836454701n);
  assert.equal(retrySeed(42, 4), 5104030606217163830n);
  assert.equal(retrySeed("18446744073709551615", 2), 11775387339963357701n);
});

test("a row does not depend on the batch it is drawn in", () => {
  const all = latent(99, 5, 7);
  assert.deepEqual(latent(99, 2, 7, 3), all.subarray(3 * 7, 5 * 7));
});

test("seeds: Number, BigInt or decimal string in [0, 2**64); nothing else", () => {
  assert.equal(parseSeed("18446744073709551615"), 2n ** 64n - 1n);
  assert.equal(parseSeed(7), 7n);
  for (const bad of [-1, 2 ** 64, "2".repeat(21), "18446744073709551616", 1.5, "x", null, true, 2 ** 60]) {
    assert.throws(() => parseSeed(bad), RuntimeInputError, String(bad));
  }
  assert.throws(() => parseSeed(2 ** 60), /BigInt or a decimal string/);
});

test("the uint8 rule: clamp(floor((x + 1) * 127.5 + 0.5), 0, 255) in doubles", () => {
  assert.deepEqual([...toUint8([-1, 1, 0, -2, 2, Math.fround(0.003921568859368563)])], [0, 255, 128, 0, 255, 128]);
  assert.throws(() => toUint8([Number.NaN]), BundleError);
  // [1, C=3, H=1, W=2] -> [1, 1, 2, 3] interleaved
  assert.deepEqual([...toPixels(Float32Array.of(-1, 1, 0, 0, 1, -1), [3, 1, 2])], [0, 128, 255, 255, 128, 0]);
});

test("PNG bytes equal edgegen.runtime.postprocess.encode_png's", () => {
  const hex = (b) => Buffer.from(b).toString("hex");
  assert.equal(hex(encodePng(Uint8Array.of(0, 128, 255, 1, 2, 3), [1, 2, 3])),
    "89504e470d0a1a0a0000000d4948445200000003000000020800000000b81f39c600000013494441547801010800f7ff000080ff00010203080d018602e957160000000049454e44ae426082");
  assert.equal(hex(encodePng(Uint8Array.from({ length: 12 }, (_, i) => i * 20), [3, 2, 2])),
    "89504e470d0a1a0a0000000d4948445200000002000000020802000000fdd49a7300000019494441547801010e00f1ff000014283c506400788ca0b4c8dc17920529ed47fd600000000049454e44ae426082");
});

test("strict JSON: duplicate keys, NaN, overflowing numbers and huge integers are refused", () => {
  assert.deepEqual(strictParse('{"a": [1, 2.5, -3e2, "x\\u00e9", true, null], "__proto__": {"b": 1}}'),
    JSON.parse('{"a": [1, 2.5, -3e2, "x\\u00e9", true, null], "__proto__": {"b": 1}}'));
  assert.equal(Object.getPrototypeOf(strictParse('{"__proto__": {"polluted": 1}}')), Object.prototype);
  for (const [text, why] of [['{"a": 1, "a": 2}', /duplicate key/], ["[NaN]", /unexpected/], ["[1e400]", /does not fit a double/],
    [`[${"9".repeat(31)}]`, /integer of 31 digits/], ['{"a": 1} x', /extra data/], ['"\u0001"', /bad string/], ["[01]", /expected/]]) {
    assert.throws(() => strictParse(text), why, text);
  }
});

test("the manifest read is bounded before parsing", () => {
  const validate = compileSchema(class { compile() { return () => true; } }, {});
  const bytes = (text) => new TextEncoder().encode(text);
  assert.equal(nestingDepth('[["[[[["], {"a": [1]}]'), 3);
  assert.throws(() => parseManifest(bytes("[".repeat(200000) + "]".repeat(200000)), validate), /nests arrays\/objects more than 32 deep/);
  assert.throws(() => parseManifest(new Uint8Array((1 << 20) + 1).fill(32), validate), /at most 1,048,576/);
  assert.throws(() => parseManifest(Uint8Array.of(0x7b, 0xff, 0x7d), validate), /not UTF-8/);
  assert.throws(() => parseManifest(bytes('{"schema": "edgegen.bundle/2"}'), validate), /this edgegen-runtime reads "edgegen.bundle\/1"/);
  assert.throws(() => parseManifest(bytes("[]"), validate), /not an object/);
});

test("the errors mirror edgegen.runtime.errors", () => {
  for (const E of [BundleError, ConfigError, ProviderError, RuntimeInputError]) {
    const e = new E("x");
    assert.ok(e instanceof EdgegenError && e instanceof Error);
    assert.equal(e.name, E.name);
  }
});

test("the sampler's time grid is float32(i / N)", () => {
  assert.deepEqual([...timeGrid(3)], [0, Math.fround(1 / 3), Math.fround(2 / 3), 1]);
});

test("DER ECDSA signatures convert to WebCrypto's r||s", () => {
  // SEQUENCE { INTEGER 0x00ff (leading zero), INTEGER 0x01 } for a 2-byte curve
  assert.deepEqual([...derToP1363(Uint8Array.of(0x30, 0x07, 0x02, 0x02, 0x00, 0xff, 0x02, 0x01, 0x01), 2)], [0, 0xff, 0, 1]);
  assert.throws(() => derToP1363(Uint8Array.of(0x31, 0x00), 32), BundleError);
});
