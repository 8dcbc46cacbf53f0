# qctl.sh - what the qctl test scripts share (sourced, never run): the
# reporting (TAP lines), running qctl bounded, the checks of outputs, exit
# statuses and stat --json, starting and stopping daemons, and the cleanup
# that leaves no process, daemon or segment behind.
#
# A script sources it after making sure it runs under bash, defines its
# cases (functions), runs each with run_case, and ends with finish.

set -u
export LC_ALL=C

build=$(cd "${SHMQ_BUILDDIR:-.}" && pwd) || exit 99
QCTL=$build/tools/qctl
SHMQD=$build/daemon/shmqd
T=10                    # seconds any single qctl command may take
TL=30                   # seconds a long-running pipeline stage may take

for tool in timeout pgrep mkfifo cmp sort awk; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not installed"
		exit 77
	fi
done
for bin in "$QCTL" "$SHMQD"; do
	if ! [ -x "$bin" ]; then
		echo "Bail out! $bin is not built"
		exit 99
	fi
done
unset SHMQ_DAEMON SHMQ_SOCKET SHMQ_NO_AUTOSTART

TOP=$(mktemp -d /tmp/qctl-test.XXXXXX) || exit 99
N=0                     # checks run
FAILED=0                # checks failed
CASE=""                 # the case running
CASE_FAILED=0
C=""                    # its directory
SOCKS=()                # every socket path a daemon may serve

# ------------------------------------------------------------------------
# Reporting

ok() {
	N=$((N + 1))
	echo "ok $N - $CASE: $1"
}

# not_ok DESC [DETAIL...]: each DETAIL is printed as a comment line.
not_ok() {
	local l
	N=$((N + 1))
	FAILED=$((FAILED + 1))
	CASE_FAILED=1
	echo "not ok $N - $CASE: $1"
	shift
	for l in "$@"; do
		printf '%s\n' "$l" | sed 's/^/#   /'
	done
}

# todo DESC CMD...: as check, for a known bug: a failure is reported with
# "# TODO" and does not fail the suite.
todo() {
	local desc=$1
	shift
	N=$((N + 1))
	if "$@" >/dev/null; then
		echo "ok $N - $CASE: $desc # TODO passes now: make it a check"
	else
		echo "not ok $N - $CASE: $desc # TODO known bug"
	fi
}

# check DESC CMD...: ok if CMD succeeds (its output is discarded).
check() {
	local desc=$1
	shift
	if "$@" >/dev/null; then
		ok "$desc"
	else
		not_ok "$desc" "failed: $*"
	fi
}

# ------------------------------------------------------------------------
# Running qctl

# qc ARGS...: qctl, bounded.  124 (or 137) means it hung.
qc() {
	timeout -k 2 "$T" "$QCTL" "$@"
}

# ql ARGS...: qctl, bounded more loosely, for a pipeline stage.
ql() {
	timeout -k 2 "$TL" "$QCTL" "$@"
}

# qn ARGS...: qctl as the unprivileged user 65534, bounded.
qn() {
	timeout -k 2 "$T" setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$QCTL" "$@"
}

# expect STATUS DESC CMD...: runs CMD with standard input from $IN (or
# /dev/null), output in $C/out and $C/err; checks the exit status and that
# standard error is empty for 0 and 3 (get's quiet end of stream) and one
# line "qctl: ..." otherwise.
expect() {
	local want=$1 desc=$2 rc lines
	shift 2
	"$@" <"${IN:-/dev/null}" >"$C/out" 2>"$C/err"
	rc=$?
	lines=$(wc -l <"$C/err")
	if [ "$rc" -ne "$want" ]; then
		not_ok "$desc (exit $want)" "command: $*" \
			"exit status $rc, expected $want" \
			"stderr: $(head -c 600 "$C/err")"
		return 1
	fi
	case $want in
	0 | 3)
		if [ -s "$C/err" ]; then
			not_ok "$desc (exit $want, quiet)" "command: $*" \
				"unexpected stderr: $(head -c 600 "$C/err")"
			return 1
		fi ;;
	*)
		if [ "$lines" -ne 1 ] || ! grep -q '^qctl: ' "$C/err"; then
			not_ok "$desc (exit $want, one error line)" \
				"command: $*" "stderr ($lines lines):" \
				"$(head -c 600 "$C/err")"
			return 1
		fi ;;
	esac
	ok "$desc (exit $want)"
}

