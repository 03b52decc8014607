// Harmful fine-tuning runs in the browser: the Alignment page (`/align`) shows the example
// benchmark (examples/attack-small.toml, prefilled) as a form over its TOML (a change in the
// form is a change in the TOML; a wrong value is refused naming the field), starts it on the
// real server, shows its training
// progress live (stage, step, loss), then the run's results table, both charts and its report;
// after a reload the run is still listed with its results. Delete removes a finished run, and
// Cancel stops a training one and deletes it with its folder. An LLM-ensemble run
// (LLM-TOPLA-Summary on the tiny model) starts from its own example and lists its report; an
// H3Fusion run shows its scores and routing heat-maps. The browser is signed in as the
// administrator (tests/e2e/auth.test.mjs covers anonymous visitors and users who may not train).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ADMIN, assertText, startApp } from "./harness.mjs";

let app, page;

before(async () => {
  app = await startApp({ path: "/align", demo: false, signedIn: ADMIN });
  ({ page } = app);
});

after(async () => {
  await app?.close();
});

/** Waits until every chart image of the first run has loaded. */
async function chartsLoaded(run) {
  await run.locator(".charts img").first().waitFor();
  assert.equal(await run.locator(".charts img").count(), 2);
  await page.waitForFunction(
    () => [...document.querySelectorAll(".align-run .charts img")].every((img) => img.complete && img.naturalWidth > 0),
    null,
    { timeout: 30_000 },
  );
}

test("the Alignment page runs the example benchmark live and shows its results, charts and report", async () => {
  await page.getByRole("heading", { name: "Alignment and LLM-ensemble runs", level: 2 }).waitFor();
  await assertText(page, "#align-empty", /None yet/);
  assert.equal(await page.locator("#align-action").inputValue(), "benchmark");
  assert.match(await page.locator("#align-config").inputValue(), /\[grid\][^]*defences = \["sft", "booster", "vaccine", "lisa"\]/);

  // The settings form reads and writes the TOML.
  assert.equal(await page.locator("#align-p").inputValue(), "0, 0.5");
  assert.equal(await page.locator("#align-device").inputValue(), "cpu");
  const example = await page.locator("#align-config").inputValue();
  await page.locator('#align-defences input[value="vaccine"]').uncheck();
  assert.match(await page.locator("#align-config").inputValue(), /defences = \["sft", "booster", "lisa"\]/);
  await page.locator("#align-p").fill("0, 1.5");
  await page.locator("#align-p").press("Enter");
  await assertText(page, '[data-field="p"] .field-error', /^Poison ratios p: "1\.5" is not a share between 0 and 1$/);
  await page.locator("#align-p").fill("0,0.5");
  await page.locator("#align-p").press("Enter");
  assert.equal(await page.locator('[data-field="p"] .field-error').count(), 0);
  await page.locator('#align-defences input[value="vaccine"]').check();
  assert.equal(await page.locator("#align-config").inputValue(), example, "back to the example, comments and all");

  const started = Date.now();
  await page.click("#align-start");
  await assertText(page, "#align-feedback", /^Run [0-9a-f]{32} started\.$/);
  await assertText(page, "#align-stage", /^Stage \S+ · step \d+\/\d+ · loss \d+\.\d{4}$/);

  // The progress view follows the stages until the run is done.
  const stages = new Set();
  let status = "";
  while (Date.now() - started < 240_000) {
    status = await page.locator("#align-live").getAttribute("data-status");
    const stage = (await page.locator("#align-stage").innerText()).match(/^Stage (\S+)/);
    if (stage) stages.add(stage[1]);
    if (status === "done" || status === "failed") break;
    await page.waitForTimeout(100);
  }
  console.log(`benchmark on the page: ${((Date.now() - started) / 1000).toFixed(1)} s; stages seen: ${[...stages].join(", ")}`);
  assert.equal(status, "done", await page.locator("#align-live").innerText());
  assert.ok(stages.size >= 3, `several stages shown as they trained: ${[...stages]}`);
  await assertText(page, "#align-run-status", /: done \(308 training steps\)$/);
  assert.equal(await page.locator("#align-progress").evaluate((p) => p.value), 1);

  // The run's results: 3 aligned models, then 4 defences × 2 ratios.
  const run = page.locator(".align-run").first();
  await run.locator("table.align-results").waitFor();
  assert.equal(await run.getAttribute("data-status"), "done");
  assert.equal(await run.locator("table.align-results tbody tr").count(), 11);
  const first = await run.locator("table.align-results tbody tr").first().locator("td").allInnerTexts();
  assert.deepEqual(first.slice(0, 3), ["sft", "aligned", "–"]);
  for (const cell of first.slice(3)) assert.match(cell, /^\d+\.\d$/);
  const last = await run.locator("table.align-results tbody tr").last().locator("td").allInnerTexts();
  assert.deepEqual(last.slice(0, 3), ["lisa", "0.5", "40"]);
  await chartsLoaded(run);

  // The report and the CSV come from the run's files.
  const report = await page.request.get(app.baseUrl + (await run.getByRole("link", { name: "Report" }).getAttribute("href")));
  assert.equal(report.status(), 200);
  assert.match(await report.text(), /Harmful fine-tuning benchmark/);
  const csv = await page.request.get(app.baseUrl + (await run.getByRole("link", { name: "CSV" }).getAttribute("href")));
  assert.equal((await csv.text()).trim().split("\n").length, 12);

  // A reload lists the run with its results; nothing is followed any more.
  await page.reload();
  await page.locator(".align-run table.align-results").waitFor();
  assert.equal(await page.locator(".align-run").count(), 1);
  assert.equal(await page.locator("#align-live").count(), 0);
  await chartsLoaded(page.locator(".align-run").first());
  // An administrator sees whose runs they are.
  assert.match(await page.locator(".align-run .owner").first().innerText(), new RegExp(`· ${ADMIN.name}$`));
  assert.deepEqual(app.problems, []);
});

