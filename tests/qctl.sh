#!/bin/bash
# qctl.sh - qctl end to end, against the real shmqd.
#
# Every case starts its own shmqd on a socket in a private directory
# (SHMQ_SOCKET, SHMQ_NO_AUTOSTART=1) and checks what docs/qctl.md and
# docs/exit-status.md promise scripts: exact outputs, exact exit statuses,
# the numbers of stat --json.
# One "ok N - ..." or "not ok N - ..." line per check; the status is 1 if
# any check failed, 77 if a tool the suite needs is missing.
#
# Every command that may block runs under timeout(1), and waiting for a
# process to block polls 'qctl stat --json' in a bounded loop: no check
# depends on a sleep.  On exit (or INT/TERM) every process the suite
# started is killed, every shmqd it started is stopped and their segments
# (/dev/shm/shmq.<FNV-1a-64 of the socket path>.*) are removed.
#
# A check of a known, reported bug is a "todo": it prints "not ok ... # TODO"
# and does not fail the suite (and "ok ... # TODO" once the bug is fixed).
#
# Environment: SHMQ_BUILDDIR (default .), QCTL_TEST_KEEP=1 keeps the
# temporary directory, QCTL_TEST_CASES="t_name ..." runs only those cases.
# Bash is needed (arrays, local, EPOCHREALTIME); make may run us with sh.
if [ -z "${BASH_VERSION:-}" ]; then
	command -v bash >/dev/null 2>&1 || { echo "SKIP: bash not installed"; exit 77; }
	exec bash "$0" "$@"
fi
. "$(dirname "$0")/lib/qctl.sh"

# ------------------------------------------------------------------------
# The cases

t_help() {
	local cmd want v usage
	expect 0 "qctl --help" qc --help
	for want in \
		"   0  success (cat: reached end of stream after every producer finished)" \
		"   1  any other error" \
		"   2  bad usage (unknown flag, bad name, bad number)" \
		"   3  end of stream: get found the queue closed and drained" \
		"   4  closed: put refused because the queue is closed" \
		"   5  timed out, or would block with --nonblock" \
		"   6  no such queue" \
		"   7  permission denied" \
		"   8  daemon unreachable" \
		"   9  message too big" \
		"  10  end of stream, but a producer died without detaching (get, cat)" \
		"  11  queue already exists (create without --exist-ok)" \
		"  12  deadlock: a blocked call was chosen to break a deadlock (--on-deadlock fail); deadlocks found one"; do
		check "qctl --help lists exit status ${want:0:4}" \
			grep -qxF -- "$want" "$C/out"
	done
	while IFS='|' read -r cmd usage; do
		expect 0 "qctl $cmd --help" qc "$cmd" --help
		check "qctl $cmd --help starts with its usage line" \
			[ "$(head -n 1 "$C/out")" = "usage: qctl $cmd $usage" ]
		# Exit 0 is end of stream only for a command that reads to it.
		want="   0  success"
		[ "$cmd" = cat ] && want="$want (cat: reached end of stream after every producer finished)"
		check "qctl $cmd --help: what exit 0 means for it" \
			grep -qxF -- "$want" "$C/out"
		cp "$C/out" "$C/help1"
		expect 0 "qctl help $cmd" qc help "$cmd"
		same_file "qctl help $cmd is qctl $cmd --help" "$C/help1" "$C/out"
	done <<'EOF'
create|NAME [--capacity N] [--max-msg BYTES] [--max-bytes BYTES] [--mode OCTAL] [--auto-close] [--on-deadlock report|fail] [--exist-ok]
put|NAME [MSG...] [-0] [--close] [--timeout SECONDS] [--nonblock]
get|NAME [-n N] [-0] [--timeout SECONDS] [--nonblock]
cat|NAME... [-0] [--names]
close|NAME [--now]
stat|NAME [--json]
ls|[-l] [--json]
rm|NAME
users|[--json]
deadlocks|[--json]
EOF
	expect 0 "qctl work --help" qc work --help
	check "qctl work --help: its exit 0 is cat's" grep -qxF -- \
		"   0  success (work: reached end of stream after every producer finished)" \
		"$C/out"
	v=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' \
		"$build/config.h" 2>/dev/null)
	expect 0 "qctl --version" qc --version
	if [ -n "$v" ]; then
		out_is "qctl --version prints the package version" \
			"qctl (shmq) $v"
	else
		check "qctl --version prints one version line" \
			grep -qxE 'qctl \(shmq\) [0-9]+\.[0-9]+\.[0-9]+.*' "$C/out"
	fi
	# Help needs no daemon.
	SHMQ_SOCKET=$C/nowhere.sock expect 0 "qctl put --help without a daemon" \
		qc put --help
}

t_usage() {
	local long255 long256
	long255=$(printf 'n%.0s' {1..255})
	long256=${long255}n
	expect 2 "no command" qc
	expect 2 "unknown command" qc frobnicate q
	expect 2 "unknown flag" qc get q --bogus
	expect 2 "unknown short flag" qc put q -x
	expect 2 "missing NAME" qc get
	expect 2 "missing NAME for put" qc put
	expect 2 "extra argument" qc stat q r
	expect 2 "option missing its argument" qc get q --timeout
	expect 2 "bad name: leading dot" qc create .hidden
	expect 2 "bad name: slash" qc create a/b
	expect 2 "bad name: space" qc create "a b"
	expect 2 "bad name: empty" qc create ""
	expect 2 "bad name: 256 bytes" qc create "$long256"
	expect 2 "bad number: --capacity abc" qc create q --capacity abc
	expect 2 "bad number: --capacity 0" qc create q --capacity 0
	expect 2 "bad number: --capacity -1" qc create q --capacity -1
	expect 2 "bad number: --max-msg 1X" qc create q --max-msg 1X
	expect 2 "bad number: --mode 9" qc create q --mode 9
	expect 2 "bad number: --mode 1777" qc create q --mode 1777
	expect 2 "bad number: --timeout -1" qc get q --timeout -1
	expect 2 "bad number: --timeout 1s" qc get q --timeout 1s
	expect 2 "bad number: -n x" qc get q -n x
	SHMQ_SOCKET=$C/nowhere.sock expect 2 \
		"bad usage is found before connecting to a daemon" qc create .x
	check "nothing was created by the bad commands" \
		stat_is_none
	expect 0 "a 255-byte name is valid" qc create "$long255"
	expect 0 "a name of every allowed kind of byte" qc create A-z_0.9
	expect 0 "ls" qc ls
	check "ls lists exactly those two queues" \
		[ "$(awk 'NR > 1 { print $1 }' "$C/out" | sort | tr '\n' ' ')" = \
		  "A-z_0.9 $long255 " ]
}

stat_is_none() {
	qc ls --json >"$C/ls.json" && [ "$(cat "$C/ls.json")" = "[]" ]
}

t_basic() {
	local prefix
	expect 6 "stat of a queue not created" qc stat q
	expect 0 "create" qc create q --capacity 4
	prefix=$(seg_prefix "$C/s.sock")
	check "the segment is named by the socket path's FNV-1a prefix" \
		compgen -G "/dev/shm/$prefix*"
	expect 11 "create again" qc create q
	err_has "the error names the queue" "qctl: create q: "
	expect 11 "create again with other settings" qc create q --capacity 9
	expect 0 "create --exist-ok" qc create q --exist-ok
	check_stat "--exist-ok keeps the queue as it was" q capacity=4 \
		messages=0
	expect 0 "put three arguments" qc put q one two three
	expect 0 "get" qc get q
	out_is "get prints the oldest message" one
	expect 0 "get -n 2" qc get q -n 2
	out_is "get -n 2 prints the next two in order" two three
	expect 0 "put arguments after --" qc put q -- -dash "two  words" ""
	expect 0 "get -n 3" qc get q -n 3
	out_is "-dash, spaces and the empty message come back as given" \
		-dash "two  words" ""
	expect 0 "put for get -n 0" qc put q x
	expect 0 "get -n 0" qc get q -n 0
	out_is "get -n 0 prints nothing"
	check_stat "get -n 0 takes nothing" q messages=1
	expect 5 "get -n 3 with one message and --timeout 0.2" \
		qc get q -n 3 --timeout 0.2
	out_is "get -n 3 still prints the message it got" x
	check_stat "counters after put/get" q total_put=7 total_got=7 \
		messages=0 bytes=0 producers=0 consumers=0
}