# out_is DESC LINE...: $C/out is exactly these lines, each ending in a
# newline (no LINE: empty).
out_is() {
	local desc=$1
	shift
	if [ $# -eq 0 ]; then
		: >"$C/want"
	else
		printf '%s\n' "$@" >"$C/want"
	fi
	same_file "$desc" "$C/want" "$C/out"
}

# same_file DESC WANT GOT: byte-for-byte equal.
same_file() {
	if cmp -s "$2" "$3"; then
		ok "$1"
	else
		not_ok "$1" "expected ($(wc -c <"$2") bytes):" \
			"$(head -c 300 "$2" | od -c | head -8)" \
			"got ($(wc -c <"$3") bytes):" \
			"$(head -c 300 "$3" | od -c | head -8)"
	fi
}

# err_has DESC TEXT: the last command's error line contains TEXT.
err_has() {
	if grep -qF -- "$2" "$C/err"; then
		ok "$1"
	else
		not_ok "$1" "expected stderr to contain: $2" \
			"stderr: $(head -c 600 "$C/err")"
	fi
}

# ------------------------------------------------------------------------
# stat --json

# A flat JSON object of the documented shape, without jq: "key":value
# pairs where each value is an integer, true, false, null or a string
# without escapes.
JV='(-?[0-9]+|true|false|null|"[^"\\]*")'
JKV="\"[a-z_]+\":$JV"
JSON_OBJ="\\{$JKV(,$JKV)*\\}"

# json_get KEY FILE: the value of KEY in a one-line JSON object (strings
# without their quotes).
json_get() {
	grep -oE "\"$1\":$JV" "$2" | head -n 1 | cut -d: -f2- | tr -d '"'
}

# snap NAME: stat --json of NAME into $C/stat.json; false if that fails.
snap() {
	qc stat "$1" --json >"$C/stat.json" 2>"$C/stat.err"
}

# stat_is NAME KEY=VALUE...: every KEY of stat --json has its VALUE.
stat_is() {
	local name=$1 kv bad=()
	shift
	if ! snap "$name"; then
		echo "stat $name failed: $(cat "$C/stat.err")"
		return 1
	fi
	for kv in "$@"; do
		if [ "$(json_get "${kv%%=*}" "$C/stat.json")" != "${kv#*=}" ]; then
			bad+=("${kv%%=*}=$(json_get "${kv%%=*}" "$C/stat.json") (want ${kv#*=})")
		fi
	done
	if [ ${#bad[@]} -gt 0 ]; then
		echo "stat $name: ${bad[*]}"
		return 1
	fi
}

# check_stat DESC NAME KEY=VALUE...
check_stat() {
	local desc=$1 why
	shift
	if why=$(stat_is "$@"); then
		ok "$desc"
	else
		not_ok "$desc" "$why" "$(cat "$C/stat.json" 2>/dev/null)"
	fi
}

# wait_for SECONDS CMD...: polls CMD (every 20 ms) until it succeeds.
wait_for() {
	local end=$((SECONDS + $1 + 1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.02
	done
}

# wait_stat DESC NAME KEY=VALUE...: polls until stat_is holds (at most
# $T seconds); a check.
wait_stat() {
	local desc=$1
	shift
	if wait_for "$T" stat_is "$@"; then
		ok "$desc"
	else
		not_ok "$desc" "$(stat_is "$@")" "$(cat "$C/stat.json")"
	fi
}

now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((10#$t / 1000))
}

# ------------------------------------------------------------------------
# Daemons, processes, segments

# seg_prefix SOCKET: the daemon's segment names' prefix, as
# paths_segment_prefix() in common/paths.c: FNV-1a-64 of the path's bytes.
# Bash integers are 64-bit and wrap, and printf %x prints them unsigned.
seg_prefix() {
	local LC_ALL=C s=$1 h=$((0xcbf29ce484222325)) i c
	for ((i = 0; i < ${#s}; i++)); do
		printf -v c '%d' "'${s:i:1}"
		h=$(((h ^ (c & 255)) * 0x100000001b3))
	done
	printf 'shmq.%016x.' "$h"
}

# daemon_pids SOCKET: the live shmqd processes serving SOCKET.
daemon_pids() {
	pgrep -f "shmqd --socket $1( |\$)"
}

# start_daemon SOCKET [OPTIONS]: starts shmqd (it returns once listening).
start_daemon() {
	local sock=$1
	shift
	SOCKS+=("$sock")
	timeout -k 2 "$T" "$SHMQD" --socket "$sock" --pid-file "$sock.pid" \
		--log "$sock.log" "$@"
}

# stop_daemon SOCKET: SIGTERM, then SIGKILL after 5 s.
stop_daemon() {
	local p
	for p in $(daemon_pids "$1"); do
		kill -TERM "$p" 2>/dev/null
	done
	if ! wait_for 5 no_daemon "$1"; then
		for p in $(daemon_pids "$1"); do
			kill -KILL "$p" 2>/dev/null
		done
		wait_for 5 no_daemon "$1"
	fi
}

no_daemon() {
	[ -z "$(daemon_pids "$1")" ]
}

# kill_tree PID: stops PID, kills its descendants, then PID.
kill_tree() {
	local c
	kill -STOP "$1" 2>/dev/null
	for c in $(pgrep -P "$1"); do
		kill_tree "$c"
	done
	kill -KILL "$1" 2>/dev/null
}

# reap: kills every process this shell started and still runs.
reap() {
	local c
	for c in $(pgrep -P $$); do
		kill_tree "$c"
	done
	wait 2>/dev/null
}

CLEANED=0
cleanup() {
	local s
	[ "$CLEANED" = 1 ] && return
	CLEANED=1
	trap '' INT TERM        # a second signal must not cut this short
	exec 7>&- 8>&-
	reap
	for s in "${SOCKS[@]}"; do
		stop_daemon "$s"
		rm -f /dev/shm/"$(seg_prefix "$s")"*
	done
	if [ "${QCTL_TEST_KEEP:-0}" = 1 ]; then
		echo "# kept $TOP"
	else
		rm -rf "$TOP"
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# run_case NAME FUNCTION [SHMQD OPTIONS | --no-daemon]
run_case() {
	local fn=$2 s log
	CASE=$1
	shift 2
	if [ -n "${QCTL_TEST_CASES:-}" ] &&
	   [[ " $QCTL_TEST_CASES " != *" $fn "* ]]; then
		return
	fi
	CASE_FAILED=0
	C=$TOP/$fn
	mkdir -p "$C"
	local first=${#SOCKS[@]}
	unset SHMQ_DAEMON
	export SHMQ_SOCKET=$C/s.sock SHMQ_NO_AUTOSTART=1
	if [ "${1:-}" != --no-daemon ]; then
		if ! start_daemon "$C/s.sock" "$@"; then
			not_ok "shmqd starts" "$(cat "$C/s.sock.log" 2>/dev/null)"
			return
		fi
	fi
	"$fn"
	exec 7>&- 8>&-
	reap
	if [ "${1:-}" != --no-daemon ] && no_daemon "$C/s.sock"; then
		not_ok "shmqd is still running at the end of the case" \
			"$(tail -n 20 "$C/s.sock.log" 2>/dev/null)"
	fi
	for s in "${SOCKS[@]:first}"; do
		stop_daemon "$s"
		rm -f /dev/shm/"$(seg_prefix "$s")"*
	done
	if [ "$CASE_FAILED" = 1 ]; then
		for log in "$C"/*.log; do
			[ -f "$log" ] || continue
			echo "# --- $log (last lines)"
			tail -n 15 "$log" | sed 's/^/#   /'
		done
	fi
}

# between LO X HI: LO <= X < HI.
between() {
	[ "$1" -le "$2" ] && [ "$2" -lt "$3" ]
}

# empty FILE...: all empty.
empty() {
	local f
	for f in "$@"; do
		[ -s "$f" ] && return 1
	done
	return 0
}

# has_lines FILE N: FILE has N lines or more.
has_lines() {
	[ "$(lines_of "$1")" -ge "$2" ]
}

# lines_of FILE: its number of lines.
lines_of() {
	wc -l <"$1" | tr -d ' '
}

# finish: the plan line and the summary; the script's status.
finish() {
	echo "1..$N"
	echo "# $FAILED of $N checks failed, $((SECONDS - T0)) s"
	[ "$FAILED" = 0 ]
}
T0=$SECONDS
