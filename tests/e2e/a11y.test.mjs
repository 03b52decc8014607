// Accessibility and layout: axe-core finds no serious or critical violation on any page,
// anonymous and signed in, in the light theme at 1280 px and in the dark theme at a phone's
// 390 px, and with a theme chosen in the header; and no page scrolls sideways.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ADMIN, seriousViolations, signIn, startApp } from "./harness.mjs";

const PAGES = ["/", "/ensembles", "/faces", "/protect", "/align", "/ctr", "/pose", "/signin", "/account"];

let app;

before(async () => {
  app = await startApp({ path: "/", demo: false });
});

after(async () => {
  await app?.close();
});

async function checkEveryPage(label) {
  const { page } = app;
  const found = [];
  for (const path of PAGES) {
    await page.goto(app.baseUrl + path);
    // Drawn, and the session asked for (the header and the parts for signed-in users follow).
    await page.locator("main h2").first().waitFor();
    await page.waitForLoadState("networkidle");
    found.push(...(await seriousViolations(page)).map((v) => `${label} ${path}: ${v}`));
    const { scroll, width } = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      width: document.documentElement.clientWidth,
    }));
    if (scroll > width) found.push(`${label} ${path}: ${scroll} px wide in a ${width} px window`);
  }
  assert.deepEqual(found, []);
}

test("anonymous, light theme, 1280 px", async () => {
  await app.page.setViewportSize({ width: 1280, height: 900 });
  await app.page.emulateMedia({ colorScheme: "light" });
  await checkEveryPage("anonymous light");
});

test("signed in, light theme at 1280 px and dark theme at 390 px", async () => {
  await signIn(app.context, app.baseUrl, ADMIN);
  await checkEveryPage("signed-in light");
  await app.page.setViewportSize({ width: 390, height: 800 });
  await app.page.emulateMedia({ colorScheme: "dark" });
  await checkEveryPage("signed-in dark 390");
  assert.deepEqual(app.problems, []);
});

test("a theme chosen in the header is used on every page, remembered, and passes the checks", async () => {
  const { page } = app;
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.emulateMedia({ colorScheme: "light" });
  await page.goto(`${app.baseUrl}/`);
  const background = () =>
    page.evaluate(() => {
      const [r, g, b] = getComputedStyle(document.documentElement).backgroundColor.match(/\d+/g).map(Number);
      return r + g + b;
    });
  assert.ok((await background()) > 600, "the system's light theme");
  await page.locator("#theme").selectOption("dark");
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
  assert.ok((await background()) < 150, "dark, although the system prefers light");
  await checkEveryPage("chosen dark");
  assert.equal(await page.locator("#theme").inputValue(), "dark", "remembered across pages");
  await page.locator("#theme").selectOption("system");
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), undefined);
  await page.reload();
  assert.ok((await background()) > 600, "the system's theme again after a reload");
});
