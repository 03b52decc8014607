// The shared set-up of the browser tests: the real `fuselab` binary serving the real app on a
// free port, and headless Chromium (apt) with WebGPU on SwiftShader, in fresh folders.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const BIN = process.env.FUSELAB_BIN;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--enable-unsafe-webgpu", "--enable-unsafe-swiftshader",
];

/** The administrator every test server starts with (`fuselab serve --admin-password-file`). */
export const ADMIN = { name: "admin", password: "e2e admin password" };

/**
 * Signs the browser context in through the API (`POST /api/session`): the context's request
 * client shares its cookies, so the pages opened afterwards are signed in. The sign-in page
 * itself is driven by tests/e2e/auth.test.mjs.
 */
export async function signIn(context, baseUrl, user = ADMIN) {
  const response = await context.request.post(`${baseUrl}/api/session`, { data: user });
  assert.equal(response.status(), 200, `signing in as ${user.name}: ${await response.text()}`);
  const session = await response.json();
  assert.equal(session.user?.name, user.name);
  return session;
}

/**
 * Starts the server (with the administrator `ADMIN`) and the browser and opens the app at
 * `path`, signed in as `signedIn` (a `{ name, password }`, e.g. `ADMIN`) or anonymous. With
 * `models`, the server's data directory holds the weights `fuselab models fetch` cached in
 * `$FUSELAB_DATA_DIR`; `webgpu: false` starts Chromium without WebGPU.
 * `problems` collects page errors, console errors (CSP violations among them), failed requests
 * and HTTP errors; `close()` stops everything and checks that the server exits cleanly.
 */
export async function startApp({ path = "/", models = false, demo = true, webgpu = true, signedIn = null } = {}) {
  assert.ok(BIN, "FUSELAB_BIN must point at the fuselab binary");
  const dataDir = mkdtempSync(join(tmpdir(), "fuselab-e2e-data-"));
  // Outside the data directory, as an operator would keep it.
  const secretsDir = mkdtempSync(join(tmpdir(), "fuselab-e2e-secrets-"));
  const adminPasswordFile = join(secretsDir, "admin-password");
  writeFileSync(adminPasswordFile, `${ADMIN.password}\n`, { mode: 0o600 });
  if (models) {
    assert.ok(process.env.FUSELAB_DATA_DIR, "FUSELAB_DATA_DIR must hold the fetched models (scripts/test.sh sets it)");
    symlinkSync(join(process.env.FUSELAB_DATA_DIR, "models"), join(dataDir, "models"));
  }
  if (demo) {
    // The demo pool, trained on scikit-learn's digits (scripts/test.sh passes their path).
    assert.ok(process.env.FUSELAB_DIGITS, "FUSELAB_DIGITS must point at digits.csv.gz (scripts/fetch-digits.sh)");
    const built = spawnSync(BIN, ["--data-dir", dataDir, "ensemble", "demo", "--digits", process.env.FUSELAB_DIGITS], {
      encoding: "utf8",
    });
    assert.equal(built.status, 0, built.stderr);
  }
  const profileDir = mkdtempSync(join(tmpdir(), "fuselab-e2e-chromium-"));
  const server = spawn(BIN, [
    "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--admin-password-file", adminPasswordFile,
  ], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const serverExit = new Promise((resolve) => server.on("exit", (code, signal) => resolve({ code, signal })));
  const baseUrl = await new Promise((resolve, reject) => {
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
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    // Without the WebGPU flags the page has no adapter and computes on the CPU.
    args: webgpu ? CHROMIUM_FLAGS : CHROMIUM_FLAGS.filter((f) => !f.includes("webgpu") && !f.includes("swiftshader")),
    acceptDownloads: true,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  // A request the page itself cancels (a navigation while the wasm is still loading) is not a
  // failure of the server; every other failed request is.
  page.on("requestfailed", (request) => {
    const reason = request.failure()?.errorText ?? "unknown";
    if (reason !== "net::ERR_ABORTED") problems.push(`request failed (${reason}): ${request.url()}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  if (signedIn) await signIn(context, baseUrl, signedIn);
  await page.goto(baseUrl + path);
  const close = async () => {
    await context.close();
    if (server.exitCode === null) {
      server.kill("SIGTERM");
      const { code } = await serverExit;
      assert.equal(code, 0, "fuselab exits cleanly on SIGTERM");
    }
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(secretsDir, { recursive: true, force: true });
    rmSync(profileDir, { recursive: true, force: true });
  };
  return { page, context, baseUrl, problems, close, dataDir };
}

/** Waits until the element's trimmed text matches `pattern` (30 s at most). */
export async function assertText(page, selector, pattern) {
  const locator = page.locator(selector);
  const deadline = Date.now() + 30_000;
  let text = "";
  while (Date.now() < deadline) {
    // innerText where the element has it (HTML), textContent for SVG.
    text = (await locator.count())
      ? (await locator.first().evaluate((el) => el.innerText ?? el.textContent)).trim()
      : "";
    if (pattern.test(text)) return;
    await page.waitForTimeout(100);
  }
  assert.fail(`${selector}: expected ${pattern}, found ${JSON.stringify(text)}`);
}

const AXE = readFileSync(new URL("../../node_modules/axe-core/axe.min.js", import.meta.url), "utf8");

/**
 * The serious and critical accessibility violations axe-core (npm) finds on the page as it
 * stands, as `impact id: selector` lines. axe runs through the DevTools protocol, which the
 * app's CSP does not restrict.
 */
export async function seriousViolations(page) {
  await page.evaluate(AXE);
  const { violations } = await page.evaluate(() => axe.run(document, { resultTypes: ["violations"] }));
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .flatMap((v) => v.nodes.map((n) => `${v.impact} ${v.id}: ${n.target.join(" ")} (${v.help})`));
}
