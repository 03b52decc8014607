// Photo protection in the browser, a guided flow: a key trained by the CLI is loaded (with its
// passphrase), a test photo is protected on the page (WebGPU, or the CPU twin), its face is
// outlined on its thumbnail, the comparison slider moves, and the download (alone or in the
// zip of all) equals the CLI's `mask apply` output pixel for pixel; no request carries the
// photo, and no sign-in is needed. Then "Create my mask", which asks an anonymous visitor to sign in, trains a key on the
// server from three photos once signed in, streams progress, hands the key back and leaves
// nothing on the server's disk.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, assertText, signIn, startApp } from "./harness.mjs";

let app, page, work, photoDir, key;
const PASSPHRASE = "a long passphrase for the test key";
const requests = [];

function fuselab(args) {
  const run = spawnSync(BIN, ["--data-dir", process.env.FUSELAB_DATA_DIR, ...args], { encoding: "utf8" });
  assert.equal(run.status, 0, `fuselab ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "fuselab-e2e-protect-"));
  photoDir = join(process.env.FUSELAB_DATA_DIR, "models", "photos");
  const me = join(work, "me");
  mkdirSync(me);
  for (const name of ["obama.jpg", "obama2.jpg", "obama3.jpg"]) copyFileSync(join(photoDir, name), join(me, name));
  writeFileSync(join(work, "passphrase.txt"), `${PASSPHRASE}\n`);
  key = join(work, "me.p3m");
  fuselab([
    // Twelve signed steps of 0.255: a mask of up to ±3, enough to change most pixels.
    "mask", "train", "--photos", me, "--out", key, "--epochs", "12", "--models", "dlib",
    "--passphrase-file", join(work, "passphrase.txt"),
  ]);
  app = await startApp({ path: "/protect", models: true, demo: false });
  ({ page } = app);
  app.context.on("request", (request) =>
    requests.push({ method: request.method(), url: request.url(), body: request.postDataBuffer() }));
});

after(async () => {
  await app?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The files of a zip, name to base64 content (Python's zipfile reads it). */
function unzip(path) {
  const script = "import base64, json, sys, zipfile\n" +
    "z = zipfile.ZipFile(sys.argv[1])\n" +
    "print(json.dumps({i.filename: base64.b64encode(z.read(i)).decode() for i in z.infolist()}))";
  const run = spawnSync("python3", ["-c", script, path], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout);
}

/** Decodes image bytes in the page to RGBA (no colour conversion), as an array. */
async function pixels(bytes) {
  return page.evaluate(async (data) => {
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(data)]), {
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
    });
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext("2d");
    context.drawImage(bitmap, 0, 0);
    return { width: bitmap.width, height: bitmap.height, rgba: [...context.getImageData(0, 0, bitmap.width, bitmap.height).data] };
  }, [...bytes]);
}

test("a key protects a photo in the browser exactly as the CLI does, without uploading it", async () => {
  await page.getByRole("heading", { name: "Protect photos", level: 2 }).waitFor();
  assert.ok(await page.locator("#protect-photos").isDisabled(), "photos wait for a key");
  await assertText(page, '.steps li[aria-current="step"]', /^Your key/);
  await page.locator("#mask-key").setInputFiles(key);
  await assertText(page, "#mask-status", /encrypted: enter its passphrase/);
  await page.locator("#mask-passphrase").fill("not it");
  await page.locator("#mask-unlock").click();
  await assertText(page, "#mask-status", /wrong passphrase/i);
  await page.locator("#mask-passphrase").fill(PASSPHRASE);
  await page.locator("#mask-unlock").click();
  await assertText(page, "#mask-status", /^Mask [0-9a-f]{12}… loaded: at most ±16 per pixel value, learned from 3 photo\(s\) against dlib\.$/);

  const before = requests.length;
  const photo = join(photoDir, "astronaut.png");
  await page.locator("#protect-photos").setInputFiles(photo);
  const article = page.locator('.protect-photo[data-name="astronaut.png"]');
  await article.locator(".protect-download, .error").first().waitFor({ timeout: 300_000 });
  assert.equal(await article.locator(".error").count(), 0, await article.innerText());
  const link = article.locator(".protect-download");
  assert.equal(await link.getAttribute("download"), "astronaut-protected.png");
  const on = await article.locator(".protect-summary").getAttribute("data-on");
  console.log(`protected on ${on}: ${await article.locator(".protect-summary").innerText()}`);
  const ssim = Number(await article.locator(".face-ssim").first().innerText());
  assert.ok(ssim > 0.5 && ssim < 1, `SSIM ${ssim}`);
  await assertText(page, '.steps li[aria-current="step"]', /^Download/);

  // The thumbnail outlines each face the review lists, and links to the review.
  const thumb = page.locator(".thumbs .thumb");
  assert.equal(await thumb.count(), 1);
  const faces = await article.locator(".protect-faces tbody tr").count();
  assert.ok(faces >= 1);
  assert.equal(await thumb.locator("svg.faces-found rect").count(), faces);
  await assertText(page, ".thumbs .thumb .thumb-badge", /^1 faces? protected$|^\d+ faces protected$/);
  assert.equal(await thumb.locator("a").getAttribute("href"), `#${await article.getAttribute("id")}`);

  // The comparison slider moves the line between before and after.
  await article.locator(".compare-slider").fill("20");
  assert.equal(await article.locator(".compare").evaluate((el) => el.style.getPropertyValue("--split")), "20%");

  // The download, through the browser's own download path.
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  const saved = join(work, "browser.png");
  await download.saveAs(saved);
  assert.equal(await page.locator('.steps li[aria-current="step"]').count(), 0, "every step done");

  // The zip of all holds the same file.
  const [zipped] = await Promise.all([page.waitForEvent("download"), page.locator("#protect-zip").click()]);
  assert.equal(zipped.suggestedFilename(), "protected-photos.zip");
  const zip = join(work, "all.zip");
  await zipped.saveAs(zip);
  assert.deepEqual(unzip(zip), { "astronaut-protected.png": readFileSync(saved).toString("base64") });
  await assertText(page, ".toasts .toast span", /^protected-photos\.zip saved: 1 photo, [\d.]+ MB\.$/);

  // Nothing after loading the page carried a body; the only requests were the detector's models.
  const during = requests.slice(before);
  for (const r of during) {
    assert.equal(r.method, "GET", `${r.method} ${r.url}`);
    assert.equal(r.body, null, r.url);
    assert.ok(!r.url.includes("astronaut"), r.url);
  }

  // The CLI's output for the same photo and key.
  const out = join(work, "cli");
  fuselab(["mask", "apply", "--mask", key, photo, "--out", out, "--passphrase-file", join(work, "passphrase.txt")]);
  const cli = await pixels(readFileSync(join(out, "astronaut-protected.png")));
  const browser = await pixels(readFileSync(saved));
  const original = await pixels(readFileSync(photo));
  assert.deepEqual([browser.width, browser.height], [cli.width, cli.height]);
  let differing = 0;
  let changed = 0;
  for (let i = 0; i < cli.rgba.length; i++) {
    if (cli.rgba[i] !== browser.rgba[i]) differing++;
    if (original.rgba[i] !== browser.rgba[i]) changed++;
  }
  console.log(`browser vs CLI: ${differing} of ${cli.rgba.length} values differ; the mask changed ${changed}`);
  assert.equal(differing, 0);
  assert.ok(changed > 10_000, `the mask changed only ${changed} values`);

  // The strength slider redoes the protection: at 0 % the photo is unchanged.
  await page.locator("#protect-strength").fill("0");
  await page.locator("#protect-strength").dispatchEvent("change");
  await assertText(page, '.protect-photo[data-name="astronaut.png"] .face-ssim', /^1\.0000$/);
});

