# Summarises a test run's output into one line per test binary:
#   NAME ok|refused|FAILED PASSED FAILED not-run: TEST...
# "refused": its tests passed, and some checked that the lesson refuses this
# kernel (a `REFUSED <test>: ...` line: too old, or the program type is
# refused) instead of running it.
# It reads either `cargo test` output (a "Running ... (target/.../NAME-hash)"
# line before each binary's results) or scripts/vm/test.sh's log, whose
# LEBPF-BEGIN/LEBPF-END lines frame each binary. The first line says which
# kernel: `kernel RELEASE SECONDSs` (RELEASE and SECONDS passed with -v).
function finish() {
	if (name != "") {
		print name, (failed > 0 || status != 0 ? "FAILED" : refused > 0 ? "refused" : "ok"), passed, failed, "not-run:" notrun
		done[name] = 1
	}
	name = ""
}
# `list` (" a b c", sorted) with `t` put in its place.
function insert(list, t,    words, n, i, out, placed) {
	n = split(list, words, " ")
	out = ""; placed = 0
	for (i = 1; i <= n; i++) {
		if (!placed && t < words[i]) { out = out " " t; placed = 1 }
		out = out " " words[i]
	}
	if (!placed) out = out " " t
	return out
}
function start(n) {
	finish()
	name = n; passed = 0; failed = 0; notrun = ""; status = 0; refused = 0
}
BEGIN { if (release != "") print "kernel " release " " secs "s" }
{ gsub(/\033\[[0-9;]*m/, "") }
/^LEBPF-KERNEL / { print "kernel " $2 " " secs "s"; next }
/^LEBPF-BEGIN / { start($2); next }
/^LEBPF-END / { status = $3; finish(); next }
# Integration tests only: "Running tests/NAME.rs (target/debug/deps/NAME-hash)".
/^ *Running tests\// {
	n = $NF; sub(/.*\/deps\//, "", n); sub(/-[0-9a-f]+\)$/, "", n)
	start(n); next
}
/^ *(Doc-tests|Running) / { finish(); next }
/^test result:/ { passed += $4; failed += $6 }
# Kept in name order: a binary's tests run in parallel and report NOT RUN
# in whatever order they end.
/^NOT RUN / { t = $3; sub(/:$/, "", t); notrun = insert(notrun, t) }
/^REFUSED / { refused++ }
END { finish() }