t_timeouts() {
	local t0 dt
	expect 0 "create" qc create q --capacity 2
	t0=$(now_ms)
	expect 5 "get --timeout 0.2 on an empty queue" qc get q --timeout 0.2
	dt=$(($(now_ms) - t0))
	check "get --timeout 0.2 waited 0.2 s to 5 s (${dt} ms)" \
		between 200 "$dt" 5000
	out_is "a timed-out get prints nothing"
	t0=$(now_ms)
	expect 5 "get --nonblock on an empty queue" qc get q --nonblock
	dt=$(($(now_ms) - t0))
	check "get --nonblock did not wait (${dt} ms)" [ "$dt" -lt 2000 ]
	expect 5 "get --timeout 0 on an empty queue" qc get q --timeout 0
	expect 0 "fill the queue" qc put q a b
	t0=$(now_ms)
	expect 5 "put --timeout 0.2 on a full queue" qc put q c --timeout 0.2
	dt=$(($(now_ms) - t0))
	check "put --timeout 0.2 waited 0.2 s to 5 s (${dt} ms)" \
		between 200 "$dt" 5000
	expect 5 "put --nonblock on a full queue" qc put q c --nonblock
	IN=$C/in
	printf 'c\nd\n' >"$IN"
	expect 5 "put --nonblock from stdin on a full queue" qc put q --nonblock
	IN=
	expect 5 "put --timeout 0.25 (a fraction) on a full queue" \
		qc put q c --timeout 0.25
	check_stat "the refused puts queued nothing" q messages=2 total_put=2
	expect 0 "get -n 2" qc get q -n 2
	out_is "the queue holds what was put before" a b
	expect 0 "create a byte-budget queue" qc create b --capacity 100 \
		--max-msg 8 --max-bytes 10
	expect 0 "put 10 bytes" qc put b 12345 67890
	expect 5 "put --nonblock past the byte budget" qc put b x --nonblock
	check_stat "the byte budget bounds the queue" b messages=2 bytes=10 \
		max_bytes=10
}

t_closed() {
	expect 0 "create" qc create q
	expect 0 "put" qc put q a b c
	expect 0 "close" qc close q
	out_is "close prints nothing"
	expect 0 "close again (idempotent)" qc close q
	expect 4 "put on a closed queue" qc put q x
	err_has "the error names the queue" "qctl: put q: "
	IN=$C/in
	printf 'x\n' >"$IN"
	expect 4 "put from stdin on a closed queue" qc put q
	IN=
	expect 4 "put --close on a closed queue" qc put q y --close
	expect 0 "get drains a closed queue" qc get q
	out_is "get returns the oldest queued message" a
	expect 3 "get -n 5 with two left" qc get q -n 5
	out_is "get -n 5 prints the two it got" b c
	expect 3 "get on a closed, drained queue" qc get q
	out_is "get at end of stream prints nothing"
	expect 3 "get --nonblock on a closed, drained queue" qc get q --nonblock
	expect 0 "cat on a closed, drained queue" qc cat q
	out_is "cat prints nothing"
	expect 0 "create" qc create r
	expect 0 "put with arguments and --close" qc put r a b --close
	expect 4 "put after that" qc put r c
	expect 0 "cat" qc cat r
	out_is "the messages" a b
	check_stat "stat: closed" q state=closed messages=0 total_put=3 \
		total_got=3 auto_closed=false producer_lost=false
	check "closed time is set" [ "$(json_get closed "$C/stat.json")" != null ]
}

t_noqueue() {
	expect 6 "get" qc get nosuch
	err_has "the error names the queue" "qctl: get nosuch: "
	expect 6 "put" qc put nosuch x
	err_has "the error names the queue" "qctl: put nosuch: "
	expect 6 "put from stdin" qc put nosuch
	expect 6 "cat" qc cat nosuch
	expect 6 "stat" qc stat nosuch
	expect 6 "stat --json" qc stat nosuch --json
	expect 6 "close" qc close nosuch
	expect 6 "close --now" qc close nosuch --now
	expect 6 "rm" qc rm nosuch
	expect 0 "create" qc create q
	expect 0 "rm" qc rm q
	expect 6 "rm again" qc rm q
	expect 6 "get after rm" qc get q --nonblock
}

t_unreachable() {
	local long
	SHMQ_SOCKET=$C/none.sock expect 8 "ls without a daemon" qc ls
	SHMQ_SOCKET=$C/none.sock expect 8 "create without a daemon" qc create q
	SHMQ_SOCKET=$C/none.sock expect 8 "put without a daemon" qc put q x
	SHMQ_SOCKET=$C/none.sock expect 8 "get without a daemon" qc get q
	SHMQ_SOCKET=$C/none.sock expect 8 "cat without a daemon" qc cat q
	SHMQ_SOCKET=$C/none.sock expect 8 "stat without a daemon" qc stat q
	SHMQ_SOCKET=$C/none.sock expect 8 "close without a daemon" qc close q
	SHMQ_SOCKET=$C/none.sock expect 8 "rm without a daemon" qc rm q
	long=$C/$(printf 'x%.0s' {1..120})/s.sock
	SHMQ_SOCKET=$long expect 8 "a socket path too long for sun_path" qc ls
	expect 0 "create on the case's daemon" qc create q
	stop_daemon "$C/s.sock"
	check "shmqd stopped on SIGTERM" no_daemon "$C/s.sock"
	expect 8 "ls on the socket of a stopped daemon" qc ls
	expect 8 "get on the socket of a stopped daemon" qc get q --nonblock
	unset SHMQ_NO_AUTOSTART
	SHMQ_SOCKET=$C/auto/none.sock SHMQ_DAEMON=$C/no-such-shmqd \
		expect 8 "autostart of a missing SHMQ_DAEMON" qc ls
	export SHMQ_NO_AUTOSTART=1
	# The daemon is gone on purpose: start it again for the end check.
	start_daemon "$C/s.sock"
	expect 0 "the queue outlived the stopped daemon" qc stat q
}

t_toobig() {
	expect 0 "create --max-msg 4" qc create q --max-msg 4
	expect 9 "put of a 5-byte argument" qc put q abcde
	err_has "the error names the queue" "qctl: put q: "
	check_stat "nothing was queued" q messages=0 total_put=0
	expect 0 "put of a 4-byte message" qc put q abcd
	expect 9 "put ab abcde x as arguments" qc put q ab abcde x
	IN=$C/in
	printf 'ab\nabcde\nx\n' >"$IN"
	expect 9 "put from stdin with a line too long" qc put q
	printf 'ok\0toolong\0' >"$IN"
	expect 9 "put -0 with a record too long" qc put q -0
	printf 'ab\nabcdefgh' >"$IN"
	expect 9 "put --close with an unterminated line too long" \
		qc put q --close
	IN=
	check_stat "only the messages before the big ones were queued; a failed put --close did not close" \
		q messages=5 state=open
	expect 0 "get -n 5" qc get q -n 5
	out_is "the queued messages" abcd ab ab ok ab
	expect 0 "create --max-msg 1M" qc create big --max-msg 1M --capacity 2
	head -c 1048576 /dev/zero | tr '\0' a >"$C/m1"
	IN=$C/m1 expect 0 "put of a 1 MiB message" qc put big
	expect 0 "get of a 1 MiB message" qc get big
	{ cat "$C/m1"; echo; } >"$C/m1.nl"
	same_file "the 1 MiB message comes back whole" "$C/m1.nl" "$C/out"
	{ cat "$C/m1"; printf 'a\n'; } >"$C/m2"
	IN=$C/m2 expect 9 "put of a 1 MiB + 1 message" qc put big
	check_stat "the 1 MiB + 1 message was not queued" big messages=0 \
		total_put=1
	expect 0 "create --max-msg 0" qc create empty --max-msg 0
	expect 0 "put empty messages into a --max-msg 0 queue" \
		qc put empty "" ""
	expect 9 "put a 1-byte message into a --max-msg 0 queue" \
		qc put empty x
	expect 0 "get -n 2 empty messages" qc get empty -n 2
	out_is "two empty lines" "" ""
}

