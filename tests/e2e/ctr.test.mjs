// CTR benchmarks in the browser: the CTR page (`/ctr`) starts its example (DIN, DIN + trigger and
// CCN on the synthetic benchmark, examples/ctr-server.toml, prefilled) on the real server, shows
// each epoch live (run, epoch, validation AUC), then the summary table with the ceiling and the
// report; after a reload the benchmark is still listed, the Alignment page does not list it, and
// Delete removes it with its folder. The browser is signed in as the administrator.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ADMIN, assertText, startApp } from "./harness.mjs";

let app, page;

before(async () => {
  app = await startApp({ path: "/ctr", demo: false, signedIn: ADMIN });
  ({ page } = app);
});

after(async () => {
  await app?.close();
});

test("the CTR page runs the example benchmark live and shows its summary and report", async () => {
  await page.getByRole("heading", { name: "Click-through-rate prediction", level: 2 }).waitFor();
  await assertText(page, "#ctr-empty", /None yet/);
  assert.match(await page.locator("#ctr-config").inputValue(), /\[data\.synthetic\][^]*\[benchmark\]/);

  const started = Date.now();
  await page.click("#ctr-start");
  await assertText(page, "#ctr-feedback", /^Benchmark [0-9a-f]{32} started\.$/);
  await assertText(
    page,
    "#ctr-stage",
    /^Run \d\/3 \((din|din-trigger|ccn)-seed1\) · epoch \d\/4 · training BCE \d\.\d{4} · validation AUC \d\.\d{4}, GAUC \d\.\d{4}$/,
  );
  const runs = new Set();
  let status = "";
  while (Date.now() - started < 240_000) {
    status = await page.locator("#ctr-live").getAttribute("data-status");
    const run = (await page.locator("#ctr-stage").innerText()).match(/\((\S+)\)/);
    if (run) runs.add(run[1]);
    if (status === "done" || status === "failed") break;
    await page.waitForTimeout(100);
  }
  console.log(`CTR benchmark on the page: ${((Date.now() - started) / 1000).toFixed(1)} s; runs seen: ${[...runs].join(", ")}`);
  assert.equal(status, "done", await page.locator("#ctr-live").innerText());
  assert.ok(runs.size >= 2, `runs shown as they trained: ${[...runs]}`);

  const run = page.locator(".ctr-run").first();
  await run.locator("table.ctr-results").waitFor();
  const rows = run.locator("table.ctr-results tbody tr");
  assert.equal(await rows.count(), 4, "three models and the ceiling");
  assert.deepEqual(
    await rows.evaluateAll((trs) => trs.map((tr) => tr.cells[0].innerText)),
    ["din", "din-trigger", "ccn (λ = 0.1)", "true click probabilities (ceiling)"],
  );
  for (const cell of await rows.first().locator("td").allInnerTexts()) assert.ok(cell.length > 0);
  assert.match(await rows.first().locator("td").nth(2).innerText(), /^0\.\d{4} ± 0\.\d{4}$/);

  const report = await page.request.get(app.baseUrl + (await run.getByRole("link", { name: "Report" }).getAttribute("href")));
  assert.equal(report.status(), 200);
  assert.match(await report.text(), /CTR benchmark[^]*true click probabilities \(ceiling\)/);

  await page.reload();
  await page.locator(".ctr-run table.ctr-results").waitFor();
  assert.equal(await page.locator(".ctr-run").count(), 1);
  assert.deepEqual(app.problems, []);
});

test("the Alignment page leaves CTR benchmarks out, and Delete removes one with its folder", async () => {
  const id = (await page.locator(".ctr-run").first().getAttribute("id")).replace(/^run-/, "");
  await page.goto(`${app.baseUrl}/align`);
  await page.getByRole("heading", { name: "Alignment and LLM-ensemble runs", level: 2 }).waitFor();
  await assertText(page, "#align-empty", /None yet/);
  assert.equal(await page.locator("#align-action option[value=ctr-benchmark]").count(), 0);

  await page.goto(`${app.baseUrl}/ctr`);
  assert.ok(existsSync(join(app.dataDir, "artifacts", "align", id)));
  await page.locator(`#run-${id} button.delete`).click();
  await page.locator("#ctr-empty").waitFor();
  assert.ok(!existsSync(join(app.dataDir, "artifacts", "align", id)), "the deleted benchmark's folder is gone");
  assert.deepEqual(app.problems, []);
});
