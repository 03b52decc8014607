// Accounts in the browser against the real server: an anonymous visitor keeps every in-browser
// tool, sees "Sign in to …" where the server would store or compute, and never calls a
// protected endpoint; the sign-in page shows the server's message for a wrong password and
// returns to the page it came from; reports saved while signed in stay shareable by their link
// after signing out; the account page's API token works as `Authorization: Bearer` until it is
// revoked, and the password can be changed; a user without the right to train is told so on the
// Alignment page. Every page runs under the server's Content-Security-Policy without a violation.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADMIN, BIN, assertText, signIn, startApp } from "./harness.mjs";

const VECTORS = new URL("../../shared/tests/vectors/focal/", import.meta.url);
const PAGES = ["/", "/ensembles", "/faces", "/protect", "/align", "/signin", "/account"];
// Endpoints an anonymous page must not call (they answer 401).
const PROTECTED = /\/api\/(reports$|ensemble\/analyze|cofailure|masks|align|tokens|account)/;

let app, page, baseUrl, dir, shareUrl;
const requests = [];
const violations = [];

before(async () => {
  app = await startApp({ path: "/ensembles" });
  ({ page, baseUrl } = app);
  dir = mkdtempSync(join(tmpdir(), "fuselab-e2e-auth-"));
  app.context.on("request", (request) => requests.push(`${request.method()} ${request.url()}`));
  // Every CSP violation of every document, whether or not the console reports it.
  await app.context.exposeBinding("reportViolation", (_, text) => violations.push(text));
  await app.context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) =>
      window.reportViolation(`${event.violatedDirective} blocked ${event.blockedURI} on ${location.pathname}`));
  });
  page.on("console", (message) => {
    if (/Content.Security.Policy/i.test(message.text())) violations.push(message.text());
  });
});

