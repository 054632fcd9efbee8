#!/usr/bin/env bash
# The "Tested on" column of docs/lessons.md, from the latest test results on
# this machine: target/vm-results/host.txt (written by `make test`) and
# <series>.txt (by `make vm-test KERNEL=<series>`). A lesson is tested on a
# kernel when its test binary passed there; tests reported NOT RUN are named.
#
# scripts/tested-on.sh          check: fail if the table says otherwise
# scripts/tested-on.sh --write  rewrite the column from the results
set -euo pipefail
cd "$(dirname "$0")/.."
table=docs/lessons.md
mode=${1:-check}

shopt -s nullglob
files=(target/vm-results/*.txt)
[ ${#files[@]} -gt 0 ] || { echo "no results in target/vm-results: run make test and make vm-test first" >&2; exit 1; }

# "lesson<TAB>cell" for every lesson with a result, kernels in version order.
column=$(awk '
	FNR == 1 { split($2, v, /[.-]/); series = v[1] "." v[2]; next }
	$2 == "ok" {
		notrun = ""
		for (i = 6; i <= NF; i++) notrun = notrun (notrun == "" ? "" : " ") $i
		cell = series (notrun == "" ? "" : " (not run: " notrun ")")
		print $1 "\t" v[1] * 1000 + v[2] "\t" cell
	}
' "${files[@]}" | sort -t$'\t' -k1,1 -k2,2n | awk -F'\t' '
	$1 != last { if (last != "") print last "\t" cells; last = $1; cells = $3; next }
	{ cells = cells ", " $3 }
	END { if (last != "") print last "\t" cells }
')

cell_for() { # lesson -> the cell, or "none"
	local c
	c=$(awk -F'\t' -v l="$1" '$1 == l { print $2 }' <<<"$column")
	echo "${c:-none}"
}

# The table: "Tested on" is the column after "Where tested".
out=$(mktemp)
trap 'rm -f "$out"' EXIT
bad=0
while IFS= read -r line; do
	if [[ $line == "| # |"* ]] || [[ $line == "|---|"* ]] || [[ ! $line =~ ^\|\ [0-9]+\ \|\ \`([a-z_]+)\` ]]; then
		echo "$line" >>"$out"
		continue
	fi
	lesson=${BASH_REMATCH[1]}
	want=$(cell_for "$lesson")
	IFS='|' read -r -a cells <<<"$line"
	# cells[0] is empty (the line starts with |); Tested on is the 8th.
	have=$(echo "${cells[7]}" | sed 's/^ *//; s/ *$//')
	if [ "$have" != "$want" ]; then
		[ "$mode" = --write ] || { echo "docs/lessons.md: $lesson is tested on \"$want\" by the latest results, the table says \"$have\" (scripts/tested-on.sh --write)" >&2; bad=1; }
		cells[7]=" $want "
	fi
	(IFS='|'; echo "${cells[*]}|") >>"$out"
done <"$table"
if [ "$mode" = --write ]; then
	cp "$out" "$table"
	echo "wrote the Tested on column of $table"
fi
exit $bad
