// conformance-report.js - summarise a scripts/conformance.sh run, write the
// markdown report and apply the gate. Run with the Node 22 binary that runs
// the suite (it needs no packages of its own; the baseline YAML is read with
// the `yaml` package the suite itself depends on).
//
// Usage: node conformance-report.js <config.json>
//        node conformance-report.js --check-baseline <baseline.yml> <suite dist/index.js>
// where config.json holds:
//   results     folder with one sub-folder per scenario (see conformance.sh):
//               <slug>/cli.rc, <slug>/cli.log and, somewhere below, checks.json
//   scenarios   scenario names, in run order
//   allScenarios every auth/* scenario the suite lists (for baseline checks)
//   fullRun     true when every auth scenario was run
//   baseline    path of the expected-failures YAML (may be missing)
//   baselineRel / clientCmd / suiteJs / suiteVersion / nodeVersion / timeoutMs / jobs
//   doc         where to write the markdown report
//
// Exit status: 0 gate passed, 1 gate failed, 2 setup error.
"use strict";

const fs = require("fs");
const path = require("path");

const cfg =
  process.argv[2] === "--check-baseline"
    ? { baseline: process.argv[3], suiteJs: process.argv[4], checkOnly: true }
    : JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

function die(msg) {
  console.error(`conformance: ${msg}`);
  process.exit(2);
}

// ---- baseline ------------------------------------------------------------
function readBaseline(file) {
  if (!file || !fs.existsSync(file)) return [];
  let YAML;
  try {
    YAML = require(require.resolve("yaml", { paths: [path.dirname(cfg.suiteJs)] }));
  } catch (e) {
    die(`cannot load the yaml package next to ${cfg.suiteJs}: ${e.message}`);
  }
  let doc;
  try {
    doc = YAML.parse(fs.readFileSync(file, "utf8")) ?? {};
  } catch (e) {
    die(`${file}: invalid YAML: ${e.message}`);
  }
  if (typeof doc !== "object" || Array.isArray(doc)) die(`${file}: expected a mapping with a "client:" list`);
  const list = doc.client ?? [];
  if (!Array.isArray(list)) die(`${file}: "client:" must be a list of scenario names`);
  for (const e of list) {
    if (typeof e !== "string" || e.trim() === "") die(`${file}: every "client:" entry must be a scenario name`);
    if (e.includes(":")) {
      die(`${file}: per-check entry "${e}" is not supported by scripts/conformance.sh; list whole scenarios`);
    }
  }
  return list.map((e) => e.trim());
}

if (cfg.checkOnly && !fs.existsSync(cfg.baseline)) die(`baseline ${cfg.baseline} not found`);
const baseline = readBaseline(cfg.baseline);
if (cfg.checkOnly) process.exit(0);
const inBaseline = new Set(baseline);

// ---- per-scenario results ------------------------------------------------
function findChecks(dir) {
  // The CLI writes <dir>/<scenario>-<timestamp>/checks.json, i.e. under <dir>/auth/.
  const found = [];
  const walk = (d) => {
    let entries = [];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === "checks.json") found.push(p);
    }
  };
  walk(dir);
  return found.sort().pop();
}

