// Browser end-to-end: the real `fuselab` binary serves the real app; headless Chromium (apt) does
// what a user does and the test checks what the user sees, including a WebGPU dispatch whose
// result is compared with an independent computation here.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BIN = process.env.FUSELAB_BIN;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--enable-unsafe-webgpu", "--enable-unsafe-swiftshader",
];

let server, serverExit, baseUrl, context, page, dataDir, profileDir;
const problems = [];

before(async () => {
  assert.ok(BIN, "FUSELAB_BIN must point at the fuselab binary");
  dataDir = mkdtempSync(join(tmpdir(), "fuselab-e2e-data-"));
  profileDir = mkdtempSync(join(tmpdir(), "fuselab-e2e-chromium-"));
  server = spawn(BIN, ["serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  serverExit = new Promise((resolve) => server.on("exit", (code, signal) => resolve({ code, signal })));
  baseUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("fuselab did not listen within 30 s")), 30_000);
    let out = "";
    server.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/listening on (http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    serverExit.then(({ code }) => reject(new Error(`fuselab exited (${code}) before listening`)));
  });
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()}`));
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  await page.goto(baseUrl);
});

after(async () => {
  await context?.close();
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    const { code } = await serverExit;
    assert.equal(code, 0, "fuselab exits cleanly on SIGTERM");
  }
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(profileDir, { recursive: true, force: true });
});

/** A deterministic pool: `models` models of different skill on `samples` samples of 4 classes. */
function pool(models, samples) {
  let state = 12345;
  const next = (n) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % n;
  };
  const labels = Array.from({ length: samples }, () => next(4));
  const predictions = Array.from({ length: models }, (_, m) =>
    labels.map((y) => (next(models + 1) <= m ? y : next(4))));
  return { labels, predictions };
}

test("the app renders, reaches the server and starts WebGPU", async () => {
  await page.getByRole("heading", { name: "fuselab", level: 1 }).waitFor();
  await assertText("#server-status", /^Server: ok \(fuselab \d+\.\d+\.\d+\)$/);
  await assertText("#device-status", /^This device: WebGPU ready on /);
  const health = await (await fetch(`${baseUrl}/api/health`)).json();
  assert.equal(health.status, "ok");
});

test("a user computes a co-failure table on WebGPU and sees the exact counts", async () => {
  const names = ["resnet", "vit", "mlp", "gbm", "knn"];
  const { labels, predictions } = pool(names.length, 300);
  const csv = [["label", ...names].join(",")]
    .concat(labels.map((y, s) => [y, ...predictions.map((p) => p[s])].join(",")))
    .join("\n");
  await page.locator("#predictions").fill(csv);
  await page.getByRole("button", { name: "Compute" }).click();
  await assertText("#compute-status", /^Computed on WebGPU \(.+\); identical to the CPU result\.$/);

  const fails = predictions.map((p) => p.map((v, s) => v !== labels[s]));
  const expected = fails.map((a) => fails.map((b) => a.filter((f, s) => f && b[s]).length));
  const shown = await page.locator("#cofailure-table tbody tr").evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll("td")].map((cell) => Number(cell.textContent))));
  assert.deepEqual(shown, expected);
  assert.ok(expected.flat().some((count) => count > 0), "the pool has co-failures");

  const accuracies = await page.locator("#models-table tbody tr").evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll("td")].map((cell) => cell.textContent)));
  assert.deepEqual(accuracies, names.map((name, m) => {
    const failures = fails[m].filter(Boolean).length;
    return [name, `${(100 * (1 - failures / labels.length)).toFixed(1)} %`, `${failures} of 300`];
  }));
});

test("a typing mistake is reported with its line and column", async () => {
  await page.locator("#predictions").fill("label,a,b\n0,0,1\n1,x,1");
  await page.getByRole("button", { name: "Compute" }).click();
  await assertText("#compute-error",
    /^line 3, column `a`: expected a non-negative integer class id, found `x`$/);
});

test("the example can be loaded and computed", async () => {
  await page.getByRole("button", { name: "Use the example" }).click();
  assert.match(await page.locator("#predictions").inputValue(), /^label,resnet,vit,mlp/);
  await page.getByRole("button", { name: "Compute" }).click();
  await assertText("#compute-status", /identical to the CPU result/);
  assert.equal(await page.locator("#cofailure-table tbody tr").count(), 3);
});

test("nothing went wrong in the page", () => {
  assert.deepEqual(problems, []);
});

async function assertText(selector, pattern) {
  const locator = page.locator(selector);
  const deadline = Date.now() + 30_000;
  let text = "";
  while (Date.now() < deadline) {
    text = (await locator.count()) ? (await locator.innerText()).trim() : "";
    if (pattern.test(text)) return;
    await page.waitForTimeout(100);
  }
  assert.fail(`${selector}: expected ${pattern}, found ${JSON.stringify(text)}`);
}
