// Learned combiner timings in headless Chromium: FusionShot's network (300 epochs, batch 64)
// over all eight classifiers of the demo pool, trained in the Ensembles page's Web Worker (the
// shared crate compiled to wasm), beside the native CLI on the same team. Prints figures;
// asserts nothing about time.
//
// FUSELAB_BIN=… FUSELAB_DIGITS="$(scripts/fetch-digits.sh)" node scripts/bench-web-combine.mjs
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ADMIN, BIN, startApp } from "../tests/e2e/harness.mjs";

const RUNS = 3;
const app = await startApp({ path: "/", signedIn: ADMIN });
const { page } = app;
const pool = join(app.dataDir, "demo", "digits-pool.json");
await page.locator("#top-k").fill("1");
await page.locator("#team-sizes").fill("8");
await page.locator("#try-demo").click();
await page.locator("#team-detail h4").waitFor({ timeout: 120_000 });
const members = (await page.locator("#team-detail h4").innerText()).split("+");
const browser = [];
for (let i = 0; i <= RUNS; i++) {
  await page.locator("#combine-method").selectOption("mlp");
  await page.locator("#combine-run").click();
  // The click replaces the last run's results with the progress bar.
  await page.locator("#combine-summary").waitFor({ state: "detached" });
  await page.locator("#combine-summary").waitFor({ timeout: 600_000 });
  const summary = await page.locator("#combine-summary").innerText();
  if (i > 0) browser.push(Number(summary.match(/in (\d+) ms/)[1]));
}
const native = [];
for (let i = 0; i < RUNS; i++) {
  const started = process.hrtime.bigint();
  const run = spawnSync(BIN, ["ensemble", "combine", pool, "--team", members.join(","), "--format", "json"], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(run.stderr);
  native.push(Number(process.hrtime.bigint() - started) / 1e6);
}
await app.close();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`team of ${members.length} (${members.join(", ")}), mlp, 300 epochs, median of ${RUNS}:`);
console.log(`  browser worker (wasm): ${median(browser)} ms (runs ${browser.join(", ")})`);
console.log(`  native CLI, whole process: ${median(native).toFixed(0)} ms (runs ${native.map((t) => t.toFixed(0)).join(", ")})`);
console.log(`  ratio browser / native: ${(median(browser) / median(native)).toFixed(2)}`);
