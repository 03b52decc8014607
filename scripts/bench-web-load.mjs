// First load of the web app in headless Chromium on localhost, with an empty cache: for each
// page, the time to its last wasm part's arrival and to the page drawn (its heading, which the
// wasm app renders) and the wasm it fetched (the shell and the page's parts); every asset the
// first page fetched, with the bytes sent (gzip where the server has a gzipped twin) and their
// size unpacked; and every file of the built app (frontend/dist), workers included. Prints
// figures; asserts nothing about time.
//
// FUSELAB_BIN=… node scripts/bench-web-load.mjs
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
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
    const wasm = resources.filter((r) => r.name.endsWith(".wasm"));
    runs.push({
      drawn,
      wasm: Math.max(...wasm.map((r) => r.end)),
      files: wasm.length,
      sent: wasm.reduce((n, r) => n + r.sent, 0),
    });
    if (path === "/") assets = resources;
    await page.close();
  }
  rows.push({
    path,
    wasm: median(runs.map((r) => r.wasm)),
    drawn: median(runs.map((r) => r.drawn)),
    files: runs[0].files,
    sent: runs[0].sent,
  });
}
await app.close();

console.log(`First load on localhost, empty cache, median of ${RUNS} (ms):`);
console.log("| page | wasm arrived | page drawn | wasm files | wasm sent |");
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(`| ${r.path} | ${r.wasm.toFixed(0)} | ${r.drawn} | ${r.files} | ${kb(r.sent)} |`);
}
console.log("\nAssets of the first page (workers and their models load later, when a tool is used):");
console.log("| asset | sent | unpacked |");
console.log("|---|---:|---:|");
for (const a of assets) console.log(`| ${a.name} | ${kb(a.sent)} | ${kb(a.size)} |`);
const total = (key) => assets.reduce((n, a) => n + a[key], 0);
console.log(`| all | ${kb(total("sent"))} | ${kb(total("size"))} |`);

// Every file the binary serves, as built: the page parts and the workers' module load only
// when a page or a tool needs them.
const dist = new URL("../frontend/dist/", import.meta.url).pathname;
const files = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
const built = files(dist).filter((f) => !f.endsWith(".gz"));
const gzipped = (f) => statSync(existsSync(`${f}.gz`) ? `${f}.gz` : f).size;
const groups = new Map();
for (const file of built) {
  const name = file.slice(dist.length);
  const group = /^pkg\/(split|chunk)_/.test(name) ? "pkg/ page parts (split_*, chunk_*)" : name;
  const entry = groups.get(group) ?? { count: 0, size: 0, gz: 0 };
  entry.count += 1;
  entry.size += statSync(file).size;
  entry.gz += gzipped(file);
  groups.set(group, entry);
}
console.log("\nEvery file of the built app (frontend/dist):");
console.log("| file | files | size | gzipped |");
console.log("|---|---:|---:|---:|");
for (const [name, e] of [...groups].sort((a, b) => b[1].gz - a[1].gz)) {
  console.log(`| ${name} | ${e.count} | ${kb(e.size)} | ${kb(e.gz)} |`);
}