const slug = (s) => s.replace(/\//g, "_");

// auth/resource-mismatch: a SUCCESS of resource-mismatch-rejected is only
// meaningful when the client actually fetched the protected resource metadata.
function resourceMismatchProblem(checks) {
  const rejected = checks.filter((c) => c.id === "resource-mismatch-rejected");
  if (!rejected.some((c) => c.status === "SUCCESS")) {
    return "no SUCCESS for check resource-mismatch-rejected";
  }
  if (rejected.some((c) => c.details && c.details.stopReason === "prm-not-requested")) {
    return "resource-mismatch-rejected says stopReason=prm-not-requested (PRM never fetched)";
  }
  const prmCheck = checks.some((c) => c.id === "prm-pathbased-requested" && c.status === "SUCCESS");
  const prmDetail = rejected.some((c) => c.details && c.details.prmRequested === true);
  if (!prmCheck && !prmDetail) {
    return "no evidence the protected resource metadata was requested (no prm-pathbased-requested SUCCESS, no details.prmRequested)";
  }
  return "";
}

const rows = cfg.scenarios.map((scenario) => {
  const dir = path.join(cfg.results, slug(scenario));
  const rcFile = path.join(dir, "cli.rc");
  const logFile = path.join(dir, "cli.log");
  const rc = fs.existsSync(rcFile) ? Number(fs.readFileSync(rcFile, "utf8").trim()) : NaN;
  const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : "";
  const timedOut = log.includes("CLIENT TIMED OUT");
  const checksFile = findChecks(dir);
  let checks = null;
  let parseError = "";
  if (checksFile) {
    try {
      checks = JSON.parse(fs.readFileSync(checksFile, "utf8"));
      if (!Array.isArray(checks)) throw new Error("not an array");
    } catch (e) {
      checks = null;
      parseError = `${checksFile}: ${e.message}`;
    }
  }
  const count = (s) => (checks ? checks.filter((c) => c.status === s).length : null);
  const row = {
    scenario,
    dir,
    logFile,
    rc,
    timedOut,
    checks,
    success: count("SUCCESS"),
    failure: count("FAILURE"),
    warning: count("WARNING"),
    verdict: rc === 0 ? "PASS" : "FAIL",
    baselined: inBaseline.has(scenario),
    reasons: [],
  };
  if (!checks) row.reasons.push(parseError || "no checks.json written");
  if (row.failure > 0) row.reasons.push(`${row.failure} FAILURE check(s)`);
  if (rc !== 0) row.reasons.push(`suite verdict FAIL (exit ${Number.isNaN(rc) ? "?" : rc}${timedOut ? ", client timed out" : ""})`);
  if (scenario === "auth/resource-mismatch" && checks) {
    const p = resourceMismatchProblem(checks);
    if (p) row.reasons.push(p);
  }
  row.failed = row.reasons.length > 0;
  // Failing and warning check ids, deduplicated, for the report.
  row.bad = [];
  if (checks) {
    const seen = new Set();
    for (const c of checks) {
      if (c.status !== "FAILURE" && c.status !== "WARNING") continue;
      const key = `${c.status} ${c.id}`;
      if (seen.has(key)) continue;
      seen.add(key);
      row.bad.push({ status: c.status, id: c.id, message: c.errorMessage || c.description || "" });
    }
  }
  return row;
});

// ---- gate ------------------------------------------------------------------
const problems = [];
for (const r of rows) {
  if (r.failed && !r.baselined) {
    problems.push(`UNEXPECTED FAILURE ${r.scenario}: ${r.reasons.join("; ")}`);
  }
  if (!r.failed && r.baselined) {
    problems.push(`STALE BASELINE ENTRY ${r.scenario}: it passes now; remove it from ${cfg.baselineRel}`);
  }
  if (r.warning > 0) {
    const ids = r.bad.filter((b) => b.status === "WARNING").map((b) => b.id);
    problems.push(`WARNING ${r.scenario}: ${r.warning} WARNING check(s) (${ids.join(", ")})`);
  }
}
if (cfg.fullRun) {
  const known = new Set(cfg.allScenarios);
  for (const b of baseline) {
    if (!known.has(b)) problems.push(`UNKNOWN BASELINE ENTRY ${b}: the suite lists no such auth scenario`);
  }
}

// ---- markdown --------------------------------------------------------------
const sum = (k) => rows.reduce((a, r) => a + (r[k] ?? 0), 0);
const cell = (v) => (v === null ? "-" : String(v));
const nPass = rows.filter((r) => r.verdict === "PASS").length;
const nExpected = rows.filter((r) => r.baselined && r.failed).length;

const md = [];
md.push("# MCP conformance: client auth scenarios");
md.push("");
md.push("Generated by `scripts/conformance.sh`; do not edit by hand. Regenerate with:");
md.push("");
md.push("```sh");
md.push("make conformance   # = go build -o bin/conformance-client ./cmd/conformance-client && scripts/conformance.sh bin/conformance-client");
md.push("```");
md.push("");
md.push(`- Suite: \`@modelcontextprotocol/conformance@${cfg.suiteVersion}\`, one \`conformance client --scenario <name> --timeout ${cfg.timeoutMs}\` run per scenario`);
md.push(`- Node: ${cfg.nodeVersion}`);
md.push(`- Client command: \`${cfg.clientCmd}\``);
md.push(`- Baseline (expected failures): \`${cfg.baselineRel}\``);
if (cfg.fullRun) {
  md.push(`- Scenarios: all ${rows.length} \`auth/*\` client scenarios listed by \`conformance list --client\``);
} else {
  md.push(`- Scenarios: a subset of ${rows.length} of the ${cfg.allScenarios.length} \`auth/*\` client scenarios (SCENARIOS was set)`);
}
md.push("");
md.push("Counts are checks in each scenario's `checks.json`. The suite verdict is the CLI's exit status:");
md.push("it also fails on a WARNING, a client timeout, or a non-zero client exit the scenario does not allow.");
md.push("");
md.push("| Scenario | SUCCESS | FAILURE | WARNING | Suite verdict | Baseline |");
md.push("|---|---:|---:|---:|---|---|");
for (const r of rows) {
  const verdict = r.verdict + (r.timedOut ? " (timeout)" : "");
  md.push(`| \`${r.scenario}\` | ${cell(r.success)} | ${cell(r.failure)} | ${cell(r.warning)} | ${verdict} | ${r.baselined ? "expected failure" : ""} |`);
}
md.push(`| **Total (${rows.length})** | ${sum("success")} | ${sum("failure")} | ${sum("warning")} | ${nPass} PASS, ${rows.length - nPass} FAIL | ${nExpected} expected failure(s) |`);
md.push("");
md.push(`## Gate: ${problems.length === 0 ? "PASSED" : "FAILED"}`);
md.push("");
md.push("A scenario fails when it has a FAILURE check, no `checks.json`, or a FAIL suite verdict; for");
md.push("`auth/resource-mismatch` it must also show that the protected resource metadata was fetched and");
md.push("`resource-mismatch-rejected` is SUCCESS. The gate fails on a failing scenario not listed in the");
md.push("baseline, on a listed scenario that passes (stale entry), and on any WARNING check.");
md.push("");
if (problems.length) {
  for (const p of problems) md.push(`- ${p}`);
  md.push("");
}
const withBad = rows.filter((r) => r.bad.length > 0);
if (withBad.length) {
  md.push("## Failing and warning checks");
  md.push("");
  for (const r of withBad) {
    md.push(`- \`${r.scenario}\`${r.baselined ? " (expected failure)" : ""}: ${r.bad.map((b) => `${b.id} (${b.status})`).join(", ")}`);
  }
  md.push("");
}

fs.mkdirSync(path.dirname(cfg.doc), { recursive: true });
fs.writeFileSync(cfg.doc, md.join("\n"));

// ---- console -------------------------------------------------------------
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
console.log("");
console.log(`${pad("SCENARIO", 45)} ${lpad("SUCCESS", 7)} ${lpad("FAILURE", 7)} ${lpad("WARNING", 7)}  ${pad("VERDICT", 14)} BASELINE`);
for (const r of rows) {
  console.log(
    `${pad(r.scenario, 45)} ${lpad(cell(r.success), 7)} ${lpad(cell(r.failure), 7)} ${lpad(cell(r.warning), 7)}  ${pad(r.verdict + (r.timedOut ? ",timeout" : ""), 14)} ${r.baselined ? "expected failure" : ""}`,
  );
}
console.log("");
console.log(`report:  ${cfg.doc}`);
console.log(`results: ${cfg.results}`);
console.log("");
const nOk = rows.filter((r) => !r.failed).length;
if (problems.length === 0) {
  console.log(`conformance gate PASSED: ${nOk} passed, ${nExpected} expected failure(s) (baseline)`);
  process.exit(0);
}
console.error(`conformance gate FAILED (${problems.length} problem(s)):`);
for (const p of problems) console.error(`  - ${p}`);
for (const r of rows) {
  if (!(r.failed && !r.baselined) && !(r.warning > 0)) continue;
  console.error(`\n  ${r.scenario}  (log: ${r.logFile})`);
  for (const b of r.bad) console.error(`    ${pad(b.status, 7)} ${b.id}: ${b.message}`);
}
console.error("");
console.error(`Fix the client; list a scenario in ${cfg.baselineRel} only if the engine does not support it yet.`);
process.exit(1);
