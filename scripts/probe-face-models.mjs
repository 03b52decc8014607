// Which registry face models recognise faces: each candidate TensorFlow.js graph model, run by
// TensorFlow.js itself, on the offline photos' largest faces aligned to ArcFace's 112×112 template
// (and mirrored), under each input convention; prints the cosine of same-person pairs (the three
// Obama photos) against different-person pairs. docs/protection.md quotes its output.
// Run by hand in a directory with the npm packages:
//   npm install @tensorflow/tfjs@4.22.0 pngjs@7.0.0 jpeg-js@0.4.4
//   (landmarks: fuselab face detect --json PHOTOS/<name> > LM/<stem>.json for obama, obama2,
//    obama3, biden (.jpg) and astronaut (.png))
//   node probe-face-models.mjs PHOTOS LM HUMAN_MODELS_3_0_4/models HUMAN_MODELS_0_0_3/models
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
const tf = require('@tensorflow/tfjs');
const { PNG } = require('pngjs');
const jpeg = require('jpeg-js');

const [photos, landmarks, newer, older] = process.argv.slice(2);
async function load(dir, name) {
  const j = JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`)));
  const b = fs.readFileSync(path.join(dir, `${name}.bin`));
  return tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: j.modelTopology, weightSpecs: j.weightsManifest[0].weights,
    weightData: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength),
  }));
}
const models = { 'mobilefacenet (3.0.4)': await load(newer, 'mobilefacenet'), 'mobileface (0.0.3)': await load(older, 'mobileface') };

const TEMPLATE = [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];
function similarity(points) {
  const rows = [], rhs = [];
  TEMPLATE.forEach(([u, v], i) => { rows.push([u, -v, 1, 0]); rhs.push(points[i][0]); rows.push([v, u, 0, 1]); rhs.push(points[i][1]); });
  const m = [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => rows.reduce((s, row) => s + row[r] * row[c], 0))
    .concat(rows.reduce((s, row, k) => s + row[r] * rhs[k], 0)));
  for (let i = 0; i < 4; i++) {
    let p = i;
    for (let k = i + 1; k < 4; k++) if (Math.abs(m[k][i]) > Math.abs(m[p][i])) p = k;
    [m[i], m[p]] = [m[p], m[i]];
    for (let k = 0; k < 4; k++) if (k !== i) { const f = m[k][i] / m[i][i]; for (let c = i; c < 5; c++) m[k][c] -= f * m[i][c]; }
  }
  const [a, b, tx, ty] = m.map((row, i) => row[4] / row[i]);
  return [a, -b, tx, b, a, ty, 0, 0];
}

const faces = [];
for (const stem of ['astronaut', 'biden', 'obama', 'obama2', 'obama3']) {
  const file = path.join(photos, `${stem}.${stem === 'astronaut' ? 'png' : 'jpg'}`);
  const raw = file.endsWith('.png') ? PNG.sync.read(fs.readFileSync(file)) : jpeg.decode(fs.readFileSync(file), { useTArray: true });
  const rgb = new Float32Array(raw.width * raw.height * 3);
  for (let i = 0; i < raw.width * raw.height; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = raw.data[i * 4 + c];
  const image = tf.tensor4d(rgb, [1, raw.height, raw.width, 3]);
  const points = JSON.parse(fs.readFileSync(path.join(landmarks, `${stem}.json`))).faces[0].landmarks;
  for (const mirror of [false, true]) {
    const im = mirror ? tf.reverse(image, 2) : image;
    const lm = mirror ? [points[1], points[0], points[2], points[4], points[3]].map(([x, y]) => [raw.width - 1 - x, y]) : points;
    faces.push({ photo: stem, person: stem.replace(/\d$/, ''), crop: tf.image.transform(im, tf.tensor2d([similarity(lm)]), 'bilinear', 'constant', 0, [112, 112]) });
  }
}
const cos = (a, b) => { let s = 0, na = 0, nb = 0; for (let i = 0; i < a.length; i++) { s += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; } return s / Math.sqrt(na * nb); };
const mean = (a) => (a.reduce((s, v) => s + v, 0) / a.length).toFixed(3);
for (const [name, model] of Object.entries(models)) {
  for (const [input, f] of [['0..1', (x) => x.div(255)], ['0..255', (x) => x], ['(x-127.5)/128', (x) => x.sub(127.5).mul(0.0078125)]]) {
    const e = faces.map((face) => Array.from(model.execute(f(face.crop)).dataSync()));
    const same = [], different = [];
    for (let i = 0; i < faces.length; i++) for (let j = i + 1; j < faces.length; j++) {
      if (faces[i].photo === faces[j].photo) continue; // a photo and its mirror image
      (faces[i].person === faces[j].person ? same : different).push(cos(e[i], e[j]));
    }
    console.log(`${name}, RGB ${input}: same person ${mean(same)} (min ${Math.min(...same).toFixed(3)}), different ${mean(different)} (max ${Math.max(...different).toFixed(3)})`);
  }
}
