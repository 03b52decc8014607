// Accessibility and layout: axe-core finds no serious or critical violation on any page,
// anonymous and signed in, light and dark, at 1280 px and at a phone's 390 px, and with a
// theme chosen in the header; and no page scrolls sideways. With FUSELAB_SCREENSHOTS=folder,
// the signed-in passes save each page's screenshot there as `{page}-{width}-{theme}.png` (the
// docs' screenshots: `FUSELAB_SCREENSHOTS=docs/screenshots`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ADMIN, seriousViolations, signIn, startApp } from "./harness.mjs";

const SCREENSHOTS = process.env.FUSELAB_SCREENSHOTS;

const PAGES = ["/", "/ensembles", "/faces", "/protect", "/align", "/ctr", "/pose", "/signin", "/account"];

let app;

before(async () => {
  app = await startApp({ path: "/", demo: false });
});

after(async () => {
  await app?.close();
});

/** Checks every page; `shot` (`{width}-{theme}`) names the screenshots, when they are asked for. */
async function checkEveryPage(label, shot) {
  const { page } = app;
  const found = [];
  for (const path of PAGES) {
    await page.goto(app.baseUrl + path);
    // Drawn, and the session asked for (the header and the parts for signed-in users follow).
    await page.locator("main h2").first().waitFor();
    await page.waitForLoadState("networkidle");
    if (SCREENSHOTS && shot) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      const name = path === "/" ? "home" : path.slice(1);
      await page.screenshot({ path: join(SCREENSHOTS, `${name}-${shot}.png`), animations: "disabled" });
    }
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

test("signed in, light and dark, at 1280 px and at 390 px", async () => {
  await signIn(app.context, app.baseUrl, ADMIN);
  await checkEveryPage("signed-in light", "1280-light");
  await app.page.emulateMedia({ colorScheme: "dark" });
  await checkEveryPage("signed-in dark", "1280-dark");
  await app.page.setViewportSize({ width: 390, height: 844 });
  await checkEveryPage("signed-in dark 390", "390-dark");
  await app.page.emulateMedia({ colorScheme: "light" });
  await checkEveryPage("signed-in light 390", "390-light");
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