test("a photo without a face is reported and nothing is offered for download", async () => {
  const blank = join(work, "wall.png");
  const png = await page.evaluate(async ([w, h]) => {
    const canvas = new OffscreenCanvas(w, h);
    const context = canvas.getContext("2d");
    context.fillStyle = "#c8c8c8";
    context.fillRect(0, 0, w, h);
    return [...new Uint8Array(await (await canvas.convertToBlob({ type: "image/png" })).arrayBuffer())];
  }, [64, 64]);
  writeFileSync(blank, Buffer.from(png));
  await page.locator("#protect-photos").setInputFiles(blank);
  const article = page.locator('.protect-photo[data-name="wall.png"]');
  await assertText(page, '.protect-photo[data-name="wall.png"] .error', /^No face found: this photo is not protected/);
  assert.equal(await article.locator(".protect-download").count(), 0);
  await assertText(page, ".thumbs .thumb.problem .thumb-badge", /^No face found$/);
  // The zip holds the protected photos only.
  const [zipped] = await Promise.all([page.waitForEvent("download"), page.locator("#protect-zip").click()]);
  const zip = join(work, "all-again.zip");
  await zipped.saveAs(zip);
  assert.deepEqual(Object.keys(unzip(zip)), ["astronaut-protected.png"]);
});

