// The Faces page's Web Worker: fetches the face models from the server once, builds the face
// stack in the same wasm module as the page, and finds faces in the pixels the page posts.
import init, { loadFaceStack, findFaces } from "/pkg/fuselab_frontend.js";

// The order `loadFaceStack` takes them in.
const FILES = [
  "pnet.safetensors",
  "rnet.safetensors",
  "onet.safetensors",
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

async function load() {
  await init();
  const status = (message) => self.postMessage({ kind: "status", message });
  status("Downloading the face models…");
  const started = performance.now();
  const files = await Promise.all(FILES.map(fetchModel));
  const fetched = performance.now();
  const megabytes = files.reduce((n, file) => n + file.length, 0) / 1e6;
  status(`Building the face models (${megabytes.toFixed(1)} MB)…`);
  loadFaceStack(...files);
  const seconds = (ms) => (ms / 1000).toFixed(1);
  status(
    `Face models ready: ${megabytes.toFixed(1)} MB fetched in ${seconds(fetched - started)} s, ` +
      `built in ${seconds(performance.now() - fetched)} s.`,
  );
}

let ready = null;

self.onmessage = async ({ data }) => {
  const { id, rgba, width, height } = data;
  try {
    ready ??= load();
    await ready;
  } catch (error) {
    ready = null;
    const message = error instanceof Error ? error.message : String(error);
    self.postMessage({ kind: "error", id, message: `the face models could not be loaded: ${message}` });
    return;
  }
  try {
    self.postMessage({ kind: "done", id, json: findFaces(rgba, width, height) });
  } catch (error) {
    self.postMessage({ kind: "error", id, message: error instanceof Error ? error.message : String(error) });
  }
};
