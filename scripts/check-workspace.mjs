// Checks what ARCHITECTURE.md and docs/testing.md promise about the workspace:
// - ARCHITECTURE.md has exactly one table row per crate, naming the crate and its folder;
// - Cargo.lock holds one version of burn, wgpu, leptos and wasm-bindgen.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { relative } from "node:path";

const metadata = JSON.parse(
  execFileSync("cargo", ["metadata", "--format-version", "1", "--no-deps", "--offline"], {
    encoding: "utf8",
    maxBuffer: 1 << 26,
  }),
);
const root = metadata.workspace_root;
const crates = metadata.packages.map((p) => ({
  name: p.name,
  folder: relative(root, p.manifest_path.replace(/\/Cargo\.toml$/, "")) + "/",
}));
const rows = readFileSync(`${root}/ARCHITECTURE.md`, "utf8")
  .split("\n")
  .map((line) => line.match(/^\| `([^`]+)` \| `([^`]+)` \|/))
  .filter(Boolean)
  .map(([, name, folder]) => ({ name, folder }));

const problems = [];
for (const crate of crates) {
  const matching = rows.filter((r) => r.name === crate.name);
  if (matching.length !== 1) {
    problems.push(`ARCHITECTURE.md: expected one row for crate \`${crate.name}\`, found ${matching.length}`);
  } else if (matching[0].folder !== crate.folder) {
    problems.push(`ARCHITECTURE.md: \`${crate.name}\` is in \`${crate.folder}\`, the row says \`${matching[0].folder}\``);
  }
}
for (const row of rows) {
  if (!crates.some((c) => c.name === row.name)) {
    problems.push(`ARCHITECTURE.md: row for \`${row.name}\`, which is not a workspace crate`);
  }
}

const lock = readFileSync(`${root}/Cargo.lock`, "utf8");
for (const name of ["burn", "wgpu", "leptos", "wasm-bindgen", "naga", "gloo-net"]) {
  const versions = [...lock.matchAll(new RegExp(`\\[\\[package\\]\\]\\nname = "${name}"\\nversion = "([^"]+)"`, "g"))]
    .map((m) => m[1]);
  if (versions.length !== 1) {
    problems.push(`Cargo.lock: expected one version of ${name}, found ${versions.join(", ") || "none"}`);
  }
}

if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.error(`workspace ok: ${crates.length} crates documented; one version each of the pinned crates`);
