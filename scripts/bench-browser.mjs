// Browser benchmark of the Ensembles page (issue 4, item 8): a 10-model × 10,000-sample ×
// 10-class pool with probabilities and correlated errors, analysed by the native CLI and by the
// page's wasm worker in headless Chromium; prints the timings.
// Run: FUSELAB_BIN=<target>/release/fuselab node scripts/bench-browser.mjs
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, startApp } from "../tests/e2e/harness.mjs";

const MODELS = 10;
const SAMPLES = 10_000;
const CLASSES = 10;

function pool() {
  let state = 20240607;
  const unit = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const labels = Array.from({ length: SAMPLES }, () => Math.floor(unit() * CLASSES));
  const difficulty = labels.map(() => unit());
  const models = Array.from({ length: MODELS }, (_, m) => {
    const skill = 0.95 - 0.02 * m;
    const probabilities = labels.map((y, s) => {
      const wrong = difficulty[s] * 0.6 + unit() * 0.4 > skill;
      const top = wrong ? (y + 1 + Math.floor(unit() * (CLASSES - 1))) % CLASSES : y;
      const row = Array.from({ length: CLASSES }, () => unit() * 0.1);
      row[top] += 1;
      const sum = row.reduce((a, b) => a + b, 0);
      return row.map((p) => Math.round((p / sum) * 1e6) / 1e6);
    });
    return { name: `model${m}`, probabilities };
  });
  return { labels, models };
}

const dir = mkdtempSync(join(tmpdir(), "fuselab-bench-"));
const file = join(dir, "pool.json");
writeFileSync(file, JSON.stringify(pool()));

const started = process.hrtime.bigint();
const native = spawnSync(BIN, ["ensemble", "analyze", file, "--top-k", "10", "--detail", "full", "--format", "json"]);
const nativeMs = Number(process.hrtime.bigint() - started) / 1e6;
if (native.status !== 0) throw new Error(native.stderr.toString());

const app = await startApp();
const { page } = app;
const runs = [];
for (let run = 0; run < 3; run += 1) {
  await page.locator("#pool-files").setInputFiles([file]);
  const clicked = Date.now();
  await page.locator("#analyze").click();
  await page.locator("#analysis-summary").waitFor({ timeout: 120_000 });
  const drawn = Date.now() - clicked;
  const summary = await page.locator("#analysis-summary").innerText();
  const worker = Number(summary.match(/in (\d+) ms/)[1]);
  runs.push({ worker, drawn });
  await page.reload();
}
await app.close();
rmSync(dir, { recursive: true, force: true });

const best = (key) => Math.min(...runs.map((r) => r[key]));
console.log(`pool: ${MODELS} models × ${SAMPLES} samples × ${CLASSES} classes with probabilities (1,013 teams)`);
console.log(`native CLI (parse + analyse, top 10 in full detail, process start included): ${nativeMs.toFixed(0)} ms`);
console.log(`browser worker (parse + analyse + scatter/size summaries + heat-maps), best of 3: ${best("worker")} ms`);
console.log(`click to results drawn (file read, worker start, analysis, rendering), best of 3: ${best("drawn")} ms`);
console.log(`runs: ${JSON.stringify(runs)}`);
