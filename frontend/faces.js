// Browser glue of the Faces page that is plain DOM work: decoding photos as the browser shows
// them, the face worker, and the annotated previews. The face stack itself is Rust
// (src/faces/worker.rs) running in the worker; photos never leave the browser.

let worker = null;
let nextId = 0;
const pending = new Map();
let onStatus = () => {};

function faceWorker() {
  if (worker) return worker;
  worker = new Worker("/face-worker.js", { type: "module" });
  worker.onmessage = ({ data }) => {
    if (data.kind === "status") {
      onStatus(data.message);
      return;
    }
    const job = pending.get(data.id);
    if (!job) return;
    pending.delete(data.id);
    if (data.kind === "done") job.resolve(data.json);
    else job.reject(new Error(data.message));
  };
  worker.onerror = (event) => {
    const message = event.message || "the face worker could not start";
    for (const job of pending.values()) job.reject(new Error(message));
    pending.clear();
    worker = null;
  };
  return worker;
}

/** Receives the worker's status lines (model download and build). */
export function setFaceStatus(callback) {
  onStatus = callback;
}

/**
 * Decodes a photo as the browser displays it: EXIF orientation applied, no colour-space
 * conversion (the native tools ignore ICC profiles too). Resolves to RGBA pixels.
 */
export async function decodePhoto(blob) {
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: "from-image",
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const { data } = context.getImageData(0, 0, bitmap.width, bitmap.height);
  return { bitmap, width: bitmap.width, height: bitmap.height, rgba: data };
}

/**
 * Runs `task` in the worker on RGBA pixels: `find` (the whole face stack) or `detect` (MTCNN's
 * boxes only); resolves to its JSON. With `keep`, the worker gets a copy and the caller keeps
 * the pixels; otherwise they move to the worker.
 */
export function runFaceTask(task, rgba, width, height, keep = false) {
  const id = nextId++;
  const pixels = keep ? rgba.slice() : rgba;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    faceWorker().postMessage({ id, task, rgba: pixels, width, height }, [pixels.buffer]);
  });
}

/** Runs the face stack in the worker on RGBA pixels; resolves to its JSON. */
export function findFacesInPixels(rgba, width, height) {
  return runFaceTask("find", rgba, width, height);
}

/** The photo, at most 720 px wide, with each face's box, number and landmarks drawn. */
async function preview(bitmap, found) {
  const scale = Math.min(1, 720 / bitmap.width);
  const canvas = new OffscreenCanvas(
    Math.round(bitmap.width * scale),
    Math.round(bitmap.height * scale),
  );
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  context.lineWidth = 2;
  context.font = "bold 16px system-ui, sans-serif";
  found.faces.forEach((face, i) => {
    const [l, t, r, b] = face.box.map((v) => v * scale);
    context.strokeStyle = "#e53935";
    context.strokeRect(l, t, r - l, b - t);
    context.fillStyle = "#e53935";
    context.fillText(String(i + 1), l + 3, t + 17);
    context.fillStyle = "#43a047";
    for (const [x, y] of face.landmarks) {
      context.beginPath();
      context.arc(x * scale, y * scale, 3, 0, 2 * Math.PI);
      context.fill();
    }
  });
  const blob = await canvas.convertToBlob({ type: "image/png" });
  return URL.createObjectURL(blob);
}

/**
 * Finds the faces in a dropped file: `onDone(json, previewUrl)` or `onError(message)`.
 */
export function findFacesInFile(file, onDone, onError) {
  (async () => {
    let decoded;
    try {
      decoded = await decodePhoto(file);
    } catch {
      throw new Error(`${file.name}: not an image this browser can decode (JPEG, PNG or WebP expected)`);
    }
    const json = await findFacesInPixels(decoded.rgba, decoded.width, decoded.height);
    const url = await preview(decoded.bitmap, JSON.parse(json));
    decoded.bitmap.close();
    onDone(json, url);
  })().catch((error) => onError(error instanceof Error ? error.message : String(error)));
}
