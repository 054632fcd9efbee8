#!/usr/bin/env bash
# The "Tested on" column of docs/lessons.md, from the latest test results on
# this machine: target/vm-results/host.txt (written by `make test`) and
# <series>.txt (by `make vm-test KERNEL=<series>`). A lesson is tested on a
# kernel when its test binary passed there; tests reported NOT RUN are named;
# a kernel whose run found the lesson refusing it (REFUSED) comes after, as
# "refused on".
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

# "lesson<TAB>cell" for every lesson with a result, kernels in version order:
# those where its suite passed, then those it refused ("refused on").
column=$(awk '
	FNR == 1 { split($2, v, /[.-]/); series = v[1] "." v[2]; next }
	$2 == "ok" {
		notrun = ""
		for (i = 6; i <= NF; i++) notrun = notrun (notrun == "" ? "" : " ") $i
		cell = series (notrun == "" ? "" : " (not run: " notrun ")")
		print $1 "\t" v[1] * 1000 + v[2] "\tok\t" cell
	}
	$2 == "refused" { print $1 "\t" v[1] * 1000 + v[2] "\trefused\t" series }
' "${files[@]}" | sort -t$'\t' -k1,1 -k2,2n | awk -F'\t' '
	function flush() {
		if (last == "") return
		cell = ran
		if (refused != "") cell = (cell == "" ? "" : cell "; ") "refused on " refused
		print last "\t" cell
	}
	$1 != last { flush(); last = $1; ran = ""; refused = "" }
	$3 == "ok" { ran = ran (ran == "" ? "" : ", ") $4 }
	$3 == "refused" { refused = refused (refused == "" ? "" : ", ") $4 }
	END { flush() }
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
# The doctor's prediction against each run: a lesson it said runs must have
# run (its tests passed, none REFUSED), one it said does not must have been
# refused by the run. <name>.doctor beside each <name>.txt holds its table.
for results in "${files[@]}"; do
	doctor=${results%.txt}.doctor
	release=$(awk 'NR == 1 { print $2 }' "$results")
	if [ ! -s "$doctor" ]; then
		echo "$results: no doctor's table beside it ($doctor); run the tests again" >&2
		bad=1
		continue
	fi
	while read -r lesson says; do
		did=$(awk -v l="$lesson" '$1 == l { print $2 }' "$results")
		case "$says/$did" in
		yes/ok | no/refused) ;;
		*) echo "on $release the doctor said $lesson runs: $says, and its tests found: ${did:-no result}" >&2
			bad=1 ;;
		esac
	done < <(awk '/^LESSON +RUNS HERE/ { t = 1; next } t && NF { s = $2; sub(/:$/, "", s); print $1, s }' "$doctor")
done
if [ "$mode" = --write ]; then
	cp "$out" "$table"
	echo "wrote the Tested on column of $table"
fi
exit $bad
