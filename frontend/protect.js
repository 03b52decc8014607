// Browser glue of the Protect page that is plain DOM work: decoding photos, previews, encoding
// the protected photo in its original format, and the mask job's upload and events. The mask
// itself is applied in Rust (WebGPU or the CPU twin); photos being protected never leave the
// browser, only the photos a user chooses for "Create my mask" are sent, to train their mask.
import { decodePhoto, runFaceTask } from "./faces.js";

const TYPES = { "image/jpeg": "jpeg", "image/png": "png", "image/webp": "webp" };

/** The bytes of a file (the mask key). */
export async function fileBytes(file) {
  return new Uint8Array(await file.arrayBuffer());
}

/**
 * Decodes a photo as the browser shows it (EXIF orientation applied). Resolves to
 * `{ width, height, rgba, type }`, `type` being the MIME type the download will have.
 */
export async function decodeForProtection(file) {
  let decoded;
  try {
    decoded = await decodePhoto(file);
  } catch {
    throw new Error(`${file.name}: not an image this browser can decode (JPEG, PNG or WebP expected)`);
  }
  decoded.bitmap.close();
  const type = TYPES[file.type] ? file.type : "image/png";
  return { width: decoded.width, height: decoded.height, rgba: decoded.rgba, type };
}

/** MTCNN's detections (JSON) for RGBA pixels, in the face worker; the caller keeps the pixels. */
export function detectFaces(rgba, width, height) {
  return runFaceTask("detect", rgba, width, height, true);
}

function canvasOf(rgba, width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d");
  context.putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
  return canvas;
}

async function previewUrl(canvas) {
  const scale = Math.min(1, 720 / canvas.width);
  const small = new OffscreenCanvas(
    Math.max(1, Math.round(canvas.width * scale)),
    Math.max(1, Math.round(canvas.height * scale)),
  );
  small.getContext("2d").drawImage(canvas, 0, 0, small.width, small.height);
  return URL.createObjectURL(await small.convertToBlob({ type: "image/png" }));
}

/**
 * Previews of the photo before and after, and the protected photo at full resolution in its
 * original format (JPEG and WebP at quality 0.95; PNG lossless). Re-encoding through a canvas
 * carries no metadata (location, camera, date). Resolves to `{ before, after, download, blob, bytes }`.
 */
export async function renderProtected(original, masked, width, height, type) {
  const before = canvasOf(original, width, height);
  const after = canvasOf(masked, width, height);
  const quality = type === "image/png" ? undefined : 0.95;
  const blob = await after.convertToBlob({ type, quality });
  return {
    before: await previewUrl(before),
    after: await previewUrl(after),
    download: URL.createObjectURL(blob),
    blob,
    bytes: blob.size,
  };
}

/** Frees blob URLs made by `renderProtected`. */
export function revoke(urls) {
  for (const url of urls) URL.revokeObjectURL(url);
}

/** The bytes of a `Blob` (a protected photo, for the zip). */
export async function blobBytes(blob) {
  return new Uint8Array(await blob.arrayBuffer());
}

/** Downloads `bytes` as a file called `name` of MIME type `type`. */
export function saveBytes(bytes, name, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // After the browser has taken the download.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** An error with the server's message and the answer's HTTP `status` (401: sign in). */
async function answerError(response) {
  const body = await response.json().catch(() => ({}));
  const error = new Error(body.error ?? `the server answered HTTP ${response.status}`);
  error.status = response.status;
  return error;
}

/**
 * Starts a mask job with the chosen photos; `fields` are the form's other fields. Resolves to
 * the job's id, or rejects with the server's message (and `status`).
 */
export async function startMaskJob(files, fields) {
  const form = new FormData();
  for (const file of files) form.append("photo", file, file.name);
  for (const [name, value] of Object.entries(fields)) {
    if (value !== "" && value !== undefined && value !== null) form.append(name, String(value));
  }
  const response = await fetch("/api/masks", { method: "POST", body: form });
  if (!response.ok) throw await answerError(response);
  return (await response.json()).id;
}

/** Follows a job's events: `onStatus(json)` for each; returns a function that stops. */
export function followMaskJob(id, onStatus, onError) {
  const source = new EventSource(`/api/masks/${id}/events`);
  source.addEventListener("status", (event) => {
    onStatus(event.data);
    const state = JSON.parse(event.data).state;
    if (state === "done" || state === "failed" || state === "cancelled") source.close();
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) return;
    source.close();
    onError("the connection to the server was lost");
  };
  return () => source.close();
}

/** Fetches a finished job's key (the server forgets it afterwards). */
export async function fetchMaskKey(id) {
  const response = await fetch(`/api/masks/${id}/key`);
  if (!response.ok) throw await answerError(response);
  return new Uint8Array(await response.arrayBuffer());
}

/** Cancels a job. */
export async function cancelMaskJob(id) {
  await fetch(`/api/masks/${id}`, { method: "DELETE" });
}

/** A download link's address for bytes. */
export function bytesUrl(bytes) {
  return URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
}
