// The face stack in the browser: the real server hands out the weights, the page runs MTCNN,
// dlib's ResNet and faceres in its worker (wasm, burn's CPU backend) on the test photos, and the
// results are checked against the original implementations' numbers (golden/faces.json, from
// dlib and facenet-pytorch) and against the native CLI. No request carries a photo.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, assertText, startApp } from "./harness.mjs";

const PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"];
const golden = JSON.parse(
  readFileSync(new URL("../../backend/tests/golden/faces.json", import.meta.url), "utf8"),
);

let app, page, photoDir;
const requests = [];

before(async () => {
  app = await startApp({ path: "/faces", models: true, demo: false });
  ({ page } = app);
  photoDir = join(process.env.FUSELAB_DATA_DIR, "models", "photos");
  // The context sees the worker's requests too (the model downloads).
  app.context.on("request", (request) =>
    requests.push({ method: request.method(), url: request.url(), body: request.postDataBuffer() }));
});

after(async () => {
  await app?.close();
});

const cosine = (a, b) => {
  const dot = a.reduce((s, x, i) => s + x * b[i], 0);
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return dot / (norm(a) * norm(b));
};
const largestGap = (a, b) => Math.max(...a.flat().map((x, i) => Math.abs(x - b.flat()[i])));

async function results(name) {
  const article = page.locator(`.face-photo[data-name="${name}"]`);
  const error = await article.locator(".error").count();
  assert.equal(error, 0, `${name}: ${error && (await article.locator(".error").innerText())}`);
  return JSON.parse(await article.locator(".face-json").textContent());
}

test("a user finds and compares faces in the browser; the photos are not uploaded", async () => {
  await page.getByRole("heading", { name: "Faces", level: 2 }).waitFor();
  const started = Date.now();
  await page.locator("#face-photos").setInputFiles(PHOTOS.map((name) => join(photoDir, name)));
  await page.waitForFunction(
    (n) => document.querySelectorAll(".face-photo .face-json, .face-photo .error").length === n,
    PHOTOS.length,
    { timeout: 600_000 },
  );
  const seconds = (Date.now() - started) / 1000;
  await assertText(page, "#face-status", /^The face models are ready: \d+\.\d MB fetched in/);

  for (const name of PHOTOS) {
    const found = await results(name);
    const expected = golden.photos[name];
    assert.deepEqual([found.width, found.height], expected.size, `${name}: size`);
    const ms = found.millis;
    console.log(
      `${name} (${found.width}×${found.height}): ${found.faces.length} face(s); ms: detection ` +
        `${ms.detect}, landmarks ${ms.align}, dlib ${ms.dlib}, faceres ${ms.faceres}`,
    );

    // MTCNN: facenet-pytorch's boxes and landmarks within 2 px.
    assert.equal(found.faces.length, expected.mtcnn.length, `${name}: faces`);
    found.faces.forEach((face, i) => {
      const want = expected.mtcnn[i];
      assert.ok(largestGap([face.box], [want.box]) <= 2, `${name} face ${i}: box ${face.box} vs ${want.box}`);
      assert.ok(largestGap(face.landmarks, want.landmarks) <= 2, `${name} face ${i}: landmarks`);
      assert.ok(Math.abs(face.score - want.score) < 1e-3, `${name} face ${i}: score`);
    });

    // dlib: the largest face's descriptor against face_recognition's, cosine ≥ 0.999.
    const face = found.faces[0];
    const centre = (l, t, r, b) => [(l + r) / 2, (t + b) / 2];
    const [cx, cy] = centre(...face.box);
    const reference = expected.dlib
      .map((d) => ({ d, gap: Math.hypot(centre(...d.rect)[0] - cx, centre(...d.rect)[1] - cy) }))
      .sort((a, b) => a.gap - b.gap)[0].d;
    const similarity = cosine(face.dlib, reference.descriptor);
    assert.ok(similarity >= 0.999, `${name}: dlib descriptor cosine ${similarity}`);
    assert.equal(face.faceres.length, 1024);
    console.log(`  dlib descriptor vs face_recognition: cosine ${similarity.toFixed(6)}`);

    // The native CLI on the same file (its JPEG decoder differs from the browser's by a few levels).
    const cli = spawnSync(
      BIN,
      ["--data-dir", process.env.FUSELAB_DATA_DIR, "face", "detect", "--json", join(photoDir, name)],
      { encoding: "utf8" },
    );
    assert.equal(cli.status, 0, cli.stderr);
    const native = JSON.parse(cli.stdout);
    assert.equal(native.faces.length, found.faces.length, `${name}: CLI faces`);
    native.faces.forEach((f, i) =>
      assert.ok(largestGap([f.box], [found.faces[i].box]) <= 2, `${name} face ${i}: CLI box`));
  }
  console.log(`${PHOTOS.length} photos in ${seconds.toFixed(1)} s, model download and build included`);

  // face_recognition's verdicts, from the page's table.
  const verdict = async (a, b) => {
    const row = page.locator("#face-comparisons tbody tr", { hasText: a }).filter({ hasText: b });
    return row.locator('td[data-model="dlib"]').innerText();
  };
  assert.match(await verdict("obama.jpg", "obama2.jpg"), /same person/);
  assert.match(await verdict("obama.jpg", "biden.jpg"), /different people/);
  assert.match(await verdict("biden.jpg", "astronaut.png"), /different people/);

  // What left the browser: only GETs without a body, the models among them, no photo.
  assert.ok(requests.some((r) => r.url.endsWith("/api/models/face/dlib_face_recognition_resnet_model_v1.dat")));
  for (const request of requests) {
    assert.equal(request.method, "GET", request.url);
    assert.equal(request.body, null, request.url);
    assert.ok(!PHOTOS.some((name) => request.url.includes(name.split(".")[0])), request.url);
  }
  assert.deepEqual(app.problems, []);
});

test("a photo without a face and a file that is not a photo are reported, not skipped", async () => {
  await page.evaluate(async () => {
    const canvas = new OffscreenCanvas(320, 240);
    const context = canvas.getContext("2d");
    context.fillStyle = "#7a9";
    context.fillRect(0, 0, 320, 240);
    const blank = new File([await canvas.convertToBlob({ type: "image/png" })], "wall.png", { type: "image/png" });
    const text = new File(["not a photo"], "notes.jpg", { type: "image/jpeg" });
    const transfer = new DataTransfer();
    transfer.items.add(blank);
    transfer.items.add(text);
    const input = document.querySelector("#face-photos");
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });
  await assertText(page, '.face-photo[data-name="wall.png"] .face-summary', /^No face found in this photo\.$/);
  await assertText(
    page,
    '.face-photo[data-name="notes.jpg"] .error',
    /^notes\.jpg: not an image this browser can decode \(JPEG, PNG or WebP expected\)$/,
  );
  assert.deepEqual(app.problems, []);
});
