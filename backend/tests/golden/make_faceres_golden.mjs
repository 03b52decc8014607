// Golden faceres descriptors for backend/tests/face.rs, from TensorFlow.js itself (npm
// @tensorflow/tfjs 4.22.0, its pure-JavaScript CPU backend) running @vladmandic/human 3.3.6's
// faceres graph model. Input: each dlib chip in chips/ (150×150 RGB), resized to 224×224 by
// tf.image.resizeBilinear (TF's legacy sampling, no corner alignment), on the 0..255 scale.
// Run once, by hand, in a directory with the two npm packages; the output (faceres.json) is
// committed with it:
//   npm install @tensorflow/tfjs@4.22.0 pngjs@7.0.0
//   node make_faceres_golden.mjs MODEL_DIR   # MODEL_DIR: <data-dir>/models/face
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
const tf = require('@tensorflow/tfjs');
const { PNG } = require('pngjs');

const here = path.dirname(new URL(import.meta.url).pathname);
const dir = process.argv[2];
const model = JSON.parse(fs.readFileSync(path.join(dir, 'faceres.json')));
const bin = fs.readFileSync(path.join(dir, 'faceres.bin'));
const net = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: model.modelTopology,
  weightSpecs: model.weightsManifest[0].weights,
  weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
  format: model.format, generatedBy: model.generatedBy, convertedBy: model.convertedBy,
  signature: model.signature,
}));
const out = { generator: 'backend/tests/golden/make_faceres_golden.mjs', tfjs: tf.version.tfjs, chips: {} };
for (const name of fs.readdirSync(path.join(here, 'chips')).sort()) {
  const png = PNG.sync.read(fs.readFileSync(path.join(here, 'chips', name)));
  const rgb = new Float32Array(png.width * png.height * 3);
  for (let i = 0; i < png.width * png.height; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = png.data[i * 4 + c];
  const input = tf.image.resizeBilinear(tf.tensor4d(rgb, [1, png.height, png.width, 3]), [224, 224]);
  const res = net.execute(input, 'global_pooling/Mean');
  out.chips[name] = Array.from(await res.data());
}
fs.writeFileSync(path.join(here, 'faceres.json'), JSON.stringify(out));
