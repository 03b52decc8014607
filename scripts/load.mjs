// Load check (issue 16, item 12): 200 concurrent clients reading a shared report and
// /api/health from a real `fuselab serve` on 127.0.0.1 for 60 s (bounded in time; loopback
// only). Prints requests, errors, p50/p90/p99/max latency per route and the server's peak
// resident memory (VmHWM).
// Run: FUSELAB_BIN=<target>/release/fuselab node scripts/load.mjs [--clients 200] [--seconds 60]
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const CLIENTS = arg("clients", 200);
const SECONDS = Math.min(arg("seconds", 60), 600);
const BIN = process.env.FUSELAB_BIN;
if (!BIN) throw new Error("FUSELAB_BIN must point at the fuselab binary");

const dir = mkdtempSync(join(tmpdir(), "fuselab-load-"));
const passwordFile = join(dir, "admin-password");
writeFileSync(passwordFile, "load test password\n", { mode: 0o600 });
const server = spawn(BIN, ["serve", "--addr", "127.0.0.1:0", "--data-dir", join(dir, "data"), "--admin-password-file", passwordFile], {
  stdio: ["ignore", "pipe", "ignore"],
});
const base = await new Promise((resolve, reject) => {
  let out = "";
  server.stdout.on("data", (chunk) => {
    out += chunk;
    const match = out.match(/listening on (http:\/\/\S+)/);
    if (match) resolve(match[1]);
  });
  server.on("exit", (code) => reject(new Error(`fuselab exited (${code})`)));
});

// One kept-alive connection per client, as browsers hold them.
const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
const request = (url) =>
  new Promise((resolve, reject) => {
    get(url, { agent }, (response) => {
      response.on("data", () => {});
      response.on("end", () => resolve(response.statusCode));
      response.on("error", reject);
    }).on("error", reject);
  });

// Sign in, analyse a small pool on the server and save the analysis as a report to share.
const session = await fetch(`${base}/api/session`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ name: "admin", password: "load test password" }),
});
const cookie = session.headers.get("set-cookie").split(";")[0];
const labels = Array.from({ length: 2000 }, (_, i) => i % 10);
const models = Array.from({ length: 8 }, (_, m) => ({
  name: `model${m}`,
  predictions: labels.map((y, i) => ((i * (m + 3)) % 7 === 0 ? (y + 1) % 10 : y)),
}));
const analyse = await fetch(`${base}/api/ensemble/analyze`, {
  method: "POST",
  headers: { "content-type": "application/json", cookie },
  body: JSON.stringify({ pool: { labels, models }, options: { top_k: 10, min_size: 2, max_size: 8 } }),
});
const events = await analyse.text();
const analysis = JSON.parse(events.split("\n\n").find((e) => e.startsWith("event: result")).split("\ndata: ")[1]);
const saved = await fetch(`${base}/api/reports`, {
  method: "POST",
  headers: { "content-type": "application/json", cookie },
  body: JSON.stringify({ analysis, title: "load test" }),
});
const { id } = await saved.json();
const reportBytes = (await (await fetch(`${base}/api/reports/${id}`)).arrayBuffer()).byteLength;

const routes = { report: `${base}/api/reports/${id}`, health: `${base}/api/health` };
const latencies = { report: [], health: [] };
const errors = { report: 0, health: 0 };
const deadline = performance.now() + SECONDS * 1000;
async function client(k) {
  let n = k;
  while (performance.now() < deadline) {
    const route = n++ % 2 === 0 ? "report" : "health";
    const started = performance.now();
    try {
      const status = await request(routes[route]);
      if (status !== 200) errors[route] += 1;
      else latencies[route].push(performance.now() - started);
    } catch {
      errors[route] += 1;
    }
  }
}
const started = performance.now();
await Promise.all(Array.from({ length: CLIENTS }, (_, k) => client(k)));
agent.destroy();
const elapsed = (performance.now() - started) / 1000;
const status = readFileSync(`/proc/${server.pid}/status`, "utf8");
const peak = status.match(/VmHWM:\s+(\d+) kB/)[1];
server.kill("SIGTERM");
await new Promise((resolve) => server.on("exit", resolve));
rmSync(dir, { recursive: true, force: true });

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
console.log(`${CLIENTS} clients for ${elapsed.toFixed(1)} s against ${base} (report of ${reportBytes} bytes)`);
console.log("route    requests   req/s   errors   p50 ms   p90 ms   p99 ms   max ms");
for (const route of ["report", "health"]) {
  const sorted = latencies[route].sort((a, b) => a - b);
  console.log(
    [route.padEnd(6), String(sorted.length).padStart(10), (sorted.length / elapsed).toFixed(0).padStart(7), String(errors[route]).padStart(8),
      ...[50, 90, 99].map((p) => pct(sorted, p).toFixed(1).padStart(8)), sorted.at(-1).toFixed(1).padStart(8)].join(" "),
  );
}
console.log(`server peak resident memory (VmHWM): ${(peak / 1024).toFixed(1)} MiB`);