t_roundtrip() {
	local i
	expect 0 "create" qc create q --capacity 16
	printf 'first\n\n  two  spaces\ttab \\backslash\n\n\n-dash\n%s\nlast\n' \
		'é ü €' >"$C/in1"
	IN=$C/in1 expect 0 "put --close of lines with empty ones" \
		qc put q --close
	expect 0 "cat" qc cat q
	same_file "cat gives exactly the input" "$C/in1" "$C/out"
	check_stat "one message per line, empty lines too" q total_put=8 \
		state=closed

	expect 0 "create" qc create q2
	printf 'a\nb' >"$C/in2"
	IN=$C/in2 expect 0 "put --close of input without a final newline" \
		qc put q2 --close
	expect 0 "cat" qc cat q2
	out_is "the last line counts too" a b

	expect 0 "create" qc create q3
	: >"$C/in3"
	IN=$C/in3 expect 0 "put --close of empty input" qc put q3 --close
	expect 0 "cat of an empty stream" qc cat q3
	out_is "nothing"
	check_stat "an empty input closes the queue" q3 state=closed \
		total_put=0

	expect 0 "create" qc create bin --capacity 8
	{
		printf 'line1\nline2\n\0'
		printf '\0'
		for i in {1..255}; do
			printf '%b' "\\0$(printf %03o "$i")"
		done
		printf '\0\r\n\0\n\n\0'
	} >"$C/bin"
	IN=$C/bin expect 0 "put -0 --close of binary records with newlines" \
		qc put bin -0 --close
	check_stat "five records" bin total_put=5
	expect 0 "cat -0" qc cat bin -0
	same_file "cat -0 gives exactly the records" "$C/bin" "$C/out"

	expect 0 "create" qc create bin2
	IN=$C/bin expect 0 "put -0" qc put bin2 -0
	expect 0 "get -0 -n 2" qc get bin2 -0 -n 2
	printf 'line1\nline2\n\0\0' >"$C/want"
	same_file "get -0 -n 2 prints two NUL-terminated records" \
		"$C/want" "$C/out"
	expect 0 "get -0" qc get bin2 --null
	check "the third record is the 255 non-NUL bytes" \
		[ "$(wc -c <"$C/out")" -eq 256 ]
	expect 0 "get (newline-terminated) of a record with CR LF" qc get bin2
	printf '\r\n\n' >"$C/want"
	same_file "the record keeps its CR LF" "$C/want" "$C/out"
}

