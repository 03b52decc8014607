// The Pose page's Web Worker: builds the pose model in the workers' wasm module, keeps
// the clip's frames (letterboxed to the model's size) as they arrive, and runs the model over
// a range of frames at a time, so the page can show progress. Nothing leaves the browser.
import init, { poseLoadModel, poseBegin, poseAddFrame, posePredict } from "/pkg/fuselab_workers.js";

const ready = init();

const tasks = {
  load: ({ description, weights }) => poseLoadModel(description, weights),
  begin: ({ width, height, video }) => poseBegin(width, height, video),
  frame: ({ rgba, width, height }) => poseAddFrame(rgba, width, height),
  predict: ({ start, end }) => posePredict(start, end),
};

self.onmessage = async ({ data }) => {
  try {
    await ready;
    const task = tasks[data.task];
    if (!task) throw new Error(`no task ${data.task}`);
    self.postMessage({ kind: "done", id: data.id, result: task(data) });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    self.postMessage({ kind: "error", id: data.id, message });
  }
};
