// Browser glue of the Ensembles page that is plain DOM work: reading dropped files, running the
// analysis worker, and saving exports. The computation itself is Rust (src/ensembles/analysis.rs).

/** The files of an input's change event or of a drop. */
export function filesOf(event) {
  const list = event.dataTransfer ? event.dataTransfer.files : event.target.files;
  return Array.from(list ?? []);
}

/** The names of files, with their folder when they came from a folder picker. */
export function fileNames(files) {
  return files.map((file) => file.webkitRelativePath || file.name).join(", ");
}

/**
 * Runs `message` (plus the files' names and contents) in a fresh `worker.js`. Returns a handle
 * whose `cancel()` stops it. Exactly one of `onDone(json)` or `onError(message)` is called,
 * unless cancelled.
 */
function runInWorker(files, message, onProgress, onDone, onError) {
  const worker = new Worker("/worker.js", { type: "module" });
  let over = false;
  const finish = () => {
    over = true;
    worker.terminate();
  };
  const fail = (text) => {
    if (over) return;
    finish();
    onError(text);
  };
  worker.onmessage = (event) => {
    const answer = event.data;
    if (over) return;
    if (answer.kind === "progress") onProgress(answer.done, answer.total);
    else if (answer.kind === "done") {
      finish();
      onDone(answer.json);
    } else fail(answer.message);
  };
  worker.onerror = (event) => fail(event.message || "the worker could not start");
  Promise.all(files.map((file) => file.arrayBuffer())).then(
    (buffers) => {
      if (over) return;
      const names = files.map((file) => file.webkitRelativePath || file.name);
      worker.postMessage({ ...message, names, buffers }, buffers);
    },
    (error) => fail(`cannot read the files: ${error}`),
  );
  return { cancel: finish };
}

/** Starts the analysis of `files` in a fresh worker (see `runInWorker`). */
export function startAnalysis(files, options, onProgress, onDone, onError) {
  return runInWorker(files, { options }, onProgress, onDone, onError);
}

/**
 * Posts an analysis request to the server and reads its Server-Sent Events: `progress` events,
 * then `result` (the analysis JSON) or `error`. `onError(message, status)` gets the HTTP status
 * of an error answer (401: sign in), 0 when the failure came later or no answer came. Returns a
 * handle whose `cancel()` aborts it.
 */
export function analyzeOnServer(body, onProgress, onDone, onError) {
  const abort = new AbortController();
  let over = false;
  const fail = (message, status = 0) => {
    if (over) return;
    over = true;
    onError(message, status);
  };
  (async () => {
    const response = await fetch("/api/ensemble/analyze", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: abort.signal,
    });
    if (!response.ok) {
      const text = await response.text();
      let message = `the server answered HTTP ${response.status}`;
      try {
        message = JSON.parse(text).error ?? message;
      } catch {
        // Not JSON: keep the status line.
      }
      return fail(message, response.status);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const kind = frame.match(/^event: (.*)$/m)?.[1];
        const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (kind === "progress") {
          const { done: scored, total } = JSON.parse(data);
          if (!over) onProgress(scored, total);
        } else if (kind === "result") {
          // The server ends the stream after the result; reading on lets it close cleanly.
          if (!over) {
            over = true;
            onDone(data);
          }
        } else if (kind === "error") {
          return fail(JSON.parse(data).error);
        }
      }
    }
    fail("the server closed the connection before the analysis finished");
  })().catch((error) => {
    if (error.name !== "AbortError") fail(`cannot reach the server: ${error.message}`);
  });
  return {
    cancel() {
      over = true;
      abort.abort();
    },
  };
}

/**
 * Fetches the server's demo pool, then calls `start([file])`, which returns a handle. Returns a
 * handle whose `cancel()` stops either step.
 */
function withDemoPool(start, onError) {
  let inner = null;
  let cancelled = false;
  fetch("/api/ensemble/demo").then(
    async (response) => {
      if (!response.ok) {
        let message = `the server answered HTTP ${response.status}`;
        try {
          message = (await response.json()).error ?? message;
        } catch {
          // Not JSON: keep the status line.
        }
        if (!cancelled) onError(message);
        return;
      }
      const blob = await response.blob();
      if (!cancelled) inner = start([new File([blob], "digits-demo.json")]);
    },
    (error) => {
      if (!cancelled) onError(`cannot reach the server: ${error.message}`);
    },
  );
  return {
    cancel() {
      cancelled = true;
      inner?.cancel();
    },
  };
}

/** Fetches the server's demo pool and analyses it like dropped files (`startAnalysis`). */
export function startDemoAnalysis(options, onProgress, onDone, onError) {
  return withDemoPool((files) => startAnalysis(files, options, onProgress, onDone, onError), onError);
}

/**
 * Trains a combiner in a fresh worker on the analysed pool: `files` (an array of File), or
 * null for the server's demo pool. `request` is the JSON the worker's `combineFiles` reads.
 */
export function startCombine(files, request, onProgress, onDone, onError) {
  const start = (list) => runInWorker(list, { kind: "combine", request }, onProgress, onDone, onError);
  return files ? start(files) : withDemoPool(start, onError);
}

/** Cancels a run started by `startAnalysis`, `analyzeOnServer` or `startCombine`. */
export function cancelAnalysis(handle) {
  handle.cancel();
}

function save(name, blob) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Saves `text` as a file. */
export function downloadText(name, mime, text) {
  save(name, new Blob([text], { type: mime }));
}

function svgText(id) {
  const svg = document.getElementById(id);
  if (!svg) throw new Error(`no plot ${id}`);
  return new XMLSerializer().serializeToString(svg);
}

/** Saves the SVG element with this id as an .svg file. */
export function downloadSvg(id, name) {
  save(name, new Blob([svgText(id)], { type: "image/svg+xml" }));
}

/** Renders the SVG element with this id at twice its size on white and saves it as a PNG. */
export function downloadPng(id, name) {
  const svg = document.getElementById(id);
  const width = svg.width.baseVal.value;
  const height = svg.height.baseVal.value;
  const image = new Image();
  const url = URL.createObjectURL(new Blob([svgText(id)], { type: "image/svg+xml" }));
  image.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = width * 2;
    canvas.height = height * 2;
    const context = canvas.getContext("2d");
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(image, 0, 0, canvas.width, canvas.height);
    URL.revokeObjectURL(url);
    canvas.toBlob((blob) => save(name, blob), "image/png");
  };
  image.src = url;
}