t_json() {
	local uid
	uid=$(id -u)
	expect 0 "create with every setting but --auto-close" qc create j \
		--capacity 5 --max-msg 100 --max-bytes 1K --mode 0640
	expect 0 "create a second queue, --auto-close" qc create k --auto-close
	expect 0 "put three messages (3+5+0 bytes)" qc put j abc defgh ""
	expect 0 "get one" qc get j
	expect 0 "stat --json" qc stat j --json
	cp "$C/out" "$C/stat.json"
	check "stat --json is one line" [ "$(lines_of "$C/out")" = 1 ]
	check "stat --json is a flat JSON object" grep -qxE "$JSON_OBJ" "$C/out"
	if command -v jq >/dev/null 2>&1; then
		check "jq parses stat --json" jq -e 'type == "object"' "$C/out"
	fi
	check "stat --json has exactly the documented keys" \
		[ "$(grep -oE '"[a-z_]+":' "$C/out" | tr -d '":' | sort | tr '\n' ' ')" = \
		  "acked auto_close auto_closed blocked_get blocked_put bytes capacity closed consumers created dead_letter dead_lettered deadlocked discarded dropped gid lease_timeout_ms leased max_bytes max_deliveries max_msg messages mode name on_deadlock producer_lost producers returned state total_acked total_got total_put uid " ]
	check_stat "stat --json numbers" j name=j capacity=5 max_msg=100 \
		max_bytes=1024 mode=0640 uid="$uid" auto_close=false messages=2 \
		bytes=5 producers=0 consumers=0 blocked_put=0 blocked_get=0 \
		total_put=3 total_got=1 discarded=0 state=open auto_closed=false \
		producer_lost=false closed=null on_deadlock=report deadlocked=false \
		acked=false leased=0 returned=0 total_acked=0 dead_lettered=0 \
		dropped=0 lease_timeout_ms=0 max_deliveries=0 dead_letter=null
	check "created is an ISO 8601 UTC time" grep -qE \
		'"created":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z"' \
		"$C/out"
	expect 0 "stat (text)" qc stat j
	check "stat text: capacity" grep -qE '^capacity: +5$' "$C/out"
	check "stat text: messages" grep -qE '^messages: +2$' "$C/out"
	check "stat text: bytes" grep -qE '^bytes: +5$' "$C/out"
	check "stat text: state" grep -qE '^state: +open$' "$C/out"
	check "stat text: total_put" grep -qE '^total_put: +3$' "$C/out"
	check "stat text of a plain queue: acked no, and no lease fields" \
		[ "$(tail -n 1 "$C/out")" = "acked:           no" ]
	expect 0 "ls --json" qc ls --json
	# shellcheck disable=SC2016
	check "ls --json: [, one object per line, ]" \
		env JSON_RE="^$JSON_OBJ,?\$" awk '
		BEGIN { re = ENVIRON["JSON_RE"] }
		NR == 1 { ok = ($0 == "["); next }
		{ last = $0 }
		$0 != "]" && $0 !~ re { ok = 0 }
		END { exit !(ok && last == "]") }' "$C/out"
	check "ls --json lists two queues" \
		[ "$(grep -c '^{' "$C/out")" = 2 ]
	if command -v jq >/dev/null 2>&1; then
		check "jq: ls --json is an array of the two queues" jq -e \
			'type == "array" and length == 2 and
			 ([.[].name] | sort) == ["j", "k"] and
			 (.[] | select(.name == "j") | .messages == 2 and
			  .total_put == 3)' "$C/out"
	fi
	check "ls --json objects are those of stat --json" \
		grep -qxF -e "$(cat "$C/stat.json")," -e "$(cat "$C/stat.json")" \
		"$C/out"
	expect 0 "ls" qc ls
	check "ls header" grep -qE '^NAME +LENGTH/CAPACITY +STATE +PRODUCERS +CONSUMERS +LEASED$' \
		"$C/out"
	check "ls line of j" grep -qE '^j +2/5 +open +0 +0 +-$' "$C/out"
	check "ls line of k" grep -qE '^k +0/1024 +open +0 +0 +-$' "$C/out"
	check_stat "k is --auto-close" k auto_close=true state=open
	expect 0 "rm k" qc rm k
	expect 0 "rm j" qc rm j
	expect 0 "ls --json of no queues" qc ls --json
	out_is "an empty JSON array" "[]"
}

# Deadlocks themselves need processes that both put and get, which qctl
# is not: check_deadlock finds them, runs 'qctl deadlocks --json' on one
# and has 'qctl put' fail with 12.  Here: the command, the option, the
# fields.
t_deadlocks() {
	expect 0 "deadlocks with none" qc deadlocks
	out_is "deadlocks says there are none" "no deadlocks"
	expect 0 "deadlocks --json with none" qc deadlocks --json
	out_is "deadlocks --json of none is an empty array" "[]"
	expect 2 "deadlocks takes no queue" qc deadlocks q
	expect 0 "create --on-deadlock fail" qc create f --on-deadlock fail
	expect 0 "create --on-deadlock report" qc create r --on-deadlock report
	expect 0 "create without --on-deadlock" qc create d
	expect 2 "create --on-deadlock maybe" qc create m --on-deadlock maybe
	err_has "the error says what it takes" "expected report or fail"
	check_stat "fail is kept" f on_deadlock=fail deadlocked=false
	check_stat "report is kept" r on_deadlock=report
	check_stat "report is the default" d on_deadlock=report
	expect 0 "stat (text)" qc stat f
	check "stat text: on_deadlock" grep -qE '^on_deadlock: +fail$' "$C/out"
	check "stat text: deadlocked" grep -qE '^deadlocked: +no$' "$C/out"
	check "shmqd logs the create with its policy" \
		grep -qF "on-deadlock fail" "$C/s.sock.log"
	# The policy survives a restart: it is in the daemon's own record.
	stop_daemon "$C/s.sock"
	check "shmqd restarts" start_daemon "$C/s.sock" --deadlock-timeout 0.5
	check_stat "fail survives a restart" f on_deadlock=fail
	check_stat "report survives a restart" r on_deadlock=report
}

t_closenow() {
	expect 0 "create" qc create q
	expect 0 "put 7" qc put q 1 2 3 4 5 6 7
	expect 0 "close --now" qc close q --now
	out_is "close --now prints the discarded count" 7
	expect 3 "get after close --now" qc get q
	expect 4 "put after close --now" qc put q x
	check_stat "stat: closed-now, 7 discarded" q state=closed-now \
		discarded=7 messages=0 bytes=0 total_put=7 total_got=0
	expect 0 "close --now again" qc close q --now
	out_is "nothing more to discard" 0
	expect 0 "close (drain) after close --now" qc close q
	check_stat "still closed-now" q state=closed-now discarded=7

	expect 0 "create" qc create e
	qc get e >"$C/g.out" 2>"$C/g.err" &
	local gpid=$!
	wait_stat "a get blocks on the empty queue" e blocked_get=1 consumers=1
	expect 0 "close --now of an empty queue" qc close e --now
	out_is "nothing discarded" 0
	wait "$gpid"
	check "the blocked get woke with end of stream (3)" [ $? -eq 3 ]
	check "and printed nothing" empty "$C/g.out" "$C/g.err"
}

t_blocked() {
	local ppid gpid rc
	expect 0 "create --capacity 2" qc create q --capacity 2
	expect 0 "fill it" qc put q a b
	qc put q c 2>"$C/p.err" &
	ppid=$!
	wait_stat "stat --json shows the put blocked (backpressure)" q \
		blocked_put=1 producers=1 messages=2
	expect 0 "ls" qc ls
	check "ls shows the queue full" grep -qE '^q +2/2 +open +1 +0 +-$' "$C/out"
	expect 0 "get one" qc get q
	out_is "the oldest" a
	wait "$ppid"
	rc=$?
	check "the blocked put completed once there was room (0, got $rc)" \
		[ "$rc" -eq 0 ]
	check_stat "no one blocked now" q blocked_put=0 producers=0 messages=2
	qc put q d 2>"$C/p.err" &
	ppid=$!
	wait_stat "a second put blocks" q blocked_put=1
	expect 0 "close" qc close q
	wait "$ppid"
	rc=$?
	check "the blocked put woke with closed (4, got $rc)" [ "$rc" -eq 4 ]
	expect 3 "get -n 3 drains b c" qc get q -n 3
	out_is "b and c, not d" b c

	expect 0 "create" qc create r
	qc get r >"$C/g.out" 2>"$C/g.err" &
	gpid=$!
	wait_stat "stat --json shows the get blocked" r blocked_get=1 \
		consumers=1
	expect 0 "put hello" qc put r hello
	wait "$gpid"
	rc=$?
	check "the blocked get got the message (0, got $rc)" [ "$rc" -eq 0 ]
	out_is_file "it printed hello" "$C/g.out" hello
	qc get r >"$C/g.out" 2>"$C/g.err" &
	gpid=$!
	wait_stat "a second get blocks" r blocked_get=1
	expect 0 "close" qc close r
	wait "$gpid"
	rc=$?
	check "the blocked get woke with end of stream (3, got $rc)" \
		[ "$rc" -eq 3 ]
	check_stat "no one blocked now" r blocked_get=0 consumers=0

	expect 0 "create" qc create k --capacity 1
	"$QCTL" get k >/dev/null 2>&1 &
	gpid=$!
	wait_stat "a get blocks" k blocked_get=1 consumers=1
	kill_tree "$gpid"
	wait "$gpid" 2>/dev/null
	wait_stat "a get SIGKILLed while blocked is no longer counted" k \
		blocked_get=0 consumers=0
	expect 0 "put" qc put k a
	"$QCTL" put k b >/dev/null 2>&1 &
	ppid=$!
	wait_stat "a put blocks" k blocked_put=1 producers=1
	kill_tree "$ppid"
	wait "$ppid" 2>/dev/null
	wait_stat "a put SIGKILLed while blocked is no longer counted" k \
		blocked_put=0 producers=0 messages=1 producer_lost=true
	expect 0 "the queue still works" qc get k
	out_is "the message put before" a
}

# out_is_file DESC FILE LINE...
out_is_file() {
	local desc=$1 f=$2
	shift 2
	printf '%s\n' "$@" >"$C/want"
	same_file "$desc" "$C/want" "$f"
}

t_mpmc() {
	local i p pids=() cpids=() rc bad
	expect 0 "create --capacity 64" qc create q --capacity 64
	for i in 1 2 3; do
		ql cat q >"$C/c$i" 2>"$C/c$i.err" &
		cpids+=($!)
	done
	for i in 0 1 2; do
		seq $((i * 20000 + 1)) $((i * 20000 + 20000)) |
			ql put q 2>"$C/p$i.err" &
		pids+=($!)
	done
	bad=0
	for p in "${pids[@]}"; do
		wait "$p" || bad=1
	done
	check "three producers (seq | qctl put) exit 0" [ "$bad" = 0 ]
	expect 0 "close" qc close q
	bad=0
	for p in "${cpids[@]}"; do
		wait "$p" || bad=1
	done
	check "three consumers (qctl cat) exit 0" [ "$bad" = 0 ]
	seq 60000 >"$C/want"
	sort -n "$C/c1" "$C/c2" "$C/c3" >"$C/all"
	same_file "every message received exactly once" "$C/want" "$C/all"
	check "no duplicates" [ -z "$(uniq -d "$C/all" | head -n 1)" ]
	# shellcheck disable=SC2016
	check "each consumer got each producer's messages in order" awk '
		FNR == 1 { last[0] = last[1] = last[2] = 0 }
		{ p = int(($1 - 1) / 20000); if ($1 <= last[p]) exit 1
		  last[p] = $1 }' "$C/c1" "$C/c2" "$C/c3"
	echo "# consumers got $(lines_of "$C/c1") + $(lines_of "$C/c2") + $(lines_of "$C/c3")"
	check_stat "stat after the pipeline" q total_put=60000 \
		total_got=60000 messages=0 producers=0 consumers=0 state=closed

	# A pipeline of stages: seq | put --close in; 3 workers
	# (cat in | sed | put out); out closes itself when the last worker
	# detaches; one collector.
	expect 0 "create in" qc create in --capacity 16
	expect 0 "create out --auto-close" qc create out --capacity 16 \
		--auto-close
	pids=()
	for i in 1 2 3; do
		ql cat in 2>"$C/w$i.err" | sed 's/^/w /' |
			ql put out 2>>"$C/w$i.err" &
		pids+=($!)
	done
	wait_stat "three workers attached to out" out producers=3
	ql cat out >"$C/res" 2>"$C/res.err" &
	cpids=($!)
	seq 30000 | ql put in --close
	check "seq | qctl put --close in exits 0" [ "${PIPESTATUS[1]}" = 0 ]
	bad=0
	for p in "${pids[@]}"; do
		wait "$p" || bad=1
	done
	check "the workers exit 0" [ "$bad" = 0 ]
	wait "${cpids[0]}"
	rc=$?
	check "the collector's cat ends with 0 once the last worker left (got $rc)" \
		[ "$rc" -eq 0 ]
	seq 30000 | sed 's/^/w /' >"$C/want"
	sort -k2n "$C/res" >"$C/all"
	same_file "the collector got every item once" "$C/want" "$C/all"
	check_stat "out closed itself" out state=closed auto_closed=true \
		producer_lost=false total_put=30000
}

t_autoclose() {
	local cpid p1 rc
	expect 0 "create --auto-close" qc create q --auto-close
	mkfifo "$C/fifo"
	qc cat q >"$C/out.cat" 2>"$C/err.cat" &
	cpid=$!
	qc put q <"$C/fifo" 2>"$C/p1.err" &
	p1=$!
	exec 7>"$C/fifo"
	echo first >&7
	wait_stat "the first producer is attached and put" q producers=1 \
		total_put=1
	seq 3 | qc put q 7>&-
	check "a second producer (seq 3 | qctl put) exits 0" \
		[ "${PIPESTATUS[1]}" = 0 ]
	check_stat "the queue stays open while the first producer runs" q \
		state=open producers=1 total_put=4
	check "and the consumer still runs" kill -0 "$cpid"
	expect 0 "a third producer with arguments" qc put q x y
	check_stat "still open" q state=open producers=1
	echo last >&7
	exec 7>&-
	wait "$p1"
	rc=$?
	check "the first producer exits 0 at the end of its input (got $rc)" \
		[ "$rc" -eq 0 ]
	wait "$cpid"
	rc=$?
	check "cat ends with 0 after the last producer (got $rc)" [ "$rc" -eq 0 ]
	sort "$C/out.cat" >"$C/all"
	printf '%s\n' 1 2 3 first last x y >"$C/want"
	same_file "cat got every message" "$C/want" "$C/all"
	check "first came before last" awk '
		/^first$/ { f = NR } /^last$/ { l = NR } END { exit !(f && f < l) }' \
		"$C/out.cat"
	check_stat "auto-closed, no producer lost" q state=closed \
		auto_closed=true producer_lost=false producers=0 consumers=0
	expect 3 "get after auto-close" qc get q
	expect 4 "put after auto-close" qc put q z
}

t_lost() {
	local cpid ppid rc n
	# Killed while streaming to a running consumer.
	expect 0 "create --auto-close" qc create q --auto-close
	qc cat q >"$C/out.cat" 2>"$C/err.cat" &
	cpid=$!
	"$QCTL" put q < <(yes) 2>/dev/null &
	ppid=$!
	if ! wait_for "$T" stat_is_gt q total_got 20000; then
		not_ok "the stream flows" "$(cat "$C/stat.json")"
	fi
	kill_tree "$ppid"
	wait "$ppid" 2>/dev/null
	wait "$cpid"
	rc=$?
	check "cat ends with 10 after the producer was SIGKILLed (got $rc)" \
		[ "$rc" -eq 10 ]
	check "with one error line" [ "$(lines_of "$C/err.cat")" = 1 ]
	check_stat "stat: closed, producer lost" q state=closed \
		producer_lost=true producers=0 consumers=0 messages=0
	n=$(json_get total_put "$C/stat.json")
	check "cat printed every message put ($n)" \
		[ "$(lines_of "$C/out.cat")" = "$n" ]
	check "each of them 'y'" [ "$(grep -cvx y "$C/out.cat")" = 0 ]
	check "total_got = total_put" \
		[ "$(json_get total_got "$C/stat.json")" = "$n" ]
	expect 10 "get after the drain" qc get q
	expect 0 "ls" qc ls
	check "ls shows the queue closed,auto,lost" \
		grep -qE '^q +0/1024 +closed,auto,lost +0 +0 +-$' "$C/out"

	# Killed while blocked on a full queue; the consumer comes later.
	expect 0 "create --auto-close --capacity 100" qc create r \
		--auto-close --capacity 100
	"$QCTL" put r < <(yes) 2>/dev/null &
	ppid=$!
	wait_stat "the producer blocks on the full queue" r blocked_put=1 \
		messages=100
	kill_tree "$ppid"
	wait "$ppid" 2>/dev/null
	wait_stat "the daemon closes the queue: producer lost" r state=closed \
		producer_lost=true producers=0 messages=100 blocked_put=0
	expect 10 "cat drains and exits 10" qc cat r
	check "cat printed the 100 messages" [ "$(lines_of "$C/out")" = 100 ]
	expect 10 "get afterwards" qc get r

	# A producer that finishes normally and one that dies: still lost.
	expect 0 "create --auto-close" qc create s --auto-close
	"$QCTL" put s < <(yes) 2>/dev/null &
	ppid=$!
	wait_stat "the producer fills the queue" s blocked_put=1
	expect 0 "another producer attaches and detaches cleanly" qc put s
	check_stat "the queue stays open" s state=open producers=1
	kill_tree "$ppid"
	wait "$ppid" 2>/dev/null
	wait_stat "closed with producer lost" s state=closed producer_lost=true
	expect 10 "cat" qc cat s
}

t_catmany() {
	local cpid ppid rc
	expect 0 "create a" qc create a
	expect 0 "create b --auto-close" qc create b --auto-close
	expect 0 "create c" qc create c
	ql cat a b c --names >"$C/out.cat" 2>"$C/err.cat" &
	cpid=$!
	wait_stat "cat attached to a" a consumers=1
	wait_stat "cat attached to c" c consumers=1
	expect 0 "put a" qc put a a1 a2
	expect 0 "put b (its only producer: b closes when it leaves)" \
		qc put b b1
	expect 0 "put c" qc put c c1
	wait_stat "b ended for cat" b state=closed consumers=0
	check "cat goes on with a and c after b ended" kill -0 "$cpid"
	expect 0 "close a" qc close a
	wait_stat "a ended for cat" a consumers=0
	expect 0 "put c after a ended" qc put c c2 c3
	wait_stat "cat took c's messages" c total_got=3
	expect 0 "close c" qc close c
	wait "$cpid"
	rc=$?
	check "cat of three queues exits 0 once all three ended (got $rc)" \
		[ "$rc" -eq 0 ]
	check "with nothing on stderr" [ ! -s "$C/err.cat" ]
	printf 'a\ta1\na\ta2\nb\tb1\nc\tc1\nc\tc2\nc\tc3\n' >"$C/want"
	sort "$C/out.cat" >"$C/all"
	same_file "every message once, after its queue's name and a tab" \
		"$C/want" "$C/all"
	check "each queue's order kept" awk -F '\t' '
		{ if ($2 <= last[$1]) bad = 1; last[$1] = $2 }
		END { exit bad }' "$C/out.cat"

	# -0, and one queue with --names.
	expect 0 "create d" qc create d
	expect 0 "create e" qc create e
	expect 0 "put d" qc put d 'd 1'
	expect 0 "put e" qc put e 'e 1'
	expect 0 "close d" qc close d
	expect 0 "close e" qc close e
	expect 0 "cat d e -0 --names" qc cat d e -0 --names
	printf 'd\td 1\0' >"$C/want.d"
	printf 'e\te 1\0' >"$C/want.e"
	check "-0 --names: NAME, tab, message, NUL for each" \
		[ "$(cat "$C/want.d" "$C/want.e" | od -c)" = "$(od -c <"$C/out")" \
		-o "$(cat "$C/want.e" "$C/want.d" | od -c)" = "$(od -c <"$C/out")" ]
	expect 0 "cat d --names (one queue)" qc cat d --names
	out_is "a drained queue prints nothing"

	# A producer lost on one queue: 10, naming that queue.
	expect 0 "create f --auto-close" qc create f --auto-close
	expect 0 "create g" qc create g
	ql cat f g >"$C/out.cat" 2>"$C/err.cat" &
	cpid=$!
	"$QCTL" put f < <(yes) 2>/dev/null &
	ppid=$!
	if ! wait_for "$T" stat_is_gt f total_got 1000; then
		not_ok "f flows" "$(cat "$C/stat.json")"
	fi
	kill_tree "$ppid"
	wait "$ppid" 2>/dev/null
	wait_stat "f ended with its producer lost" f state=closed \
		producer_lost=true consumers=0
	check "cat still waits for g" kill -0 "$cpid"
	expect 0 "put g" qc put g last
	expect 0 "close g" qc close g
	wait "$cpid"
	rc=$?
	check "cat exits 10 when a queue lost a producer (got $rc)" \
		[ "$rc" -eq 10 ]
	check "one error line" [ "$(lines_of "$C/err.cat")" = 1 ]
	check "the error names f" grep -q 'cat f:' "$C/err.cat"
	check "g's message printed" grep -qx last "$C/out.cat"

	# Errors name the queue, before anything is read.
	expect 0 "create h" qc create h
	expect 6 "cat with a queue that does not exist" qc cat h nosuch
	err_has "names it" "cat nosuch:"
	expect 2 "cat with a bad name" qc cat h 'bad/name'
	err_has "names it" "bad/name"
}

# no_warning LOG: the daemon logged no warning or error.
no_warning() {
	! grep -qE 'warning|error' "$1"
}

# stat_is_gt NAME KEY MIN: stat --json KEY > MIN.
stat_is_gt() {
	snap "$1" && [ "$(json_get "$2" "$C/stat.json")" -gt "$3" ]
}

t_rm() {
	local cpid ppid rc
	expect 0 "create" qc create q
	mkfifo "$C/fifo"
	qc cat q >"$C/out.cat" 2>"$C/err.cat" &
	cpid=$!
	qc put q --close <"$C/fifo" 2>"$C/p.err" &
	ppid=$!
	exec 7>"$C/fifo"
	echo one >&7
	wait_stat "producer and consumer attached, one message through" q \
		producers=1 consumers=1 total_got=1
	expect 0 "rm while both are open" qc rm q
	expect 6 "stat after rm" qc stat q
	expect 6 "get after rm" qc get q --nonblock
	expect 0 "ls --json" qc ls --json
	out_is "the name is gone from ls" "[]"
	expect 0 "create a new queue of the same name" qc create q
	expect 0 "put into the new queue" qc put q new
	echo two >&7
	echo three >&7
	exec 7>&-
	wait "$ppid"
	rc=$?
	check "the open producer kept working and closed its queue (0, got $rc)" \
		[ "$rc" -eq 0 ]
	wait "$cpid"
	rc=$?
	check "the open cat kept working until end of stream (0, got $rc)" \
		[ "$rc" -eq 0 ]
	out_is_file "it got one two three" "$C/out.cat" one two three
	check_stat "the new queue is another one" q messages=1 total_put=1 \
		state=open
	expect 0 "get from the new queue" qc get q
	out_is "its message" new
}

t_restart() {
	local cpid ppid rc sock=$C/s.sock
	# Both ends open, shmqd killed (-9) between two halves of the stream,
	# restarted before the end: the producer is fed through a FIFO.
	expect 0 "create" qc create q --capacity 1000
	mkfifo "$C/fifo"
	ql cat q >"$C/out.cat" 2>"$C/err.cat" &
	cpid=$!
	ql put q --close <"$C/fifo" 2>"$C/p.err" &
	ppid=$!
	exec 7>"$C/fifo"
	timeout "$T" seq 1 100000 >&7
	check "the first 100000 go in" [ $? -eq 0 ]
	wait_stat "producer and consumer attached" q producers=1 consumers=1
	kill -KILL "$(cat "$sock.pid")"
	check "shmqd is killed (-9)" wait_for "$T" no_daemon "$sock"
	timeout "$T" seq 100001 200000 >&7
	check "the producer keeps putting while shmqd is down" [ $? -eq 0 ]
	check "the consumer gets all 200000 while shmqd is down" \
		wait_for "$T" has_lines "$C/out.cat" 200000
	expect 8 "ls while shmqd is down" qc ls
	# (Not with the FIFO's write end: the daemon would hold it open.)
	check "shmqd restarts on the same socket" start_daemon "$sock" 7>&-
	check "it finds the queue's shared state consistent (no warning)" \
		no_warning "$sock.log"
	check_stat "the restarted shmqd re-adopted the queue and both clients" \
		q producers=1 consumers=1 messages=0 total_put=200000 \
		total_got=200000 state=open
	exec 7>&-
	wait "$ppid"
	rc=$?
	check "put --close, open across the restart, exits 0 (got $rc)" \
		[ "$rc" -eq 0 ]
	wait "$cpid"
	rc=$?
	check "cat, open across the restart, exits 0 (got $rc)" [ "$rc" -eq 0 ]
	seq 200000 >"$C/want"
	same_file "no message lost or duplicated" "$C/want" "$C/out.cat"
	check_stat "stat after the restart" q state=closed producers=0 \
		consumers=0 total_put=200000 total_got=200000 \
		producer_lost=false

	# seq 200000 | qctl put --close, with qctl cat writing into a pipe
	# that nobody reads yet: both block mid-stream, shmqd is killed and
	# restarted, then the pipe is drained.
	expect 0 "create" qc create f --capacity 256
	mkfifo "$C/fifo2"
	ql cat f >"$C/fifo2" 2>"$C/err.f" &
	cpid=$!
	seq 200000 | ql put --close f 2>"$C/pf.err" &
	ppid=$!
	exec 8<"$C/fifo2"
	wait_stat "mid-stream: the producer blocks, the queue is full" f \
		blocked_put=1 messages=256 consumers=1
	echo "# shmqd killed after $(json_get total_got "$C/stat.json") of 200000 were got"
	kill -KILL "$(cat "$sock.pid")"
	check "shmqd is killed (-9) again" wait_for "$T" no_daemon "$sock"
	check "shmqd restarts again" start_daemon "$sock" 8<&-
	check "it finds the full queue's shared state consistent (no warning)" \
		no_warning "$sock.log"
	timeout "$TL" cat <&8 >"$C/out.f"
	check "the consumer's output is drained to its end" [ $? -eq 0 ]
	exec 8<&-
	wait "$ppid"
	rc=$?
	check "seq 200000 | qctl put --close exits 0 (got $rc)" [ "$rc" -eq 0 ]
	wait "$cpid"
	rc=$?
	check "qctl cat exits 0 (got $rc)" [ "$rc" -eq 0 ]
	same_file "out == seq 200000" "$C/want" "$C/out.f"

	# A producer that finishes while shmqd is down.
	expect 0 "create --auto-close" qc create a --auto-close
	rm -f "$C/fifo"
	mkfifo "$C/fifo"
	ql cat a >"$C/out.a" 2>"$C/err.a" &
	cpid=$!
	ql put a <"$C/fifo" 2>"$C/pa.err" &
	ppid=$!
	exec 7>"$C/fifo"
	timeout "$T" seq 10 >&7
	wait_stat "producer and consumer attached" a producers=1 consumers=1 \
		total_got=10
	kill -KILL "$(cat "$sock.pid")"
	wait_for "$T" no_daemon "$sock"
	timeout "$T" seq 11 20 >&7
	exec 7>&-
	wait "$ppid"
	rc=$?
	check "a producer that finishes while shmqd is down exits 0 (got $rc)" \
		[ "$rc" -eq 0 ]
	check "shmqd restarts a third time" start_daemon "$sock"
	wait "$cpid"
	rc=$?
	check "cat then ends with 0, not 10: no producer was lost (got $rc)" \
		[ "$rc" -eq 0 ]
	seq 20 >"$C/want"
	same_file "cat got all 20" "$C/want" "$C/out.a"
}

t_perm() {
	local sock=$C/s.sock
	if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null 2>&1; then
		ok "# SKIP needs root and setpriv"
		return
	fi
	chmod 0711 "$TOP"
	chmod 0755 "$C"
	chmod 0666 "$sock"
	if ! qn --version >/dev/null 2>&1; then
		ok "# SKIP user 65534 cannot run $QCTL"
		return
	fi
	expect 0 "create priv (0600)" qc create priv
	expect 0 "create pub (0644)" qc create pub --mode 644
	expect 0 "create open (0666)" qc create open --mode 0666
	expect 0 "put into priv" qc put priv secret
	expect 0 "put into pub" qc put pub hello
	expect 7 "get from 0600 as another user" qn get priv --nonblock
	err_has "the error names the queue" "qctl: get priv: "
	expect 7 "cat from 0600 as another user" qn cat priv
	expect 7 "put into 0600 as another user" qn put priv x
	expect 7 "stat of 0600 as another user" qn stat priv
	expect 7 "close 0600 as another user" qn close priv
	expect 7 "close --now 0600 as another user" qn close priv --now
	expect 7 "rm 0600 as another user" qn rm priv
	expect 7 "put into 0644 as another user" qn put pub x
	expect 0 "get from 0644 as another user" qn get pub
	out_is "it reads the message" hello
	expect 0 "put into 0666 as another user" qn put open y
	expect 0 "get from 0666 as another user" qn get open
	out_is "it reads its message" y
	expect 7 "rm 0666 as another user (only the owner)" qn rm open
	expect 0 "ls as another user" qn ls
	check "ls shows only the queues it may read" \
		[ "$(awk 'NR > 1 { print $1 }' "$C/out" | sort | tr '\n' ' ')" = \
		  "open pub " ]
	expect 0 "create as another user" qn create mine
	check_stat "its queue is owned by it" mine uid=65534 gid=65534 mode=0600
	expect 0 "ls -l" qc ls -l
	check "ls -l header" grep -qE \
		'^NAME +MODE +OWNER +GROUP +LENGTH/CAPACITY +STATE +PRODUCERS +CONSUMERS +LEASED$' \
		"$C/out"
	check "ls -l shows the owner of each queue" grep -qE \
		'^mine +0600 +(nobody|65534) +[a-z0-9]+ +0/1024 +open +0 +0 +-$' \
		"$C/out"
	check "ls -l: root's queue" grep -qE '^pub +0644 +root +' "$C/out"
	expect 0 "users as another user" qn users
	check "users: a header, its own row only, the totals: 3 lines" \
		[ "$(lines_of "$C/out")" = 3 ]
	check "users: the totals last" \
		[ "$(awk 'NR == 3 { print $1 }' "$C/out")" = "(total)" ]
	check "users: its row counts its queue and this connection" \
		grep -qE '^(nobody|65534) +65534 +1/4096 +[0-9.]+[KM]/[0-9.]+[KMGT] +1/1024 +0/4096$' \
		"$C/out"
	expect 0 "users as root" qc users --json
	check "users --json as root: root (exempt) and 65534" grep -qE \
		'^\{"uid":0,"user":"root","exempt":true,.*"max_handles":null\},$' \
		"$C/out"
	check "users --json: 65534's quotas" grep -qE \
		'^\{"uid":65534,"user":"[a-z0-9]+","exempt":false,"bytes":[1-9][0-9]*,"max_bytes":[0-9]+,"queues":1,"max_queues":4096,"clients":0,"max_clients":1024,"handles":0,"max_handles":4096\}$' \
		"$C/out"
	if command -v jq >/dev/null 2>&1; then
		check "jq: users --json totals are the sums" jq -e \
			'.total.queues == ([.users[].queues] | add) and
			 .total.bytes == ([.users[].bytes] | add) and
			 .total.max_queues == 16384' "$C/out"
	fi
	check_stat "the refused commands changed nothing" priv messages=1 \
		state=open total_got=0
	expect 0 "the owner still reads its message" qc get priv
	out_is "the message" secret
}

t_quota() {
	if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null 2>&1; then
		ok "# SKIP needs root and setpriv"
		return
	fi
	chmod 0711 "$TOP"
	chmod 0755 "$C"
	chmod 0666 "$C/s.sock"
	expect 0 "create within the quota" qn create a --capacity 4
	expect 0 "put into it" qn put a kept
	expect 1 "create past --user-max-queues 1" qn create b --capacity 4
	err_has "one line naming the quota, the usage and the limit" \
		"qctl: create b: daemon limit reached (uid 65534 at its queue quota (--user-max-queues): 1 of 1 in use)"
	expect 6 "nothing was created" qc stat b
	expect 0 "the daemon's user still creates" qc create c --capacity 4
	expect 0 "users" qn users
	check "users shows the queue quota reached" grep -qE \
		'^[a-z0-9]+ +65534 +1/1 ' "$C/out"
	expect 0 "rm gives the queue back" qn rm a
	expect 0 "then create succeeds" qn create b --capacity 4
	check "the first refusal is logged, once" \
		[ "$(grep -c 'uid 65534 at its queue quota' "$C/s.sock.log")" = 1 ]
}

t_errors() {
	expect 0 "create a" qc create a --capacity 65536 --max-msg 16
	expect 1 "create beyond --max-queues 1" qc create b
	err_has "the error names the limit" "limit"
	expect 6 "b does not exist" qc stat b
	# cat into a pipe whose reader has gone: a write error, and cat
	# detaches.
	seq 60000 | qc put a --close 2>/dev/null
	qc cat a 2>"$C/err" | head -n 1 >/dev/null
	check "cat into a closed pipe exits 1 (got ${PIPESTATUS[0]})" \
		[ "${PIPESTATUS[0]}" = 1 ]
	check "with one line: write error" grep -q 'write error' "$C/err"
	check_stat "and detached" a consumers=0
	if [ -w /dev/full ]; then
		qc cat a >/dev/full 2>"$C/err"
		check "cat into a full disk (/dev/full) exits 1" [ $? -eq 1 ]
		check "with one line: write error" \
			grep -qx 'qctl: cat a: write error: No space left on device' \
			"$C/err"
	fi
}

t_autostart() {
	local path=$C/auto/s.sock pids
	SOCKS+=("$path")
	unset SHMQ_NO_AUTOSTART
	export SHMQ_SOCKET=$path SHMQ_DAEMON=$SHMQD
	expect 0 "qctl create starts a daemon" qc create q
	pids=$(daemon_pids "$path")
	check "one shmqd serves $path" [ "$(echo "$pids" | wc -w)" = 1 ]
	check "its socket exists" [ -S "$path" ]
	check "it logs to <socket>.log" grep -q "created queue 'q'" \
		"$path.log"
	SHMQ_NO_AUTOSTART=1 expect 0 "the started daemon serves" qc put q x
	expect 0 "another command" qc stat q
	check "does not start a second daemon" \
		[ "$(daemon_pids "$path")" = "$pids" ]
	stop_daemon "$path"
	check "it stops on SIGTERM" no_daemon "$path"
	SHMQ_NO_AUTOSTART=1 expect 8 "without autostart: unreachable" qc ls
	expect 0 "autostart again on get" qc get q --nonblock
	out_is "the new daemon re-adopted the queue and its message" x
	check "one shmqd serves $path again" \
		[ "$(daemon_pids "$path" | wc -w)" = 1 ]
	stop_daemon "$path"
	export SHMQ_NO_AUTOSTART=1
	unset SHMQ_DAEMON
}

# kill_daemon SOCKET: SIGKILL, which leaves its socket file behind.
kill_daemon() {
	local p
	for p in $(daemon_pids "$1"); do
		kill -KILL "$p" 2>/dev/null
	done
	wait_for 5 no_daemon "$1"
}

# Each cause of "daemon unreachable" has its own words on the one error
# line, and the status stays 8.
t_causes() {
	local enoent="No such file or directory" bin
	SHMQ_SOCKET=$C/none.sock expect 8 "no socket, autostart off" qc ls
	err_has "the error says: no socket there, autostart is off" \
		"qctl: ls: daemon unreachable: no daemon on $C/none.sock (connect: $enoent); autostart is off (SHMQ_NO_AUTOSTART)"
	SHMQ_SOCKET=$C/none.sock expect 8 "the same for a queue command" \
		qc stat q
	err_has "the error names the queue and the cause" \
		"qctl: stat q: daemon unreachable: no daemon on $C/none.sock"

	expect 0 "the case's daemon answers" qc ls
	kill_daemon "$C/s.sock"
	check "SIGKILL left the dead daemon's socket file" [ -S "$C/s.sock" ]
	expect 8 "a dead daemon's socket, autostart off" qc ls
	err_has "the error says nobody listens" \
		"qctl: ls: daemon unreachable: no daemon listens on $C/s.sock (connect: Connection refused); autostart is off (SHMQ_NO_AUTOSTART)"

	unset SHMQ_NO_AUTOSTART
	SHMQ_SOCKET=$C/auto/none.sock SHMQ_DAEMON=$C/no-such-shmqd \
		expect 8 "autostart of a missing binary" qc ls
	err_has "the error names the binary and the exec error" \
		"qctl: ls: daemon unreachable: no daemon on $C/auto/none.sock (connect: $enoent); cannot start $C/no-such-shmqd (exec: $enoent)"
	printf 'not a program\n' >"$C/not-exec"
	chmod 0644 "$C/not-exec"
	SHMQ_SOCKET=$C/auto/none.sock SHMQ_DAEMON=$C/not-exec \
		expect 8 "autostart of a file that is not executable" qc ls
	err_has "the error gives the exec error" \
		"cannot start $C/not-exec (exec: Permission denied)"
	bin=$C/failing-shmqd
	printf '#!/bin/sh\nexit 3\n' >"$bin"
	chmod 0755 "$bin"
	SHMQ_SOCKET=$C/auto/f.sock SHMQ_DAEMON=$bin \
		expect 8 "autostart of a daemon that fails" qc ls
	err_has "the error gives its exit status" \
		"qctl: ls: daemon unreachable: no daemon on $C/auto/f.sock (connect: $enoent); started $bin, which exited with status 3"
	SHMQ_SOCKET=$C/no/such/x.sock SHMQ_DAEMON=$SHMQD \
		expect 8 "autostart where the socket's directory cannot be made" \
		qc ls
	err_has "the error gives the mkdir error" \
		"cannot create the directory of $C/no/such/x.sock: $enoent"
	mkdir -m 0777 "$C/open"
	SHMQ_SOCKET=$C/open/x.sock SHMQ_DAEMON=$SHMQD \
		expect 8 "autostart in a directory others may write in" qc ls
	err_has "the error says why no daemon was started there" \
		"not starting a daemon in the directory of $C/open/x.sock: another user owns it or may write in it"
	touch "$C/file"
	SHMQ_SOCKET=$C/file/x.sock expect 8 "a socket path under a file" qc ls
	err_has "the error gives the connect error" \
		"qctl: ls: daemon unreachable: connect to $C/file/x.sock: Not a directory"
	# The real shmqd replaces the dead one on its stale socket.
	SHMQ_DAEMON=$SHMQD expect 0 "autostart over a dead daemon's socket" \
		qc ls
	export SHMQ_NO_AUTOSTART=1
	unset SHMQ_DAEMON
}

# top_row NAME: the fields of NAME's row in $C/out, one space apart.
top_row() {
	awk -v n="$1" 'NR > 1 && $1 == n { $1 = $1; print }' "$C/out"
}

# top_frame DESC: $C/out is a frame: the header and one row per queue.
top_frame() {
	check "$1: the header names every column" \
		grep -qxE 'NAME +LENGTH/CAPACITY +IN/S +OUT/S +PROD +CONS +BPUT +BGET +STATE' \
		"$C/out"
	check "$1: one row per queue, by name" \
		[ "$(awk 'NR > 1 { print $1 }' "$C/out" | tr '\n' ' ')" = \
		  "done flow idle jobs " ]
}

t_top() {
	local t0 dt row
	expect 0 "top --once with no queue" qc top --once
	check "just the header" grep -qxE \
		'NAME +LENGTH/CAPACITY +IN/S +OUT/S +PROD +CONS +BPUT +BGET +STATE' \
		"$C/out"
	check "and nothing else" [ "$(lines_of "$C/out")" = 1 ]
	expect 0 "create jobs" qc create jobs --capacity 10
	expect 0 "put 7" qc put jobs a b c d e f g
	expect 0 "create idle" qc create idle
	"$QCTL" get idle >/dev/null 2>&1 &
	wait_stat "a get waits on idle" idle blocked_get=1 consumers=1
	expect 0 "create done --auto-close" qc create done --auto-close
	expect 0 "put into done (closes it as put detaches)" qc put done x
	expect 0 "create flow" qc create flow --capacity 4
	# A producer and a consumer that keep messages moving while top
	# samples; only "more than none a second" is checked.
	while :; do echo m; sleep 0.01; done | "$QCTL" put flow 2>/dev/null &
	"$QCTL" cat flow >/dev/null 2>&1 &
	wait_stat "flow has its producer and consumer" flow producers=1 \
		consumers=1
	t0=$(now_ms)
	expect 0 "top --once" qc top --once
	dt=$(($(now_ms) - t0))
	check "top --once took its one-second sample and ended (${dt} ms)" \
		between 1000 "$dt" $((T * 1000))
	top_frame "top --once"
	row=$(top_row jobs)
	check "jobs: 7 of 10, no one attached, open ($row)" \
		[ "$row" = "jobs [##############......] 7/10 0.0 0.0 0 0 0 0 open" ]
	row=$(top_row idle)
	check "idle: one consumer, blocked in get ($row)" \
		[ "$row" = "idle [....................] 0/1024 0.0 0.0 0 1 0 1 open" ]
	row=$(top_row done)
	check "done: auto-closed, its message still queued ($row)" \
		[ "$row" = "done [#...................] 1/1024 0.0 0.0 0 0 0 0 auto-closed" ]
	row=$(top_row flow)
	check "flow: messages in and out each second ($row)" \
		awk -v r="$row" 'BEGIN { split(r, f, " ");
			exit !(f[4] + 0 > 0 && f[5] + 0 > 0 && f[6] == 1 &&
			       f[7] == 1 && f[10] == "open") }'
	expect 0 "top without a terminal" qc top
	top_frame "top without a terminal behaves as --once"
	expect 2 "top with an argument" qc top jobs
	expect 2 "top with an unknown flag" qc top --bogus
	SHMQ_SOCKET=$C/none.sock expect 8 "top without a daemon" qc top --once
	err_has "top names the cause" \
		"qctl: top: daemon unreachable: no daemon on $C/none.sock"
	t_top_rate
	if command -v script >/dev/null 2>&1; then
		t_top_live
	else
		ok "the live view (skipped: script(1) is not installed) # SKIP"
	fi
}