/** The ids of the listed runs. */
function listedRuns() {
  return page.locator(".align-run").evaluateAll((runs) => runs.map((run) => run.id.replace(/^run-/, "")));
}

test("a training run can be cancelled, and a finished one deleted, with their folders", async () => {
  const [finished] = await listedRuns();
  assert.ok(existsSync(join(app.dataDir, "artifacts", "align", finished)));

  await page.click("#align-start");
  await assertText(page, "#align-feedback", /^Run [0-9a-f]{32} started\.$/);
  const training = (await page.locator("#align-feedback").innerText()).match(/Run ([0-9a-f]{32})/)[1];
  await assertText(page, "#align-stage", /^Stage \S+ · step \d+\/\d+/);
  const row = page.locator(`#run-${training}`);
  await assertText(page, `#run-${training} button.delete`, /^Cancel$/);
  await row.locator("button.delete").click();
  await assertText(page, "#align-feedback", new RegExp(`^Run ${training} deleted\\.$`));
  await row.waitFor({ state: "detached" });
  assert.equal(await page.locator("#align-live").count(), 0, "the cancelled run is no longer followed");
  assert.deepEqual(await listedRuns(), [finished]);
  assert.equal((await app.context.request.get(`${app.baseUrl}/api/align/runs/${training}`)).status(), 404);
  assert.ok(!existsSync(join(app.dataDir, "artifacts", "align", training)), "the cancelled run's folder is gone");

  await assertText(page, `#run-${finished} button.delete`, /^Delete$/);
  await page.locator(`#run-${finished} button.delete`).click();
  await page.locator("#align-empty").waitFor();
  assert.ok(!existsSync(join(app.dataDir, "artifacts", "align", finished)), "the deleted run's folder is gone");
  assert.deepEqual(app.problems, []);
});

/** A small fusion study under the server's align-data: three members, each right when the
 * question names its colour. */
function writeStudy(dir) {
  const colours = ["red", "green", "blue"];
  mkdirSync(join(dir, "answers"), { recursive: true });
  const questions = [];
  const answers = [[], [], []];
  for (let i = 0; i < 60; i++) {
    const colour = i % 3;
    const gold = 1 + ((i * 7) % 9);
    questions.push(JSON.stringify({ id: `q${i}`, question: `Trust ${colours[colour]}.`, answer: `#### ${gold}` }));
    colours.forEach((_, j) => {
      // 1 + (gold + j) % 9 never equals gold for j < 8.
      const value = j === colour ? gold : 1 + ((gold + j) % 9);
      answers[j].push(JSON.stringify({ id: `q${i}`, samples: [`The answer is ${value}.`] }));
    });
  }
  writeFileSync(join(dir, "questions.jsonl"), questions.join("\n") + "\n");
  colours.forEach((c, j) => writeFileSync(join(dir, "answers", `${c}.jsonl`), answers[j].join("\n") + "\n"));
}

