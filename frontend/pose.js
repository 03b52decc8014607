// Browser glue of the Pose page that is plain DOM work: reading the model's two files, decoding
// a clip's frames (a <video> seeked frame by frame, or still images), the pose worker, and the
// player that draws the skeletons over the clip. The model itself runs in Rust
// (src/pose/worker.rs) in the worker; the clip never leaves the browser.
import { decodePhoto } from "./faces.js";

let worker = null;
let nextId = 0;
const pending = new Map();

function poseWorker() {
  if (worker) return worker;
  worker = new Worker("/pose-worker.js", { type: "module" });
  worker.onmessage = ({ data }) => {
    const job = pending.get(data.id);
    if (!job) return;
    pending.delete(data.id);
    if (data.kind === "done") job.resolve(data.result);
    else job.reject(new Error(data.message));
  };
  worker.onerror = (event) => {
    const message = event.message || "the pose worker could not start";
    for (const job of pending.values()) job.reject(new Error(message));
    pending.clear();
    worker = null;
  };
  return worker;
}

/** Runs `task` in the worker; resolves to its result. `transfer` moves buffers there. */
function ask(task, fields = {}, transfer = []) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    poseWorker().postMessage({ id, task, ...fields }, transfer);
  });
}

const message = (error) => (error instanceof Error ? error.message : String(error));

/** Builds the model in the worker from its two files' bytes; resolves to its description (JSON). */
function loadModel(json, tensors) {
  return ask("load", { description: new Uint8Array(json), weights: new Uint8Array(tensors) }, [json, tensors]);
}

/**
 * Builds the model from the files chosen: the `.json` description and the `.safetensors`
 * weights of a `fuselab pose train` run folder. Calls `onDone(infoJson)` or `onError(message)`.
 */
export function loadPoseModel(files, onDone, onError) {
  const list = Array.from(files);
  const description = list.find((f) => f.name.toLowerCase().endsWith(".json"));
  const weights = list.find((f) => f.name.toLowerCase().endsWith(".safetensors"));
  if (!description || !weights || list.length !== 2) {
    onError(
      "Choose the two files of a model together: model.json and model.safetensors from a " +
        "`fuselab pose train` run folder.",
    );
    return;
  }
  Promise.all([description.arrayBuffer(), weights.arrayBuffer()])
    .then(([json, tensors]) => loadModel(json, tensors))
    .then(onDone, (error) => onError(`${description.name}, ${weights.name}: ${message(error)}`));
}

/** The bytes of one of the server's files; a failure carries the server's message. */
async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) {
    let reason = `the server answered HTTP ${response.status}`;
    try {
      reason = (await response.json()).error ?? reason;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new Error(reason);
  }
  return response.arrayBuffer();
}

/**
 * Builds model `name` of the pose benchmark `run` on this server (the signed-in user's): both
 * files are fetched, then built in the worker as chosen files are.
 */
export function loadServerPoseModel(run, name, onDone, onError) {
  const base = `/api/align/runs/${encodeURIComponent(run)}/models/${encodeURIComponent(name)}`;
  Promise.all([fetchBytes(`${base}/model.json`), fetchBytes(`${base}/model.safetensors`)])
    .then(([json, tensors]) => loadModel(json, tensors))
    .then(onDone, (error) => onError(`${name}: ${message(error)}`));
}

function once(target, success, failure = "error") {
  return new Promise((resolve, reject) => {
    const done = (event) => {
      target.removeEventListener(success, done);
      target.removeEventListener(failure, fail);
      resolve(event);
    };
    const fail = () => {
      target.removeEventListener(success, done);
      target.removeEventListener(failure, fail);
      reject(new Error("the browser could not decode it"));
    };
    target.addEventListener(success, done);
    target.addEventListener(failure, fail);
  });
}

/**
 * Seeks and waits until the frame at `time` is ready to draw: `seeked` can come before the
 * decoder has the new frame when the machine is busy (the previous one is drawn then), so the
 * next presented frame is awaited too, or at most `FRAME_WAIT_MS` where the browser presents
 * none for a video outside the page.
 */
async function seek(video, time) {
  const seeked = once(video, "seeked");
  const presented = "requestVideoFrameCallback" in video
    ? new Promise((resolve) => {
        video.requestVideoFrameCallback(resolve);
        setTimeout(resolve, FRAME_WAIT_MS);
      })
    : Promise.resolve();
  video.currentTime = time;
  await seeked;
  await presented;
}

const FRAME_WAIT_MS = 250;

