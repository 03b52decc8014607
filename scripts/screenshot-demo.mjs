// Screenshot of the demo report (issue 4's acceptance): serves the app, presses "Try the demo"
// in headless Chromium, signed in as the administrator (so the page shows Save report), and saves
// the whole page as a PNG.
// Run: FUSELAB_BIN=<target>/release/fuselab FUSELAB_DIGITS=$(scripts/fetch-digits.sh) \
//      node scripts/screenshot-demo.mjs [out.png]
import { ADMIN, startApp } from "../tests/e2e/harness.mjs";

const out = process.argv[2] ?? "demo-report.png";
const app = await startApp({ signedIn: ADMIN });
await app.page.setViewportSize({ width: 1100, height: 900 });
await app.page.locator("#try-demo").click();
await app.page.locator("#analysis-summary").waitFor({ timeout: 60_000 });
await app.page.screenshot({ path: out, fullPage: true });
console.log(`${out}: ${await app.page.locator("#analysis-summary").innerText()}`);
await app.close();