test("an LLM-ensemble run starts from its example and lists its report", async () => {
  writeStudy(join(app.dataDir, "align-data", "study"));
  await page.selectOption("#align-action", "topla-summary");
  assert.match(await page.locator("#align-config").inputValue(), /task = "gsm8k"[^]*name = "smollm2"/);
  assert.equal(await page.locator("#align-model").inputValue(), "smollm2");
  await page.locator("#align-view-tab-1").click();
  await page.locator("#align-config").fill(`device = "cpu"
seed = 5
task = "gsm8k"
questions = "study/questions.jsonl"
answers = "study/answers"

[model]
name = "tiny"
lora = { rank = 4, alpha = 8, dropout = 0.0, targets = ["q_proj"] }
train = { batch_size = 8, epochs = 2, max_len = 96, seed = 5, optim = { learning_rate = 3e-3, schedule = "linear" } }

[eval]
max_new_tokens = 8
`);
  await page.click("#align-start");
  await assertText(page, "#align-feedback", /^Run [0-9a-f]{32} started\.$/);
  const id = (await page.locator("#align-feedback").innerText()).match(/Run ([0-9a-f]{32})/)[1];
  const run = page.locator(`#run-${id}`);
  await run.locator(".files a", { hasText: "Report" }).waitFor({ timeout: 120_000 });
  assert.equal(await run.getAttribute("data-status"), "done");
  assert.match(await run.locator("h4").innerText(), /^LLM ensemble · topla-summary · /);
  assert.equal(await run.locator("table.align-results").count(), 0);
  const report = await page.request.get(app.baseUrl + (await run.getByRole("link", { name: "Report" }).getAttribute("href")));
  assert.equal(report.status(), 200);
  assert.match(await report.text(), /LLM-TOPLA-Summary[^]*TOPLA-Summary \(generated\)/);
  const json = await page.request.get(app.baseUrl + (await run.getByRole("link", { name: "JSON" }).getAttribute("href")));
  assert.equal((await json.json()).schema, "fuselab.topla.summary/v1");
  assert.deepEqual(app.problems, []);
});

test("an H3Fusion run starts from its example and shows every model's scores and the routing heat-maps", async () => {
  await page.selectOption("#align-action", "h3fusion");
  assert.match(await page.locator("#align-config").inputValue(), /\[stage3\][^]*top_k = 2/);
  await page.locator("#align-view-tab-0").click();
  assert.equal(await page.locator("#align-model").inputValue(), "tiny");
  await page.click("#align-start");
  await assertText(page, "#align-feedback", /^Run [0-9a-f]{32} started\.$/);
  const id = (await page.locator("#align-feedback").innerText()).match(/Run ([0-9a-f]{32})/)[1];
  await assertText(page, "#align-stage", /^Stage \S+ · step \d+\/\d+ · loss \d+\.\d{4}$/);
  const run = page.locator(`#run-${id}`);
  await run.locator("table.h3fusion-scores").waitFor({ timeout: 240_000 });
  assert.match(await run.locator("h4").innerText(), /^fusion · h3fusion · /);
  const models = await run.locator("table.h3fusion-scores tbody tr td:first-child").allInnerTexts();
  assert.deepEqual(models, ["base", "expert:helpful", "expert:harmless", "expert:honest", "fused"]);
  for (const cell of await run.locator("table.h3fusion-scores tbody td.number").allInnerTexts()) {
    assert.match(cell, /^\d{1,3}$/);
  }
  // One heat-map per task: a row per layer, a column per expert, each cell shaded by its share.
  assert.deepEqual(
    await run.locator("table.heatmap").evaluateAll((t) => t.map((x) => x.dataset.task)),
    ["helpful", "harmless", "honest"],
  );
  const heat = run.locator('table.heatmap[data-task="harmless"]');
  assert.ok((await heat.locator("tbody tr").count()) >= 1);
  const cells = await heat.locator("tbody tr").first().locator("td").evaluateAll((tds) =>
    tds.map((td) => ({ p: Number(td.textContent), background: td.style.backgroundColor })));
  assert.equal(cells.length, 3);
  for (const { p, background } of cells) {
    const shade = Math.round(255 * (1 - p));
    // The two decimals shown round p; the shade comes from the exact value.
    const [r] = background.match(/\d+/g).map(Number);
    assert.ok(Math.abs(r - shade) <= 2, `${p}: ${background}`);
  }
  const sum = cells.reduce((s, c) => s + c.p, 0);
  assert.ok(Math.abs(sum - 1) < 0.02, `router probabilities of a layer sum to 1: ${sum}`);
  const report = await page.request.get(app.baseUrl + (await run.getByRole("link", { name: "Report" }).getAttribute("href")));
  assert.equal(report.status(), 200);
  assert.match(await report.text(), /<svg[^]*routing of harmless prompts/);
  assert.deepEqual(app.problems, []);
});