/** A video element for `url` with its metadata read and a finite duration. */
async function openVideo(url) {
  const video = document.createElement("video");
  video.muted = true;
  video.preload = "auto";
  const loaded = once(video, "loadeddata");
  video.src = url;
  await loaded;
  if (!Number.isFinite(video.duration)) {
    // Recorded WebM files often carry no duration; seeking far past the end makes the
    // browser find it.
    await seek(video, 1e101);
  }
  if (!Number.isFinite(video.duration) || video.duration <= 0 || video.videoWidth === 0) {
    throw new Error("the browser could not tell its duration or size");
  }
  return video;
}

/** Letterboxes and stores each frame in the worker; `frames` yields RGBA pixels of `width × height`. */
async function sendFrames(width, height, count, draw, onProgress) {
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  for (let i = 0; i < count; i++) {
    await draw(i, context);
    const { data } = context.getImageData(0, 0, width, height);
    await ask("frame", { rgba: data, width, height }, [data.buffer]);
    if (i % 10 === 9 || i === count - 1) onProgress(`Decoded ${i + 1} of ${count} frames…`);
  }
}

/** The clip as the player and the worker need it: a video, or still images in name order. */
function clipOf(files) {
  const list = Array.from(files);
  const videos = list.filter((f) => f.type.startsWith("video/"));
  if (videos.length > 1 || (videos.length === 1 && list.length > 1)) {
    throw new Error("Choose one video, or the frames of one clip as images.");
  }
  if (videos.length === 1) return { kind: "video", file: videos[0] };
  const images = list.filter((f) => /\.(png|jpe?g)$/i.test(f.name));
  if (images.length !== list.length || images.length === 0) {
    const other = list.find((f) => !images.includes(f));
    throw new Error(`${other ? other.name : "nothing"}: expected a video, or PNG or JPEG frames`);
  }
  // In name order, as `fuselab pose predict` reads a folder (code units, like byte order).
  images.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { kind: "images", files: images };
}

let player = null;

/**
 * Decodes the clip, runs the model over every frame in the worker and resolves the page's
 * `onDone(framesJson, infoJson)`; `onProgress(line)` follows the work.
 */
export function runPose(files, fps, maxFrames, onProgress, onDone, onError) {
  run(files, fps, maxFrames, onProgress).then(
    ([frames, info]) => onDone(frames, info),
    (error) => onError(message(error)),
  );
}

async function run(files, fps, maxFrames, onProgress) {
  const clip = clipOf(files);
  const started = performance.now();
  let width;
  let height;
  let count;
  let input;
  let source;
  if (clip.kind === "video") {
    const url = URL.createObjectURL(clip.file);
    let video;
    try {
      video = await openVideo(url);
    } catch (error) {
      URL.revokeObjectURL(url);
      throw new Error(`${clip.file.name}: not a video this browser can play (${message(error)})`);
    }
    [width, height] = await ask("begin", { width: video.videoWidth, height: video.videoHeight, video: true });
    // A container states its duration to the millisecond or so: 1.0 s at 12 fps is 12 frames.
    count = Math.max(1, Math.min(maxFrames, Math.floor(video.duration * fps + 1e-3)));
    // Each frame is sampled in the middle of its 1/fps interval.
    await sendFrames(width, height, count, async (i, context) => {
      await seek(video, Math.min((i + 0.5) / fps, video.duration));
      context.drawImage(video, 0, 0, width, height);
    }, onProgress);
    video.removeAttribute("src");
    video.load();
    input = clip.file.name;
    source = { kind: "video", url, fps };
  } else {
    const images = clip.files.slice(0, maxFrames);
    const first = await decodeImage(images[0]);
    const natural = [first.width, first.height];
    first.close();
    [width, height] = await ask("begin", { width: natural[0], height: natural[1], video: false });
    await sendFrames(width, height, images.length, async (i, context) => {
      const bitmap = await decodeImage(images[i]);
      if (bitmap.width !== natural[0] || bitmap.height !== natural[1]) {
        bitmap.close();
        throw new Error(
          `${images[i].name}: ${bitmap.width}×${bitmap.height} pixels, but the first frame is ${natural[0]}×${natural[1]}`,
        );
      }
      context.drawImage(bitmap, 0, 0, width, height);
      bitmap.close();
    }, onProgress);
    count = images.length;
    input = images.length === 1 ? images[0].name : `${images[0].name} and ${images.length - 1} more`;
    source = { kind: "images", files: images };
  }
  const decoded = performance.now();
  const frames = [];
  for (let start = 0; start < count; start += 8) {
    const end = Math.min(count, start + 8);
    frames.push(...JSON.parse(await ask("predict", { start, end })));
    onProgress(`Found the poses in ${end} of ${count} frames…`);
  }
  const info = {
    input,
    width,
    height,
    fps: source.kind === "video" ? fps : null,
    decode_ms: decoded - started,
    predict_ms: performance.now() - decoded,
  };
  player?.close?.();
  player = { source, width, height, count };
  return [JSON.stringify(frames), JSON.stringify(info)];
}

