#!/usr/bin/env bash
# conformance.sh - run every MCP conformance "auth/*" client scenario against
# our conformance client, write docs/conformance.md and apply the gate.
#
# Usage: scripts/conformance.sh [path-to-client-binary]
#
# The binary (default: $CONFORMANCE_CLIENT, else bin/conformance-client) is run
# by the suite as "exec <binary> <server-url>" (exec so that the suite's
# timeout SIGTERM reaches it). Each scenario is a separate suite process with
# its own servers on ephemeral ports, so scenarios run CONFORMANCE_JOBS at a time.
#
# The gate (exit 1) fails when
#   - a scenario not listed in conformance-baseline.yml fails (a FAILURE check,
#     no checks.json, or the suite's verdict FAIL), or auth/resource-mismatch
#     passes without evidence that the client fetched the PRM;
#   - a listed scenario passes (stale baseline entry);
#   - any scenario has a WARNING check.
# Exit 2 on setup errors.
#
# Environment (all optional):
#   SCENARIOS              space-separated subset to run (default: all auth/*)
#   CONFORMANCE_CLIENT     client binary (if no argument is given)
#   CONFORMANCE_JOBS       scenarios run in parallel (default: 2)
#   CONFORMANCE_TIMEOUT_MS per-scenario client timeout (default: 30000)
#   CONFORMANCE_RESULTS    results folder (default: results/conformance)
#   CONFORMANCE_BASELINE   expected failures (default: conformance-baseline.yml)
#   CONFORMANCE_DOC        report to write (default: docs/conformance.md)
#   CONFORMANCE_NODE, CONFORMANCE_JS  node 22 and the suite's dist/index.js
#                          (default: installed by scripts/install-conformance.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() { echo "conformance: $*" >&2; exit 2; }

CLIENT="${1:-${CONFORMANCE_CLIENT:-bin/conformance-client}}"
JOBS="${CONFORMANCE_JOBS:-2}"
TIMEOUT_MS="${CONFORMANCE_TIMEOUT_MS:-30000}"
RESULTS="${CONFORMANCE_RESULTS:-$ROOT/results/conformance}"
BASELINE="${CONFORMANCE_BASELINE:-$ROOT/conformance-baseline.yml}"
DOC="${CONFORMANCE_DOC:-$ROOT/docs/conformance.md}"

[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "CONFORMANCE_JOBS must be a positive integer"
[[ "$TIMEOUT_MS" =~ ^[1-9][0-9]*$ ]] || die "CONFORMANCE_TIMEOUT_MS must be a positive integer"
if [[ ! -f "$CLIENT" || ! -x "$CLIENT" ]]; then
  die "client binary '$CLIENT' not found or not executable (build it: make conformance)"
fi
[[ -f "$BASELINE" ]] || die "baseline $BASELINE not found"
CLIENT_ABS="$(cd "$(dirname "$CLIENT")" && pwd)/$(basename "$CLIENT")"

# Node 22 and the suite (installed into .cache/conformance when missing).
if [[ -z "${CONFORMANCE_NODE:-}" || -z "${CONFORMANCE_JS:-}" ]]; then
  install_out="$("$ROOT/scripts/install-conformance.sh")" || die "installing Node 22 and the suite failed"
  eval "$install_out"
fi
NODE="$CONFORMANCE_NODE"
JS="$CONFORMANCE_JS"
conf() { "$NODE" "$JS" "$@"; }

SUITE_VERSION="$(conf --version)" || die "cannot run the suite: $NODE $JS --version"
"$NODE" "$ROOT/scripts/conformance-report.js" --check-baseline "$BASELINE" "$JS" || exit 2
NODE_VERSION="$("$NODE" --version)"

# Every auth scenario the suite knows, e.g. "  - auth/dpop [extension]".
mapfile -t ALL < <(conf list --client | sed -n 's/^[[:space:]]*-[[:space:]]*\(auth\/[^[:space:]]*\).*$/\1/p')
[[ ${#ALL[@]} -gt 0 ]] || die "'conformance list --client' listed no auth/* scenario"

FULL_RUN=true
if [[ -n "${SCENARIOS:-}" ]]; then
  FULL_RUN=false
  read -r -a RUN <<<"$SCENARIOS"
  for s in "${RUN[@]}"; do
    printf '%s\n' "${ALL[@]}" | grep -qxF -- "$s" || die "unknown scenario '$s' (see: conformance list --client)"
  done
else
  RUN=("${ALL[@]}")
fi

# The suite splits the command on spaces and runs it with /bin/sh -c, the
# server URL appended; %q keeps an unusual path one shell word.
CLIENT_CMD="exec $(printf '%q' "$CLIENT_ABS")"
case "$CLIENT_ABS" in
  "$ROOT"/*) CLIENT_SHOWN="exec ${CLIENT_ABS#"$ROOT"/}" ;;
  *)         CLIENT_SHOWN="$CLIENT_CMD" ;;
esac

mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"

echo "conformance: suite $SUITE_VERSION, node $NODE_VERSION, ${#RUN[@]} scenario(s), $JOBS at a time" >&2
echo "client:      $CLIENT_CMD" >&2
echo "results:     $RESULTS" >&2

run_one() { # run_one <scenario>: one suite process; keeps cli.log and cli.rc
  local sc="$1" dir="$RESULTS/${1//\//_}" rc=0
  rm -rf "$dir"
  mkdir -p "$dir"
  conf client --command "$CLIENT_CMD" --scenario "$sc" --timeout "$TIMEOUT_MS" \
       -o "$dir" >"$dir/cli.log" 2>&1 </dev/null || rc=$?
  echo "$rc" >"$dir/cli.rc"
  printf '  %-45s %s\n' "$sc" "$([[ $rc -eq 0 ]] && echo PASS || echo "FAIL ($rc)")" >&2
}

start=$EPOCHREALTIME
running=0
for sc in "${RUN[@]}"; do
  if (( running >= JOBS )); then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$sc" &
  running=$((running + 1))
done
wait
printf "ran %d scenario(s) in %.1fs\n" "${#RUN[@]}" "$("$NODE" -p "$EPOCHREALTIME - $start")" >&2

CFG="$RESULTS/report-config.json"
# Hand everything to the report script as JSON (built by node: no quoting issues).
"$NODE" -e '
  const [out, ...kv] = process.argv.slice(1);
  const cfg = {};
  for (let i = 0; i < kv.length; i += 2) cfg[kv[i]] = kv[i + 1];
  cfg.scenarios = cfg.scenarios.split("\n").filter(Boolean);
  cfg.allScenarios = cfg.allScenarios.split("\n").filter(Boolean);
  cfg.fullRun = cfg.fullRun === "true";
  require("fs").writeFileSync(out, JSON.stringify(cfg, null, 2));
' "$CFG" \
  results "$RESULTS" \
  scenarios "$(printf '%s\n' "${RUN[@]}")" \
  allScenarios "$(printf '%s\n' "${ALL[@]}")" \
  fullRun "$FULL_RUN" \
  baseline "$BASELINE" \
  baselineRel "${BASELINE#"$ROOT"/}" \
  clientCmd "$CLIENT_SHOWN" \
  suiteJs "$JS" \
  suiteVersion "$SUITE_VERSION" \
  nodeVersion "$NODE_VERSION" \
  timeoutMs "$TIMEOUT_MS" \
  doc "$DOC"

exec "$NODE" "$ROOT/scripts/conformance-report.js" "$CFG"
