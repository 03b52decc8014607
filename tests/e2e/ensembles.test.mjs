// The Ensembles page in a real browser against the real server: reference vector files are
// analysed in the page's Web Worker and the top-K table must equal the CLI's JSON for the same
// file; CSV pairs, exports, cancelling and a malformed file behave as a user expects. The
// browser is signed in as the administrator: saving reports and the server's analyses need a
// user (tests/e2e/auth.test.mjs covers the page without one).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADMIN, BIN, assertText, startApp } from "./harness.mjs";

const VECTORS = new URL("../../shared/tests/vectors/focal/", import.meta.url);

let app, page, dir;

before(async () => {
  app = await startApp({ path: "/ensembles", signedIn: ADMIN });
  page = app.page;
  dir = mkdtempSync(join(tmpdir(), "fuselab-e2e-pools-"));
});

after(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The pool of a reference vector file, written in the engine's JSON input format. */
function poolFile(vectorCase) {
  const { inputs } = JSON.parse(readFileSync(new URL(`${vectorCase}.json`, VECTORS), "utf8"));
  const pool = {
    labels: inputs.labels,
    models: inputs.predictions.map((predictions, m) => ({
      name: `m${m}`,
      predictions,
      probabilities: inputs.probabilities[m],
    })),
  };
  const path = join(dir, `${vectorCase}.json`);
  writeFileSync(path, JSON.stringify(pool));
  return path;
}

function cli(args) {
  const run = spawnSync(BIN, ["ensemble", "analyze", ...args, "--format", "json"], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout);
}

async function analyse(files, topK = "10", runOn = "auto") {
  await page.locator("#pool-files").setInputFiles(files);
  await page.locator("#top-k").fill(topK);
  await page.locator("#run-on").selectOption(runOn);
  await page.locator("#analyze").click();
}

/** A deterministic pool of `models` models of different skill, in the JSON input format. */
function syntheticPool(name, models, samples) {
  let state = 7;
  const next = (n) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % n;
  };
  const labels = Array.from({ length: samples }, () => next(10));
  const pool = {
    labels,
    models: Array.from({ length: models }, (_, m) => ({
      name: `model${m}`,
      predictions: labels.map((y) => (next(100) < 60 + m ? y : next(10))),
    })),
  };
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(pool));
  return path;
}

/** The top-K table as [members, size, focal, plurality, majority, soft vote] strings. */
function shownTeams() {
  return page.locator("#top-teams tbody tr").evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll("td:not(.combined)")].map((cell) => cell.textContent)));
}

function expectedTeams(report) {
  const four = (v) => (v === null ? "–" : v.toFixed(4));
  return report.teams.map((team) => [
    team.members.map((m) => report.models[m].name).join("+"),
    String(team.members.length),
    four(team.focal_diversity),
    four(team.plurality_accuracy),
    four(team.majority_accuracy),
    four(team.soft_vote_accuracy),
  ]);
}

for (const vectorCase of ["random_6m_500s_10c", "hand_4m_ties", "always_right_wrong"]) {
  test(`${vectorCase}: the browser's top-K table equals the CLI's JSON`, async () => {
    const path = poolFile(vectorCase);
    await analyse([path]);
    await assertText(page, "#analysis-summary", /analysed in this browser in \d+ ms\.$/);
    const expected = cli([path, "--top-k", "10"]);
    assert.deepEqual(await shownTeams(), expectedTeams(expected));
    const models = await page.locator("#ensemble-models tbody tr").count();
    assert.equal(models, expected.n_models);
  });
}

test("plots: every team in the scatter, the top-K ringed, a heat-map per statistic", async () => {
  const path = poolFile("random_6m_500s_10c");
  await analyse([path], "5");
  await assertText(page, "#analysis-summary", /^6 models, 500 samples, 10 classes/);
  // 57 teams of sizes 2 to 6; 5 of them highlighted.
  assert.equal(await page.locator("#plot-scatter circle.point").count(), 57);
  assert.equal(await page.locator('#plot-scatter circle.point[stroke="#000000"]').count(), 5);
  const hover = await page.locator("#plot-scatter circle.point title").first().textContent();
  assert.match(hover, /^m0\+m1 — focal diversity 0\.\d{4}, plurality accuracy 0\.\d{4}$/);
  assert.equal(await page.locator("#plot-sizes polyline").count(), 4);
  assert.equal(await page.locator("#plot-heatmap rect title").count(), 36 + 0);
  await page.locator("#heatmap-metric").selectOption({ label: "Q-statistic" });
  await assertText(page, "#plot-heatmap", /pairwise Q-statistic of the models \(all samples; grey: undefined\)/);
  // Picking a scatter point opens its details.
  await page.locator("#plot-scatter circle.point").nth(3).click();
  await assertText(page, "#team-detail h4", /^m0\+m4$/);
  // The vote breakdown covers every sample once.
  const split = await page.locator("#vote-breakdown tbody tr td:nth-child(2)").allTextContents();
  assert.equal(split.length, 3);
  assert.equal(split.map(Number).reduce((a, b) => a + b, 0), 500);
});

