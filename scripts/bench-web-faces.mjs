// Face stack timings in headless Chromium (wasm, burn's CPU backend, one thread): MTCNN on a
// 12-megapixel and a 3.3-megapixel photo, and one face's landmarks and descriptors, through the
// Faces page as a user runs it. Prints figures; asserts nothing about time.
//
// FUSELAB_BIN=… FUSELAB_DATA_DIR=… node scripts/bench-web-faces.mjs   (after `fuselab models fetch`)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startApp } from "../tests/e2e/harness.mjs";

const RUNS = 3;
const app = await startApp({ path: "/faces", models: true, demo: false });
const { page } = app;
const jpeg = readFileSync(join(process.env.FUSELAB_DATA_DIR, "models", "photos", "obama3.jpg"));

/** Drops obama3.jpg scaled to `width`×`height` (JPEG, quality 0.95) as `name`; its timings. */
async function run(name, width, height) {
  await page.evaluate(
    async ({ bytes, name, width, height }) => {
      const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)]));
      const canvas = new OffscreenCanvas(width, height);
      const context = canvas.getContext("2d");
      context.imageSmoothingQuality = "high";
      context.drawImage(bitmap, 0, 0, width, height);
      const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.95 });
      const transfer = new DataTransfer();
      transfer.items.add(new File([blob], name, { type: "image/jpeg" }));
      const input = document.querySelector("#face-photos");
      input.files = transfer.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    },
    { bytes: [...jpeg], name, width, height },
  );
  const article = page.locator(`.face-photo[data-name="${name}"]`);
  await article.locator(".face-json, .error").first().waitFor({ state: "attached", timeout: 600_000 });
  if (await article.locator(".error").count()) throw new Error(await article.locator(".error").innerText());
  const found = JSON.parse(await article.locator(".face-json").textContent());
  return { faces: found.faces.length, ...found.millis };
}

const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
const wasmThreads = await page.evaluate(() => navigator.hardwareConcurrency);
console.log(`face stack in headless Chromium (wasm32 + SIMD, burn flex, one worker thread; ${wasmThreads} cores)`);
// The first run also downloads and builds the models.
await run("warm-up.jpg", 1434, 2333);
for (const [label, width, height] of [["12.0 MP", 3000, 4000], ["3.3 MP", 1434, 2333]]) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await run(`${width}x${height}-${i}.jpg`, width, height));
  const stat = (key) => median(runs.map((r) => r[key])).toFixed(0);
  console.log(
    `${label} (${width}×${height}), median of ${RUNS}: MTCNN ${stat("detect")} ms (${runs[0].faces} face); ` +
      `per face: landmarks + chip ${stat("align")} ms, dlib embedding ${stat("dlib")} ms, faceres ${stat("faceres")} ms`,
  );
}
await app.close();
