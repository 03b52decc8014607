// P3-Mask application timings in headless Chromium: a 12-megapixel photo protected on the
// Protect page with WebGPU (SwiftShader here: a software GPU) and with the CPU twin (WebGPU
// switched off), through the page as a user runs it. Prints figures; asserts nothing about time.
//
// FUSELAB_BIN=… FUSELAB_DATA_DIR=… node scripts/bench-web-mask.mjs   (after `fuselab models fetch`)
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, startApp } from "../tests/e2e/harness.mjs";

const RUNS = 3;
const photos = join(process.env.FUSELAB_DATA_DIR, "models", "photos");
const work = mkdtempSync(join(tmpdir(), "fuselab-bench-mask-"));
mkdirSync(join(work, "me"));
for (const name of ["obama.jpg", "obama2.jpg", "obama3.jpg"]) copyFileSync(join(photos, name), join(work, "me", name));
const key = join(work, "me.p3m");
const trained = spawnSync(BIN, [
  "--data-dir", process.env.FUSELAB_DATA_DIR, "mask", "train", "--photos", join(work, "me"),
  "--out", key, "--epochs", "1", "--models", "dlib",
], { encoding: "utf8" });
if (trained.status !== 0) throw new Error(trained.stderr);
const jpeg = readFileSync(join(photos, "obama3.jpg"));

async function bench(webgpu) {
  const app = await startApp({ path: "/protect", models: true, demo: false, webgpu });
  const { page } = app;
  await page.locator("#mask-key").setInputFiles(key);
  await page.locator("#protect-photos:not([disabled])").waitFor();
  const runs = [];
  for (let i = 0; i <= RUNS; i++) {
    const name = `${i === 0 ? "warm-up" : `run-${i}`}.jpg`;
    const started = Date.now();
    await page.evaluate(
      async ({ bytes, name }) => {
        const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)]));
        const canvas = new OffscreenCanvas(3000, 4000);
        const context = canvas.getContext("2d");
        context.imageSmoothingQuality = "high";
        context.drawImage(bitmap, 0, 0, 3000, 4000);
        const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.95 });
        const transfer = new DataTransfer();
        transfer.items.add(new File([blob], name, { type: "image/jpeg" }));
        const input = document.querySelector("#protect-photos");
        input.files = transfer.files;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      },
      { bytes: [...jpeg], name },
    );
    const article = page.locator(`.protect-photo[data-name="${name}"]`);
    await article.locator(".protect-download, .error").first().waitFor({ timeout: 600_000 });
    const summary = await article.locator(".protect-summary").innerText();
    const on = await article.locator(".protect-summary").getAttribute("data-on");
    const ms = Number(summary.match(/in (\d+) ms/)[1]);
    if (i > 0) runs.push({ on, ms, total: Date.now() - started });
  }
  await app.close();
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `12.0 MP (3000×4000), median of ${RUNS}, mask applied on ${runs[0].on}: ${median(runs.map((r) => r.ms))} ms ` +
      `(drop to download link, with decoding, detection, SSIM and JPEG encoding: ${(median(runs.map((r) => r.total)) / 1000).toFixed(1)} s)`,
  );
}

await bench(true);
await bench(false);
rmSync(work, { recursive: true, force: true });