test("exports: the report JSON is the CLI's schema and the plots save as SVG and PNG", async () => {
  const path = poolFile("binary_5m_2c");
  await analyse([path], "3");
  await assertText(page, "#analysis-summary", /^5 models, 200 samples, 2 classes/);
  const [json] = await Promise.all([page.waitForEvent("download"), page.locator("#export-json").click()]);
  const report = JSON.parse(readFileSync(await json.path(), "utf8"));
  const expected = cli([path, "--top-k", "3", "--detail", "full"]);
  assert.equal(report.schema, "fuselab.ensemble.report/v1");
  assert.deepEqual(report.top_k, expected.top_k);
  assert.deepEqual(report.teams.map((t) => JSON.stringify(t)), expected.teams.map((t) => JSON.stringify(t)));
  const [csv] = await Promise.all([page.waitForEvent("download"), page.locator("#export-csv").click()]);
  const lines = readFileSync(await csv.path(), "utf8").trim().split("\n");
  assert.equal(lines[0], "members,size,focal_diversity,plurality_accuracy,majority_accuracy,soft_vote_accuracy");
  assert.equal(lines.length, 4);
  const svgButton = page.locator("#plot-scatter + .actions button", { hasText: "SVG" });
  const [svg] = await Promise.all([page.waitForEvent("download"), svgButton.click()]);
  assert.match(readFileSync(await svg.path(), "utf8"), /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const pngButton = page.locator("#plot-scatter + .actions button", { hasText: "PNG" });
  const [png] = await Promise.all([page.waitForEvent("download"), pngButton.click()]);
  const bytes = readFileSync(await png.path());
  assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG file");
});

test("a CSV pair is recognised and gives the CLI's numbers", async () => {
  const { inputs } = JSON.parse(readFileSync(new URL("hand_3m_3c.json", VECTORS), "utf8"));
  const labels = join(dir, "labels.csv");
  const predictions = join(dir, "predictions.csv");
  writeFileSync(labels, ["label", ...inputs.labels].join("\n"));
  writeFileSync(predictions, [["a", "b", "c"].join(",")]
    .concat(inputs.labels.map((_, s) => inputs.predictions.map((p) => p[s]).join(","))).join("\n"));
  await analyse([predictions, labels]);
  await assertText(page, "#analysis-summary", /^3 models, 15 samples/);
  const expected = cli(["--labels", labels, "--predictions", predictions, "--top-k", "10"]);
  assert.deepEqual(await shownTeams(), expectedTeams(expected));
});

test("a malformed file is named in a readable error and the page stays usable", async () => {
  const bad = join(dir, "ragged.json");
  writeFileSync(bad, JSON.stringify({ labels: [0, 1, 2], models: [
    { name: "a", predictions: [0, 1, 2] }, { name: "b", predictions: [0, 1] }] }));
  await analyse([bad]);
  await assertText(page, "[role=alert]",
    /^ragged\.json: not a valid model pool: model `b`: expected 3 predictions \(one per label\), found 2$/);
  const notJson = join(dir, "broken.json");
  writeFileSync(notJson, "{ labels: ");
  await analyse([notJson]);
  await assertText(page, "[role=alert]", /^broken\.json: /);
  await analyse([poolFile("hand_3m_3c")]);
  await assertText(page, "#analysis-summary", /^3 models, 15 samples/);
});

test("a long run can be cancelled, and the next run works", async () => {
  // 18 models on this device: 262,125 teams, seconds of work in the worker.
  const big = syntheticPool("big", 18, 5000);
  await analyse([big], "10", "device");
  await page.locator("#cancel").click();
  await assertText(page, "[role=status]", /^Cancelled\.$/);
  await analyse([poolFile("hand_3m_3c")]);
  await assertText(page, "#analysis-summary", /^3 models, 15 samples/);
});

test("a pool of more than 100,000 teams is analysed on the server, with the CLI's numbers", async () => {
  const large = syntheticPool("large", 17, 2000);
  await analyse([large], "8");
  await assertText(page, "#analysis-summary", /^17 models, 2000 samples, 10 classes; analysed on the server in \d+ ms\.$/);
  assert.deepEqual(await shownTeams(), expectedTeams(cli([large, "--top-k", "8"])));
  await assertText(page, ".results", /More than 20000 teams: the scatter plot is left out/);
});

test("a report is saved, its share URL shows the same report read-only, and it can be deleted", async () => {
  await analyse([poolFile("random_6m_500s_10c")]);
  await assertText(page, "#analysis-summary", /analysed in this browser/);
  const teams = await shownTeams();
  await page.locator("#save-report").click();
  await assertText(page, "#save-status", /^Saved: \/reports\/[0-9a-f]{32}$/);
  const url = await page.locator("#share-link").getAttribute("href");

  await page.goto(new URL(url, app.baseUrl).href);
  await assertText(page, "#analysis-summary", /^6 models, 500 samples, 10 classes; saved report [0-9a-f]{32}, read-only\.$/);
  assert.deepEqual(await shownTeams(), teams);
  assert.equal(await page.locator("#save-report").count(), 0);
  assert.equal(await page.locator("#plot-scatter circle.point").count(), 57);

  await page.goto(`${app.baseUrl}/ensembles`);
  const row = page.locator("#saved-reports tbody tr", { has: page.locator(`a[href="${url}"]`) });
  await row.waitFor();
  await assertText(page, "#saved-reports", /6 models: m0, m1, m2, m3, m4, m5/);
  // An administrator's list names each report's owner.
  assert.equal(await row.locator("td.owner").innerText(), ADMIN.name);
  await row.getByRole("button", { name: "Delete" }).click();
  await page.locator("#saved-empty").waitFor();

  const before = app.problems.length;
  await page.goto(new URL(url, app.baseUrl).href);
  await assertText(page, "[role=alert]", /^no saved report `[0-9a-f]{32}`$/);
  // That 404 (and the browser's console line about it) was expected; nothing else may appear.
  const id = url.split("/").pop();
  assert.deepEqual(app.problems.slice(before).sort(), [
    "console error: Failed to load resource: the server responded with a status of 404 (Not Found)",
    `HTTP 404: ${app.baseUrl}/api/reports/${id}`,
  ].sort());
  app.problems.length = before;
  await page.goto(`${app.baseUrl}/ensembles`);
});

test("Try the demo: eight classifiers trained on scikit-learn's digits, with the CLI's numbers", async () => {
  await page.locator("#top-k").fill("10");
  await page.locator("#run-on").selectOption("auto");
  await page.locator("#try-demo").click();
  await assertText(page, "#analysis-summary", /^8 models, 289 samples \(the test split of 719\), 10 classes; analysed in this browser in \d+ ms\.$/);
  const expected = cli([join(app.dataDir, "demo", "digits-pool.json"), "--top-k", "10"]);
  assert.deepEqual(await shownTeams(), expectedTeams(expected));
  const models = await page.locator("#ensemble-models tbody td:first-child").allTextContents();
  assert.deepEqual(models, [
    "softmax-regression", "mlp-tanh-32", "mlp-relu-128-64", "cnn-3x3x8",
    "1-nearest-neighbour", "9-nearest-neighbours-weighted", "gaussian-naive-bayes", "nearest-centroid",
  ]);
  // 247 teams of sizes 2 to 8, all in the scatter plot.
  assert.equal(await page.locator("#plot-scatter circle.point").count(), 247);

  // Combine the picked team in the worker: the same network as the CLI's, the same numbers.
  const members = (await page.locator("#team-detail h4").innerText()).split("+");
  await page.locator("#combine-method").selectOption("mlp");
  await page.locator("#combine-run").click();
  await page.locator("#combine-summary").waitFor({ timeout: 120_000 });
  await assertText(page, "#combine-summary", /^Trained on 287 train samples, chosen on 143 val, scored on 289 test samples/);
  const run = spawnSync(BIN, [
    "ensemble", "combine", join(app.dataDir, "demo", "digits-pool.json"), "--team", members.join(","), "--format", "json",
  ], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  const team = JSON.parse(run.stdout).teams[0];
  const shown = await page.locator("#combine-table tr.combined").getAttribute("data-accuracy");
  assert.equal(Number(shown), team.combined.accuracy);
  const softVote = team.baselines.find((b) => b.name === "soft vote").scores.accuracy;
  assert.equal(Number(await page.locator("#combine-table tr.vote").first().getAttribute("data-accuracy")), softVote);
  assert.equal(await page.locator("#combine-curve polyline").count(), 2);

  // The top-K table's combined-accuracy column: a weighted vote per team, as the CLI's.
  await page.locator("#combine-all-method").selectOption("weighted-vote");
  await page.locator("#combine-all").click();
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#top-teams tbody td.combined")].every((cell) => cell.dataset.accuracy !== undefined),
  null, { timeout: 120_000 });
  const first = (await page.locator("#top-teams tbody tr").first().locator("td").first().innerText()).split("+");
  const voted = spawnSync(BIN, [
    "ensemble", "combine", join(app.dataDir, "demo", "digits-pool.json"), "--team", first.join(","), "--method", "weighted-vote", "--format", "json",
  ], { encoding: "utf8" });
  assert.equal(voted.status, 0, voted.stderr);
  const firstCell = await page.locator("#top-teams tbody tr").first().locator("td.combined").getAttribute("data-accuracy");
  assert.equal(Number(firstCell), JSON.parse(voted.stdout).teams[0].combined.accuracy);
  assert.equal(await page.locator("#top-teams tbody td.combined").count(), 10);
});

test("LLM answer sets dropped in: the pool of `llm topla pool`, its analysis and a combiner, as the CLI", async () => {
  const questions = join(dir, "questions.jsonl");
  const generated = spawnSync(BIN, ["llm", "questions", "--task", "mmlu", "--count", "60", "--seed", "4", "--out", questions], { encoding: "utf8" });
  assert.equal(generated.status, 0, generated.stderr);
  const gold = readFileSync(questions, "utf8").trim().split("\n").map((line) => JSON.parse(line));
  const letters = ["A", "B", "C", "D"];
  // Three members that know different thirds of the questions and guess otherwise.
  const answers = ["alpha", "beta", "gamma"].map((name, m) => {
    const lines = gold.map((q, i) => {
      const right = letters[q.answer];
      const guess = letters[(q.answer + 1 + ((i + m) % 3)) % 4];
      const samples = i % 3 === m ? [`${right}.`, `${right}.`, `${right}.`] : [`${guess}.`, `${right}.`, `${guess}.`];
      return JSON.stringify({ id: q.id, samples });
    });
    const path = join(dir, `${name}.jsonl`);
    writeFileSync(path, lines.join("\n") + "\n");
    return path;
  });
  await analyse([questions, ...answers]);
  await assertText(page, "#analysis-summary", /^3 models, 12 samples \(the test split of 60\), 6 classes/);
  const pool = join(dir, "answers-pool.json");
  const answerDir = mkdtempSync(join(tmpdir(), "fuselab-e2e-answers-"));
  for (const path of answers) writeFileSync(join(answerDir, path.split("/").pop()), readFileSync(path));
  const built = spawnSync(BIN, ["llm", "topla", "pool", "--answers", answerDir, "--gold", questions, "--task", "mmlu", "--out", pool], { encoding: "utf8" });
  assert.equal(built.status, 0, built.stderr);
  rmSync(answerDir, { recursive: true, force: true });
  assert.deepEqual(await shownTeams(), expectedTeams(cli([pool, "--top-k", "10"])));

  const members = (await page.locator("#team-detail h4").innerText()).split("+");
  await page.locator("#combine-method").selectOption("stacking");
  await page.locator("#combine-run").click();
  await page.locator("#combine-summary").waitFor({ timeout: 60_000 });
  const run = spawnSync(BIN, ["ensemble", "combine", pool, "--team", members.join(","), "--method", "stacking", "--format", "json"], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  const team = JSON.parse(run.stdout).teams[0];
  assert.equal(Number(await page.locator("#combine-table tr.combined").getAttribute("data-accuracy")), team.combined.accuracy);
});

test("WebGPU and the CPU give the same report, bit for bit", async () => {
  // 13 models: 8,178 teams, every team's focal diversity from the team_sums.wgsl kernel.
  const path = syntheticPool("gpu", 13, 3000);
  const reports = {};
  for (const compute of ["gpu", "cpu"]) {
    await page.locator("#compute-on").selectOption(compute);
    await analyse([path], "15");
    await assertText(page, "#analysis-summary", /^13 models, 3000 samples, 10 classes; analysed in this browser/);
    const summary = await page.locator("#analysis-summary").innerText();
    if (compute === "gpu") {
      assert.match(summary, /; focal diversity on WebGPU \(.+\), checked against the CPU on \d+ teams\.$/);
    } else {
      assert.doesNotMatch(summary, /WebGPU/);
    }
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#export-json").click()]);
    reports[compute] = readFileSync(await download.path(), "utf8");
  }
  assert.equal(reports.gpu, reports.cpu);
  assert.equal(JSON.parse(reports.gpu).top_k.length, 15);
  await page.locator("#compute-on").selectOption("auto");
});

test("nothing went wrong in the page", () => {
  assert.deepEqual(app.problems, []);
});
