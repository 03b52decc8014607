// Browser end-to-end: the real `fuselab` binary serves the real app; headless Chromium (apt) does
// what a user does and the test checks what the user sees, including a WebGPU dispatch whose
// result is compared with an independent computation here.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { assertText as waitForText, startApp } from "./harness.mjs";

let app, page, baseUrl;

before(async () => {
  app = await startApp({ path: "/ensembles" });
  ({ page, baseUrl } = app);
});

after(async () => {
  await app?.close();
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

test("the home page says what each tool does, where its data goes, and leads into each", async () => {
  await page.goto(baseUrl + "/");
  await page.getByRole("heading", { name: "What you can do here", level: 2 }).waitFor();
  const cards = await page.locator("#home .card").evaluateAll((list) =>
    list.map((card) => ({
      name: card.querySelector("h3").textContent,
      href: card.querySelector("h3 a").getAttribute("href"),
      where: card.dataset.where,
      text: card.querySelector(".where").textContent,
    })));
  assert.deepEqual(cards.map((c) => [c.name, c.href, c.where]), [
    ["Protect photos", "/protect", "both"],
    ["Faces", "/faces", "device"],
    ["Ensembles", "/ensembles", "both"],
    ["Pose", "/pose", "device"],
    ["Alignment", "/align", "server"],
    ["CTR", "/ctr", "server"],
  ]);
  for (const card of cards.filter((c) => c.where === "device")) assert.match(card.text, /^On this device\. /);
  await page.getByRole("link", { name: "Pose", exact: true }).first().click();
  await page.waitForURL(`${baseUrl}/pose`);
  await page.getByRole("heading", { name: "Pose", level: 2, exact: true }).waitFor();
  await page.getByRole("link", { name: "fuselab" }).click();
  await page.waitForURL(`${baseUrl}/`);
});

test("nothing went wrong in the page", () => {
  assert.deepEqual(app.problems, []);
});

function assertText(selector, pattern) {
  return waitForText(page, selector, pattern);
}