test("Create my mask asks to sign in, then trains a key on the server, streams progress and keeps nothing", async () => {
  const prompt = page.locator("#create-mask a.sign-in");
  await assertText(page, "#create-mask a.sign-in", /^Sign in to create your mask on this server$/);
  assert.equal(await prompt.getAttribute("href"), "/signin?next=/protect");
  assert.equal(await page.locator("#create-start").count(), 0);
  await signIn(app.context, app.baseUrl);
  await page.reload();
  // The key's second tab, reached from the keyboard.
  await page.locator("#key-tab-0").focus();
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.locator("#key-tab-1").getAttribute("aria-selected"), "true");
  assert.ok(await page.locator("#key-panel-0").isHidden());
  const signedIn = requests.length;
  const files = ["obama.jpg", "obama2.jpg", "obama3.jpg"].map((name) => join(photoDir, name));
  await page.locator("#create-photos").setInputFiles(files);
  assert.ok(await page.locator("#create-start").isDisabled(), "consent comes first");
  await page.locator("#create-epochs").fill("2");
  await page.locator("#create-consent").check();
  await page.locator("#create-start").click();
  await assertText(page, "#create-status", /^(Waiting|Loading|Epoch \d)/);
  await page.locator("#create-download").waitFor({ timeout: 600_000 });
  await assertText(page, "#create-status", /^Your mask [0-9a-f]{12}… is ready/);
  // The key went straight to the Protect section.
  await assertText(page, "#mask-status", /^Mask [0-9a-f]{12}… loaded: .* learned from 3 photo\(s\) against dlib \+ faceres\.$/);
  const posts = requests.slice(signedIn).filter((r) => r.method !== "GET");
  assert.equal(posts.length, 1, posts.map((r) => r.url).join(", "));
  assert.match(posts[0].url, /\/api\/masks$/);
  // The server kept none of the photos: its data folder holds only what it had before, and the
  // job's sealed photos and key left the artifact store once the key was fetched.
  const left = readdirSync(app.dataDir).filter((name) => !/^(models|artifacts|(fuselab|reports)\.sqlite3.*)$/.test(name));
  assert.deepEqual(left, []);
  const artifacts = join(app.dataDir, "artifacts");
  const stored = existsSync(artifacts)
    ? readdirSync(artifacts, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name)
    : [];
  assert.deepEqual(stored, []);
  // The key was handed over once and forgotten (asked by the same signed-in user).
  const url = requests.find((r) => /\/api\/masks\/[0-9a-f]+\/key$/.test(r.url)).url;
  assert.equal((await app.context.request.get(url)).status(), 404);
});

test("nothing went wrong in the page", () => {
  assert.deepEqual(app.problems, []);
});
