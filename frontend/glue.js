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
 * Starts the analysis of `files` in a fresh worker. Returns a handle whose `cancel()` stops it.
 * Exactly one of `onDone(json)` or `onError(message)` is called, unless cancelled.
 */
export function startAnalysis(files, options, onProgress, onDone, onError) {
  const worker = new Worker("/worker.js", { type: "module" });
  let over = false;
  const finish = () => {
    over = true;
    worker.terminate();
  };
  worker.onmessage = (event) => {
    const message = event.data;
    if (over) return;
    if (message.kind === "progress") onProgress(message.done, message.total);
    else if (message.kind === "done") {
      finish();
      onDone(message.json);
    } else {
      finish();
      onError(message.message);
    }
  };
  worker.onerror = (event) => {
    if (over) return;
    finish();
    onError(event.message || "the analysis worker could not start");
  };
  Promise.all(files.map((file) => file.arrayBuffer())).then(
    (buffers) => {
      if (over) return;
      worker.postMessage(
        { names: files.map((file) => file.webkitRelativePath || file.name), buffers, options },
        buffers,
      );
    },
    (error) => {
      if (over) return;
      finish();
      onError(`cannot read the files: ${error}`);
    },
  );
  return { cancel: finish };
}

/** Cancels a run started by `startAnalysis`. */
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
