// edgegen-runtime's platform-neutral core (`edgegen-runtime/core`): what node.js and browser.js
// share, for apps that bring their own file access or ONNX Runtime build.
export { BundleError, ConfigError, EdgegenError, ProviderError, RuntimeInputError } from "./errors.js";
export { LATENT, MAX_SEED, latent, latentForSeeds, parseSeed, retrySeed, truncate, float32Hex } from "./latent.js";
export { RULE, encodePgm, encodePng, toPixels, toUint8 } from "./postprocess.js";
export {
  CACHE_DIRS, MANIFEST, MAX_DEPTH, MAX_MANIFEST_BYTES, SCHEMA, SIGNATURE, checkContract, checkListing, checkNames,
  compileSchema, goldenFiles, imageShape, namedFiles, nestingDepth, parseManifest, strictParse,
} from "./manifest.js";
export { b64decode, checkSignature, derToP1363, hexOf, pae } from "./signature.js";
export { readTensor } from "./tensorproto.js";
export { FORMATS, GUARD, Generator, softmaxRows } from "./generator.js";
export { DENOISER_IO, sample, timeGrid } from "./sampler.js";
export { checkGoldens, checkLatentVectors } from "./goldens.js";
export { MAX_GUIDANCE, MAX_SAMPLES, MAX_STEPS } from "./inputs.js";