after(async () => {
  await app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A small pool file (6 models, 500 samples) from the reference vectors. */
function poolFile() {
  const { inputs } = JSON.parse(readFileSync(new URL("random_6m_500s_10c.json", VECTORS), "utf8"));
  const path = join(dir, "pool.json");
  writeFileSync(path, JSON.stringify({
    labels: inputs.labels,
    models: inputs.predictions.map((predictions, m) => ({ name: `m${m}`, predictions })),
  }));
  return path;
}

/** Takes the expected failures of a wrong sign-in out of `problems`. */
function expectFailedSignIn(before, path = "/api/session") {
  assert.deepEqual(app.problems.slice(before).sort(), [
    "console error: Failed to load resource: the server responded with a status of 401 (Unauthorized)",
    `HTTP 401: ${baseUrl}${path}`,
  ].sort());
  app.problems.length = before;
}

test("every answer carries the security headers", async () => {
  for (const path of ["/", "/signin", "/main.js", "/worker.js", "/api/health", "/api/session"]) {
    const response = await page.request.get(baseUrl + path);
    assert.equal(response.status(), 200, path);
    const headers = response.headers();
    assert.match(headers["content-security-policy"], /script-src 'self' 'wasm-unsafe-eval'/, path);
    assert.match(headers["content-security-policy"], /frame-ancestors 'none'/, path);
    assert.equal(headers["x-content-type-options"], "nosniff", path);
  }
  const session = await (await page.request.get(`${baseUrl}/api/session`)).json();
  assert.deepEqual(session, { user: null, auth_required: true });
});

test("an anonymous visitor analyses in the browser and is asked to sign in to save", async () => {
  await page.goto(baseUrl + "/ensembles");
  await assertText(page, "#user-menu", /^Sign in$/);
  await assertText(page, ".tool", /Sign in to save reports and see yours/);
  await page.locator("#pool-files").setInputFiles([poolFile()]);
  await page.locator("#analyze").click();
  await assertText(page, "#analysis-summary", /^6 models, 500 samples, 10 classes; analysed in this browser/);
  assert.equal(await page.locator("#save-report").count(), 0);
  const save = page.getByRole("link", { name: "Sign in to save this report" });
  assert.equal(await save.getAttribute("href"), "/signin?next=/ensembles");

  // The server's analysis needs a user: the page says so instead of calling it.
  await page.locator("#run-on").selectOption("server");
  await page.locator("#analyze").click();
  await assertText(page, "#server-sign-in", /^This pool has 57 teams: it is analysed on the server, which needs you to sign in/);
  await assertText(page, "#server-sign-in a.sign-in", /^Sign in to analyse it on the server$/);
  await page.locator("#run-on").selectOption("auto");

  // The co-failure table is computed here too.
  await page.getByRole("button", { name: "Use the example" }).click();
  await page.getByRole("button", { name: "Compute" }).click();
  await assertText(page, "#compute-status", /identical to the CPU result|Computed on the CPU/);
});

test("the Protect and Alignment pages ask an anonymous visitor to sign in", async () => {
  await page.goto(baseUrl + "/protect");
  await assertText(page, "#create-mask a.sign-in", /^Sign in to create your mask on this server$/);
  assert.equal(await page.locator("#mask-key").isEnabled(), true, "the in-browser protection needs no account");
  await page.goto(baseUrl + "/align");
  await assertText(page, "#align a.sign-in", /^Sign in to start and follow training runs$/);
  assert.equal(await page.locator("#align-start").count(), 0);
  await page.goto(baseUrl + "/account");
  await assertText(page, "#account a.sign-in", /^Sign in to manage your account$/);
  const called = requests.filter((r) => PROTECTED.test(r));
  assert.deepEqual(called, [], "an anonymous page calls no protected endpoint");
});

test("signing in on the page: a wrong password is refused with the server's message, then back to where it started", async () => {
  await page.goto(baseUrl + "/align");
  await page.locator("#align a.sign-in").click();
  await page.waitForURL(`${baseUrl}/signin?next=/align`);
  await page.getByRole("heading", { name: "Sign in", level: 2 }).waitFor();
  assert.equal(await page.locator("#user-menu").innerText(), "", "no Sign in link on the sign-in page");

  const before = app.problems.length;
  await page.locator("#signin-name").fill(ADMIN.name);
  await page.locator("#signin-password").fill("not the password");
  await page.locator("#signin-submit").click();
  await assertText(page, "#signin-error", /^wrong user name or password$/);
  assert.equal(await page.locator("#signin-password").inputValue(), "", "the wrong password is cleared");
  expectFailedSignIn(before);

  await page.locator("#signin-password").fill(ADMIN.password);
  await page.locator("#signin-submit").click();
  await page.waitForURL(`${baseUrl}/align`);
  await assertText(page, "#user-name", new RegExp(`^${ADMIN.name}$`));
  assert.equal(await page.locator("#user-name").getAttribute("href"), "/account");
  await page.locator("#align-start").waitFor();

  const cookies = await app.context.cookies(baseUrl);
  const session = cookies.find((c) => c.name === "fuselab_session");
  assert.ok(session, "a session cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
});

test("a report saved while signed in opens from its link after signing out", async () => {
  await page.goto(baseUrl + "/ensembles");
  await page.locator("#pool-files").setInputFiles([poolFile()]);
  await page.locator("#analyze").click();
  await assertText(page, "#analysis-summary", /^6 models, 500 samples/);
  await page.locator("#save-report").click();
  await assertText(page, "#save-status", /^Saved: \/reports\/[0-9a-f]{32}$/);
  shareUrl = new URL(await page.locator("#share-link").getAttribute("href"), baseUrl).href;
  await page.locator("#saved-reports").waitFor();

  await page.locator("#sign-out").click();
  await assertText(page, "#user-menu", /^Sign in$/);
  // The page follows at once: what needed the user asks to sign in again.
  await assertText(page, ".tool", /Sign in to save reports and see yours/);
  assert.equal(await page.locator("#save-report").count(), 0);
  const session = await (await app.context.request.get(`${baseUrl}/api/session`)).json();
  assert.equal(session.user, null);

  await page.goto(shareUrl);
  await assertText(page, "#analysis-summary", /^6 models, 500 samples, 10 classes; saved report [0-9a-f]{32}, read-only\.$/);
  assert.equal(await page.locator("#plot-scatter circle.point").count(), 57);
});

test("an expired session shows the sign-in prompt instead of an error", async () => {
  await signIn(app.context, baseUrl);
  await page.goto(baseUrl + "/ensembles");
  await page.locator("#saved-reports").waitFor();
  // The session ends behind the page's back (as when it expires); the next call gets 401.
  await app.context.clearCookies();
  await page.locator("#pool-files").setInputFiles([poolFile()]);
  await page.locator("#analyze").click();
  const before = app.problems.length;
  await page.locator("#save-report").click();
  await assertText(page, ".results", /Sign in to save this report/);
  await assertText(page, "#user-menu", /^Sign in$/);
  expectFailedSignIn(before, "/api/reports");
});

test("an API token from the account page works as a Bearer token until it is revoked", async () => {
  await signIn(app.context, baseUrl);
  await page.goto(baseUrl + "/account");
  await assertText(page, "#account-user", new RegExp(`^Signed in as ${ADMIN.name} \\(administrator\\)\\.$`));
  await page.locator("#tokens-empty").waitFor();
  await page.locator("#token-name").fill("e2e script");
  await page.locator("#token-create").click();
  await assertText(page, "#token-created", /shown only this once/);
  const secret = (await page.locator("#token-secret").innerText()).trim();
  assert.ok(secret.length >= 20, `a secret: ${secret}`);
  await assertText(page, "#tokens tbody", /^e2e script\s/);
  assert.equal(await page.locator("#tokens tbody tr").count(), 1);

  await app.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
  await page.locator("#token-copy").click();
  await assertText(page, "#token-copy", /^Copied$/);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);

  // Node's fetch: no cookies, only the token.
  const bearer = { headers: { authorization: `Bearer ${secret}` } };
  const listed = await fetch(`${baseUrl}/api/reports`, bearer);
  assert.equal(listed.status, 200);
  const reports = await listed.json();
  assert.ok(reports.some((r) => shareUrl.endsWith(r.id)), "the administrator's token lists the saved report");
  assert.equal((await fetch(`${baseUrl}/api/reports`)).status, 401, "without the token: 401");

  await page.locator("#tokens tbody tr").getByRole("button", { name: "Revoke" }).click();
  await page.locator("#tokens-empty").waitFor();
  assert.equal(await page.locator("#token-created").count(), 0, "the revoked secret is no longer shown");
  assert.equal((await fetch(`${baseUrl}/api/reports`, bearer)).status, 401);
});

test("a user who may not train is told so on the Alignment page", async () => {
  const password = join(dir, "bob-password");
  writeFileSync(password, "bob's password\n");
  const added = spawnSync(BIN, ["--data-dir", app.dataDir, "users", "add", "bob", "--password-file", password], { encoding: "utf8" });
  assert.equal(added.status, 0, added.stderr);
  await signIn(app.context, baseUrl, { name: "bob", password: "bob's password" });
  await page.goto(baseUrl + "/align");
  await assertText(page, "#user-name", /^bob$/);
  await assertText(page, "#align-not-allowed", /^Your account may not start training runs/);
  assert.equal(await page.locator("#align-start").count(), 0);
  await page.locator("#align-empty").waitFor();
  // A user's report list holds only their own: none.
  await page.goto(baseUrl + "/ensembles");
  await page.locator("#saved-empty").waitFor();
  // The server refuses the start too.
  const config = readFileSync(new URL("../../examples/attack-small.toml", import.meta.url), "utf8");
  const start = await app.context.request.post(`${baseUrl}/api/align/runs`, { data: { action: "benchmark", config } });
  assert.equal(start.status(), 403);
});

test("the password is changed on the account page", async () => {
  await signIn(app.context, baseUrl);
  await page.goto(baseUrl + "/account");
  await page.locator("#password-form").waitFor();
  await page.locator("#password-current").fill(ADMIN.password);
  await page.locator("#password-new").fill("short");
  await page.locator("#password-repeat").fill("short");
  await page.locator("#password-change").click();
  await assertText(page, "#password-status", /^the new password needs at least 8 characters$/);

  const before = app.problems.length;
  await page.locator("#password-current").fill("not the password");
  await page.locator("#password-new").fill("a new admin password");
  await page.locator("#password-repeat").fill("a new admin password");
  await page.locator("#password-change").click();
  await assertText(page, "#password-status", /current password/i);
  expectFailedSignIn(before, "/api/account/password");
  assert.equal(await page.locator("#user-name").innerText(), ADMIN.name, "a wrong current password does not sign out");

  await page.locator("#password-current").fill(ADMIN.password);
  await page.locator("#password-change").click();
  await assertText(page, "#password-status", /^Your password is changed\.$/);
  const old = await app.context.request.post(`${baseUrl}/api/session`, { data: ADMIN });
  assert.equal(old.status(), 401);
  await signIn(app.context, baseUrl, { name: ADMIN.name, password: "a new admin password" });
});

test("no page breaks the Content-Security-Policy", async () => {
  for (const path of [...PAGES, new URL(shareUrl).pathname]) {
    await page.goto(baseUrl + path);
    await page.locator("#server-status").waitFor();
    await assertText(page, "#server-status", /^Server: ok/);
  }
  assert.deepEqual(violations, []);

  // The watch works: an inline script, which the policy forbids, is blocked and reported.
  const before = app.problems.length;
  await page.evaluate(() => {
    const script = document.createElement("script");
    script.textContent = "window.inlineRan = true;";
    document.body.append(script);
  });
  for (let i = 0; i < 50 && violations.length < 2; i++) await page.waitForTimeout(100);
  assert.equal(await page.evaluate(() => window.inlineRan), undefined);
  assert.ok(violations.some((v) => /^script-src(-elem)? blocked inline/.test(v)), violations.join("\n"));
  violations.length = 0;
  assert.ok(app.problems.slice(before).every((p) => /Content Security Policy/.test(p)), app.problems.join("\n"));
  app.problems.length = before;
});

test("nothing went wrong in the page", () => {
  assert.deepEqual(app.problems, []);
});