# in_nanosleep PID: PID sleeps in nanosleep(2) now (its kernel wait
# channel says so); gone or elsewhere, no.
in_nanosleep() {
	grep -q nanosleep "/proc/$1/wchan" 2>/dev/null
}

# The rates, against a known count.  top --once lists the queues, sleeps
# one second, and lists them again: 100 puts and 100 gets made while it
# sleeps (its wait channel says so before and after them) are all of the
# second, so IN/S and OUT/S are 100 less what the second list's own time
# adds (90 allows 110 ms).  A burst that did not fit (a very slow
# machine) is tried again.
t_top_rate() {
	local pid try fit=0 row
	# Wait channels may be hidden (no kallsyms): sleep(1) tells.
	sleep 5 &
	pid=$!
	wait_for 2 in_nanosleep "$pid" || fit=skip
	kill "$pid"
	wait "$pid" 2>/dev/null
	if [ "$fit" = skip ]; then
		ok "top's rates against a known count # SKIP no wait channels"
		return
	fi
	expect 0 "create rate" qc create rate --capacity 200
	for try in 1 2 3; do
		"$QCTL" top --once >"$C/top" 2>&1 &
		pid=$!
		wait_for "$T" sh -c "grep -q nanosleep /proc/$pid/wchan ||
			! kill -0 $pid"
		if in_nanosleep "$pid"; then
			qc put rate $(seq 100)
			qc get rate -n 100 >/dev/null
			in_nanosleep "$pid" && fit=1
		fi
		wait "$pid"
		[ "$fit" = 1 ] && break
	done
	check "100 puts and 100 gets fell between top's two samples" \
		[ "$fit" = 1 ]
	cp "$C/top" "$C/out"
	row=$(top_row rate)
	check "rate: IN/S and OUT/S are 100 (90 to 100) ($row)" \
		awk -v r="$row" 'BEGIN { split(r, f, " ");
			exit !(f[4] >= 90 && f[4] <= 100 &&
			       f[5] >= 90 && f[5] <= 100) }'
}

