// Browser benchmark of the Ensembles page (issue 4, item 8): a 10-model × 10,000-sample ×
// 10-class pool with probabilities and correlated errors, analysed by the native CLI and by the
// page's wasm worker in headless Chromium; prints the timings.
// Run: FUSELAB_BIN=<target>/release/fuselab node scripts/bench-browser.mjs
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADMIN, BIN, startApp } from "../tests/e2e/harness.mjs";

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

// Signed in: the server's analysis needs a user.
const app = await startApp({ signedIn: ADMIN });
const { page } = app;

// The same analysis natively: the server's /api/ensemble/analyze times `analysis()` alone.
const body = JSON.stringify({ pool: JSON.parse(readFileSync(file, "utf8")), options: { top_k: 10, min_size: 2, max_size: MODELS } });
const answer = await app.context.request.post(`${app.baseUrl}/api/ensemble/analyze`, { headers: { "content-type": "application/json" }, data: body });
const stream = await answer.text();
const result = JSON.parse(stream.split("\n\n").find((e) => e.startsWith("event: result")).split("\ndata: ")[1]);
const serverMs = result.millis;

async function run(path, compute, runs) {
  const times = [];
  for (let k = 0; k < runs; k += 1) {
    await page.locator("#pool-files").setInputFiles([path]);
    await page.locator("#compute-on").selectOption(compute);
    await page.locator("#run-on").selectOption("device");
    const clicked = Date.now();
    await page.locator("#analyze").click();
    await page.locator("#analysis-summary").waitFor({ timeout: 300_000 });
    const drawn = Date.now() - clicked;
    const summary = await page.locator("#analysis-summary").innerText();
    times.push({ worker: Number(summary.match(/in (\d+) ms/)[1]), drawn, summary });
    await page.reload();
  }
  return times;
}
const best = (times, key) => Math.min(...times.map((t) => t[key]));
const cpu = await run(file, "cpu", 3);

// A 16-model pool (65,519 teams) where the WebGPU path applies.
const large = join(dir, "pool16.json");
const pool16 = pool();
pool16.models = [...pool16.models, ...pool16.models.slice(0, 6).map((m, k) => ({ ...m, name: `copy${k}` }))];
writeFileSync(large, JSON.stringify(pool16));
const large_cpu = await run(large, "cpu", 1);
const large_gpu = await run(large, "gpu", 1);
await app.close();
rmSync(dir, { recursive: true, force: true });

console.log(`pool: ${MODELS} models × ${SAMPLES} samples × ${CLASSES} classes with probabilities (1,013 teams)`);
console.log(`native CLI, whole process (parse + analyse, top 10 in full detail): ${nativeMs.toFixed(0)} ms`);
console.log(`native analysis() in the server (after parsing and validation): ${serverMs.toFixed(0)} ms`);
console.log(`wasm worker (parse + validate + analysis()), best of 3: ${best(cpu, "worker")} ms`);
console.log(`click to results drawn, best of 3: ${best(cpu, "drawn")} ms`);
console.log(`16 models (65,519 teams) in the worker: CPU ${large_cpu[0].worker} ms, WebGPU ${large_gpu[0].worker} ms`);
console.log(`  ${large_gpu[0].summary}`);
