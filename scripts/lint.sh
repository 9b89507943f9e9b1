#!/usr/bin/env bash
# scripts/lint.sh — staticcheck and govulncheck, installed through the Go
# module proxy into .cache/bin (git-ignored), with an offline vulnerability
# database built from the golang.org/x/vulndb module.
#
# Usage: scripts/lint.sh [packages...]        (default ./...)
#
# Environment:
#   LINT_STATICCHECK=fail|warn|skip   default fail: findings fail the script
#   LINT_VULN=fail|warn|skip          default fail: a vulnerability the code
#                                     calls fails the script (govulncheck exit 3)
#   STATICCHECK_VERSION, VULN_VERSION, VULNDB_VERSION   pinned below
#
# The vulnerability database: govulncheck normally downloads it from
# vuln.go.dev, which this project's machines cannot reach. The vulndb
# repository is also a Go module, so the module proxy serves it, OSV files
# and tools included. Its cmd/gendb rebuilds the database from the YAML
# reports but needs a git checkout (it reads commit times from the history),
# which a module zip is not; cmd/indexdb builds the same v1 database from a
# folder of OSV JSON files, and the module ships them already generated in
# data/osv. So:
#   go mod download -json golang.org/x/vulndb@$VULNDB_VERSION   -> $dir
#   indexdb -vulns $dir/data/osv -out .cache/vulndb/$VULNDB_VERSION
#   govulncheck -db file://$PWD/.cache/vulndb/$VULNDB_VERSION ./...
# The built database is cached per vulndb version; bump VULNDB_VERSION to
# refresh it (`go list -m -versions` cannot list pseudo-versions: use
# `go list -m golang.org/x/vulndb@master` to find the newest).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2} # honnef.co/go/tools, supports Go 1.26
VULN_VERSION=${VULN_VERSION:-v1.9.0}              # golang.org/x/vuln (govulncheck)
VULNDB_VERSION=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
LINT_STATICCHECK=${LINT_STATICCHECK:-fail}
LINT_VULN=${LINT_VULN:-fail}
GO=${GO:-go}

BIN=$ROOT/.cache/bin
DB=$ROOT/.cache/vulndb/$VULNDB_VERSION
export STATICCHECK_CACHE=$ROOT/.cache/staticcheck
mkdir -p "$BIN" "$STATICCHECK_CACHE"

pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

# install NAME MODULE/PATH@VERSION: go install into .cache/bin unless the
# stamp says this version is already there.
install() {
	local name=$1 spec=$2 stamp=$BIN/.$1.version
	if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$spec" ]; then
		return
	fi
	echo "lint: installing $spec"
	GOBIN=$BIN "$GO" install "$spec"
	echo "$spec" >"$stamp"
}

status=0

# verdict MODE NAME RC: apply LINT_* to a tool's exit code.
verdict() {
	local mode=$1 name=$2 rc=$3
	if [ "$rc" -eq 0 ]; then
		echo "lint: $name: clean"
	elif [ "$mode" = warn ]; then
		echo "lint: $name: findings above (LINT_${name^^}=warn: not failing)" >&2
	else
		echo "lint: $name: failed (exit $rc)" >&2
		status=1
	fi
}

if [ "$LINT_STATICCHECK" != skip ]; then
	install staticcheck "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	echo "lint: staticcheck $("$BIN/staticcheck" -version | awk '{print $2, $3}')"
	rc=0
	"$BIN/staticcheck" "${pkgs[@]}" || rc=$?
	verdict "$LINT_STATICCHECK" staticcheck "$rc"
fi

if [ "$LINT_VULN" != skip ]; then
	install govulncheck "golang.org/x/vuln/cmd/govulncheck@$VULN_VERSION"
	if [ ! -f "$DB/index/db.json" ]; then
		install indexdb "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION"
		echo "lint: building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION"
		src=$("$GO" mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		if [ -z "$src" ] || [ ! -d "$src/data/osv" ]; then
			echo "lint: golang.org/x/vulndb@$VULNDB_VERSION has no data/osv" >&2
			exit 1
		fi
		rm -rf "$DB.tmp"
		"$BIN/indexdb" -vulns "$src/data/osv" -out "$DB.tmp"
		rm -rf "$DB"
		mv "$DB.tmp" "$DB"
	fi
	entries=("$DB"/ID/*.json)
	echo "lint: govulncheck $VULN_VERSION, offline database golang.org/x/vulndb@$VULNDB_VERSION (${#entries[@]} entries)"
	rc=0
	"$BIN/govulncheck" -db "file://$DB" "${pkgs[@]}" || rc=$?
	verdict "$LINT_VULN" vuln "$rc"
fi

exit $status