async function decodeImage(file) {
  try {
    return (await decodePhoto(file)).bitmap;
  } catch {
    throw new Error(`${file.name}: not an image this browser can decode (PNG or JPEG expected)`);
  }
}

/**
 * Shows the last clip with the skeletons of `framesJson` drawn over it (`drawingJson`: the
 * skeleton's edges and the confidence below which a joint is not drawn). The slider, the
 * previous/next buttons and the video's own playback move through the frames.
 */
export function showPose(framesJson, drawingJson) {
  if (!player) return;
  const frames = JSON.parse(framesJson);
  const { edges, threshold } = JSON.parse(drawingJson);
  const { source, width, height, count } = player;
  const video = document.getElementById("pose-video");
  const canvas = document.getElementById("pose-canvas");
  const scrub = document.getElementById("pose-scrub");
  const label = document.getElementById("pose-frame");
  const play = document.getElementById("pose-play");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  scrub.max = String(count - 1);
  let shown = -1;
  let still = null;

  const drawSkeleton = (i) => {
    const points = frames[i].keypoints;
    const scale = Math.max(1, Math.min(width, height) / 180);
    context.lineWidth = 2 * scale;
    context.strokeStyle = "rgb(255, 48, 48)";
    context.fillStyle = "rgb(255, 220, 0)";
    for (const [a, b] of edges) {
      if (points[a][2] < threshold || points[b][2] < threshold) continue;
      context.beginPath();
      context.moveTo(points[a][0], points[a][1]);
      context.lineTo(points[b][0], points[b][1]);
      context.stroke();
    }
    for (const [x, y, confidence] of points) {
      if (confidence < threshold) continue;
      context.beginPath();
      context.arc(x, y, 2.5 * scale, 0, 2 * Math.PI);
      context.fill();
    }
  };

  const draw = async (i) => {
    shown = i;
    scrub.value = String(i);
    label.textContent = `Frame ${i + 1} of ${count} · confidence ${frames[i].score.toFixed(3)}`;
    label.dataset.frame = String(i);
    context.clearRect(0, 0, width, height);
    if (source.kind === "images") {
      still?.close();
      still = await decodeImage(source.files[i]);
      if (shown !== i) return;
      context.drawImage(still, 0, 0, width, height);
    }
    drawSkeleton(i);
  };

  const frameAt = (time) => Math.max(0, Math.min(count - 1, Math.floor(time * source.fps)));
  const goTo = (i) => {
    const frame = Math.max(0, Math.min(count - 1, i));
    if (source.kind === "video") video.currentTime = (frame + 0.5) / source.fps;
    draw(frame);
  };

  const listeners = [];
  const listen = (target, type, handler) => {
    target.addEventListener(type, handler);
    listeners.push(() => target.removeEventListener(type, handler));
  };
  listen(scrub, "input", () => goTo(Number(scrub.value)));
  listen(document.getElementById("pose-previous"), "click", () => goTo(shown - 1));
  listen(document.getElementById("pose-next"), "click", () => goTo(shown + 1));

  if (source.kind === "video") {
    video.hidden = false;
    play.hidden = false;
    video.src = source.url;
    canvas.classList.add("overlay");
    const follow = (_, metadata) => {
      const i = frameAt(metadata.mediaTime);
      if (i !== shown) draw(i);
      if (!video.paused) handle = video.requestVideoFrameCallback(follow);
    };
    let handle = null;
    listen(video, "seeked", () => {
      const i = frameAt(video.currentTime);
      if (i !== shown) draw(i);
    });
    listen(video, "play", () => {
      play.textContent = "Pause";
      handle = video.requestVideoFrameCallback(follow);
    });
    listen(video, "pause", () => {
      play.textContent = "Play";
    });
    listen(play, "click", () => (video.paused ? video.play() : video.pause()));
    listeners.push(() => handle !== null && video.cancelVideoFrameCallback(handle));
  } else {
    video.hidden = true;
    play.hidden = true;
    video.removeAttribute("src");
    canvas.classList.remove("overlay");
  }
  player.close = () => {
    for (const remove of listeners) remove();
    video.pause();
    still?.close();
    if (source.kind === "video") URL.revokeObjectURL(source.url);
  };
  goTo(0);
}
