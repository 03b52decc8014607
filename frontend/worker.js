// The Ensembles page's Web Worker: loads the workers' wasm module (fetched on first use) and
// runs the analysis (or a combiner's training) off the page's thread, so the page stays
// responsive and a run can be cancelled (terminated).
import init, { analyzeFiles, combineFiles } from "/pkg/fuselab_workers.js";

const ready = init();

self.onmessage = async (event) => {
  const { kind, names, buffers, options, request } = event.data;
  const progress = (done, total) => self.postMessage({ kind: "progress", done, total });
  try {
    await ready;
    const contents = buffers.map((buffer) => new Uint8Array(buffer));
    const json = kind === "combine"
      ? combineFiles(names, contents, request, progress)
      : await analyzeFiles(names, contents, options, progress);
    self.postMessage({ kind: "done", json });
  } catch (error) {
    self.postMessage({ kind: "error", message: error instanceof Error ? error.message : String(error) });
  }
};
