// The Ensembles page's Web Worker: loads the same wasm module as the page and runs the analysis
// off the page's thread, so the page stays responsive and a run can be cancelled (terminated).
import init, { analyzeFiles } from "/pkg/fuselab_frontend.js";

const ready = init();

self.onmessage = async (event) => {
  const { names, buffers, options } = event.data;
  try {
    await ready;
    const json = await analyzeFiles(
      names,
      buffers.map((buffer) => new Uint8Array(buffer)),
      options,
      (done, total) => self.postMessage({ kind: "progress", done, total }),
    );
    self.postMessage({ kind: "done", json });
  } catch (error) {
    self.postMessage({ kind: "error", message: error instanceof Error ? error.message : String(error) });
  }
};
