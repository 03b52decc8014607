// The face pages' Web Worker: fetches the face models from the server once, builds them in the
// workers' wasm module, and runs them on the pixels the page posts. `detect` needs only
// MTCNN (the Protect page); `find` needs the whole stack (the Faces page).
import init, { loadDetector, detectFaces, loadFaceStack, findFaces } from "/pkg/fuselab_workers.js";

const DETECTOR = ["pnet.safetensors", "rnet.safetensors", "onet.safetensors"];
// The order `loadFaceStack` takes them in.
const STACK = [
  ...DETECTOR,
  "shape_predictor_5_face_landmarks.dat",
  "dlib_face_recognition_resnet_model_v1.dat",
  "faceres.json",
  "faceres.bin",
];

async function fetchModel(name) {
  const response = await fetch(`/api/models/face/${name}`);
  if (!response.ok) {
    let message = `the server answered HTTP ${response.status}`;
    try {
      message = (await response.json()).error ?? message;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new Error(message);
  }
  return new Uint8Array(await response.arrayBuffer());
}

const status = (message) => self.postMessage({ kind: "status", message });

/** Fetches `names` and builds them with `build`, reporting progress as `what`. */
async function load(names, build, what) {
  await init();
  status(`Downloading the ${what}…`);
  const started = performance.now();
  const files = await Promise.all(names.map(fetchModel));
  const fetched = performance.now();
  const megabytes = files.reduce((n, file) => n + file.length, 0) / 1e6;
  status(`Building the ${what} (${megabytes.toFixed(1)} MB)…`);
  build(...files);
  const seconds = (ms) => (ms / 1000).toFixed(1);
  status(
    `The ${what} are ready: ${megabytes.toFixed(1)} MB fetched in ${seconds(fetched - started)} s, ` +
      `built in ${seconds(performance.now() - fetched)} s.`,
  );
}

const loading = { detect: null, find: null };
const loaders = {
  detect: () => load(DETECTOR, loadDetector, "face detector models"),
  find: () => load(STACK, loadFaceStack, "face models"),
};
const runners = { detect: detectFaces, find: findFaces };

self.onmessage = async ({ data }) => {
  const { id, task = "find", rgba, width, height } = data;
  try {
    loading[task] ??= loaders[task]();
    await loading[task];
  } catch (error) {
    loading[task] = null;
    const message = error instanceof Error ? error.message : String(error);
    self.postMessage({ kind: "error", id, message: `the face models could not be loaded: ${message}` });
    return;
  }
  try {
    self.postMessage({ kind: "done", id, json: runners[task](rgba, width, height) });
  } catch (error) {
    self.postMessage({ kind: "error", id, message: error instanceof Error ? error.message : String(error) });
  }
};