# The live view on a pseudo-terminal made by script(1): keys from a FIFO,
# the screen into a file.
t_top_live() {
	local pid rc
	mkfifo "$C/keys"
	timeout -k 2 "$T" script -qec "exec $QCTL top" /dev/null \
		<"$C/keys" >"$C/tty" &
	pid=$!
	exec 7>"$C/keys"
	if wait_for "$T" grep -q "qctl top - " "$C/tty"; then
		ok "the live view draws a frame"
	else
		not_ok "the live view draws a frame" "$(od -c "$C/tty" | head)"
	fi
	check "it switched to the alternate screen" \
		grep -qF $'\033[?1049h' "$C/tty"
	check "it shows the queues" grep -q "^jobs  " "$C/tty"
	printf 'x' >&7          # not a key top knows: it goes on
	printf '\003' >&7       # Ctrl-C quits
	wait "$pid"
	rc=$?
	exec 7>&-
	check "Ctrl-C ends the live view with status 0 (got $rc)" [ "$rc" -eq 0 ]
	check "the terminal is given back (alternate screen left, cursor shown)" \
		grep -qF $'\033[?25h\033[?1049l' "$C/tty"
	rm -f "$C/keys"
	mkfifo "$C/keys"
	timeout -k 2 "$T" script -qec "stty -g; $QCTL top; stty -g" \
		/dev/null <"$C/keys" >"$C/tty" &
	pid=$!
	exec 7>"$C/keys"
	wait_for "$T" grep -q "qctl top - " "$C/tty"
	printf 'q' >&7
	wait "$pid"
	rc=$?
	exec 7>&-
	check "q ends the live view with status 0 (got $rc)" [ "$rc" -eq 0 ]
	check "the terminal is given back" grep -qF $'\033[?1049l' "$C/tty"
	grep -oE '[0-9a-f]+(:[0-9a-f]+){8,}' "$C/tty" >"$C/modes"
	check "the terminal's modes are read before and after top (stty -g)" \
		[ "$(lines_of "$C/modes")" = 2 ]
	check "the terminal's modes after top are those before" \
		[ "$(sed -n 1p "$C/modes")" = "$(sed -n 2p "$C/modes")" ]

	# A narrow terminal: the bar and the names give way, then the
	# columns close up; no column is cut.
	rm -f "$C/keys"
	mkfifo "$C/keys"
	timeout -k 2 "$T" script -qec "stty cols 60 rows 24; exec $QCTL top" \
		/dev/null <"$C/keys" >"$C/tty" &
	pid=$!
	exec 7>"$C/keys"
	wait_for "$T" grep -q "qctl top - " "$C/tty"
	printf 'q' >&7
	wait "$pid"
	exec 7>&-
	sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\r//g' "$C/tty" >"$C/screen"
	check "at 60 columns the header keeps every column" \
		grep -qE '^NAME +[A-Z/]+ +IN/S +OUT/S +PROD +CONS +BPUT +BGET +STATE$' \
		"$C/screen"
	check "at 60 columns a row keeps every field" \
		grep -qE '^jobs +7/10 +[-0-9.]+ +[-0-9.]+ +0 +0 +0 +0 +open$' \
		"$C/screen"
	check "at 60 columns no line is wider" \
		[ "$(awk '{ if (length($0) > m) m = length($0) }
			  END { print m + 0 }' "$C/screen")" -le 60 ]
}

# ------------------------------------------------------------------------

run_case "help" t_help
run_case "usage errors (2)" t_usage
run_case "create, put, get" t_basic
run_case "timeouts (5)" t_timeouts
run_case "closed queue (3, 4)" t_closed
run_case "no such queue (6)" t_noqueue
run_case "permission denied (7)" t_perm
run_case "daemon unreachable (8)" t_unreachable
run_case "message too big (9)" t_toobig
run_case "producer died (10)" t_lost
run_case "other errors (1)" t_errors --max-queues 1
run_case "quotas (1)" t_quota --user-max-queues 1
run_case "round trip" t_roundtrip
run_case "stat and ls --json" t_json
run_case "close --now" t_closenow
run_case "blocked put and get" t_blocked
run_case "pipelines" t_mpmc
run_case "auto-close" t_autoclose
run_case "cat of several queues" t_catmany
run_case "rm while open" t_rm
run_case "shmqd restart" t_restart
run_case "autostart" t_autostart --no-daemon
run_case "why the daemon is unreachable (8)" t_causes
run_case "top" t_top
run_case "deadlocks" t_deadlocks --deadlock-timeout 0.3
finish
