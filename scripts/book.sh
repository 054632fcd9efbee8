#!/usr/bin/env bash
# `make book`: builds the book (book/book.toml, chapters in docs/) into
# target/book/ and fails on what a reader would see broken. mdbook itself
# renders an include whose anchor is missing as an empty block and only logs
# a missing file, both with exit code 0; so this script checks the includes
# first, then fails on any warning or error in mdbook's log, and the
# linkcheck backend fails on a broken link.
#
# scripts/book.sh [REPO]   (REPO: a checkout, default this one)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

command -v mdbook >/dev/null || { echo "mdbook not found: run \`make setup\`" >&2; exit 1; }
command -v mdbook-linkcheck >/dev/null || { echo "mdbook-linkcheck not found: run \`make setup\`" >&2; exit 1; }

errors=0
problem() {
	echo "book: $*" >&2
	errors=$((errors + 1))
}

# 1. Every {{#include FILE:ANCHOR}} in a page names a file that exists and
#    an ANCHOR/ANCHOR_END pair in it. Listings use anchors, never line
#    numbers, so that they follow the code when it moves.
while IFS= read -r hit; do
	page=${hit%%:*}
	rest=${hit#*:}
	line=${rest%%:*}
	spec=${rest#*\{\{#include }  # (\{{#include ...}} is an escaped example, not an include)
	spec=${spec%\}\}}
	file=${spec%%:*}
	anchor=
	[[ $spec == *:* ]] && anchor=${spec#*:}
	path=$(dirname "$page")/$file
	if [[ ! -f $path ]]; then
		problem "$page:$line includes $file, which does not exist"
	elif [[ $anchor =~ ^[0-9:]+$ ]]; then
		problem "$page:$line includes $file by line numbers ($anchor): mark the lines with ANCHOR: NAME / ANCHOR_END: NAME and include $file:NAME"
	elif [[ -n $anchor ]]; then
		grep -Eq "ANCHOR:[[:space:]]*$anchor([^[:alnum:]_-]|\$)" "$path" ||
			problem "$page:$line includes $file:$anchor, but $file has no 'ANCHOR: $anchor'"
		grep -Eq "ANCHOR_END:[[:space:]]*$anchor([^[:alnum:]_-]|\$)" "$path" ||
			problem "$page:$line includes $file:$anchor, but $file has no 'ANCHOR_END: $anchor'"
	fi
done < <(grep -n -o '\(^\|[^\\]\){{#include [^}]*}}' docs/*.md || true)

# 2. Every page is in SUMMARY.md (mdbook leaves out a page it does not list).
for page in docs/*.md; do
	name=$(basename "$page")
	[[ $name == SUMMARY.md ]] && continue
	grep -q "($name)" docs/SUMMARY.md || problem "$page is not listed in docs/SUMMARY.md"
done

((errors == 0)) || { echo "book: $errors problem(s); nothing built" >&2; exit 1; }

# 3. Build. mdbook logs "[WARN]" or "[ERROR]" for what it could not do
#    and may still exit 0: both fail here.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! mdbook build book >"$log" 2>&1; then
	cat "$log" >&2
	echo "book: mdbook build failed" >&2
	exit 1
fi
if grep -E '\[(WARN|ERROR)\]|^(Warning|Error)' "$log" >&2; then
	echo "book: mdbook reported the problems above" >&2
	exit 1
fi
echo "book: built target/book/html/index.html"
