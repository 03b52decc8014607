// First load of the web app in headless Chromium on localhost, with an empty cache: for each
// page, the time to the wasm module's arrival and to the page drawn (its heading, which the
// wasm app renders), and every asset the page fetched with the bytes sent (gzip where the server has a
// gzipped twin) and their size unpacked. Prints figures; asserts nothing about time.
//
// FUSELAB_BIN=… node scripts/bench-web-load.mjs
import { startApp } from "../tests/e2e/harness.mjs";

const PAGES = ["/", "/faces", "/protect", "/align", "/ctr", "/pose"];
const RUNS = 3;

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const kb = (bytes) => `${(bytes / 1024).toFixed(0)} KB`;

const app = await startApp({ path: "/", demo: false });
const rows = [];
let assets = [];
for (const path of PAGES) {
  const runs = [];
  for (let run = 0; run < RUNS; run++) {
    // A fresh page with the cache disabled through the DevTools protocol: a first visit.
    const page = await app.context.newPage();
    const cdp = await app.context.newCDPSession(page);
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    const started = Date.now();
    await page.goto(app.baseUrl + path);
    await page.locator("main h2").first().waitFor();
    const drawn = Date.now() - started;
    const resources = await page.evaluate(() =>
      performance.getEntriesByType("resource").map((r) => ({
        name: new URL(r.name).pathname,
        end: r.responseEnd,
        sent: r.encodedBodySize,
        size: r.decodedBodySize,
      })),
    );
    const wasm = resources.find((r) => r.name.endsWith(".wasm"));
    runs.push({ drawn, wasm: wasm?.end ?? null });
    if (path === "/") assets = resources;
    await page.close();
  }
  rows.push({
    path,
    wasm: median(runs.map((r) => r.wasm)),
    drawn: median(runs.map((r) => r.drawn)),
  });
}
await app.close();

console.log(`First load on localhost, empty cache, median of ${RUNS} (ms):`);
console.log("| page | wasm arrived | page drawn |");
console.log("|---|---:|---:|");
for (const r of rows) console.log(`| ${r.path} | ${r.wasm?.toFixed(0)} | ${r.drawn} |`);
console.log("\nAssets of the first page (workers and their models load later, when a tool is used):");
console.log("| asset | sent | unpacked |");
console.log("|---|---:|---:|");
for (const a of assets) console.log(`| ${a.name} | ${kb(a.sent)} | ${kb(a.size)} |`);
const total = (key) => assets.reduce((n, a) => n + a[key], 0);
console.log(`| all | ${kb(total("sent"))} | ${kb(total("size"))} |`);
