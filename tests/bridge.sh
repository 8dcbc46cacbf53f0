#!/bin/bash
# bridge.sh - shmq-bridge end to end: a real nats-server -js on a free
# port in a temporary directory, a real shmqd on a private socket, real
# qctl producers and consumers.
#
# Cases: usage and error statuses; existing streams and consumers that
# would lose messages or differ from the options given (interest, discard
# old, limits retention, an age or per-subject limit, memory storage,
# MaxDeliver, a batch of 1, another batch); a stream the server refuses
# to create; a message larger than the stream's bytes; a consumer's
# request batch limit; stale end markers (told by stream sequence, also
# when redelivered late) and a foreign publisher's message after ours;
# 100,000 messages local -> stream -> local, exactly once and in order,
# ending in end of stream (0) and, with a killed producer of an
# auto-close queue, producer lost (10); a plain (not acked) local queue,
# also with its out bridge killed; backpressure from a small stream to
# the local producer; the out bridge SIGKILLed repeatedly with messages
# in flight (nothing lost, nothing duplicated); the in bridge SIGKILLed
# repeatedly mid-chunk (nothing lost, duplicates counted and bounded as
# documented); SIGTERM to either; two in bridges sharing a consumer;
# nats-server restarted mid-stream with a producer running across it
# (the bridges reconnect, saying so once).
#
# One "ok N - ..." / "not ok N - ..." line per check; status 1 if any
# failed, 77 if nats-server or shmq-bridge (libnats) is missing (99 under
# SHMQ_REQUIRE_ALL=1).  Every command that may block runs under
# timeout(1); waits poll bounded loops, never a fixed sleep.  On exit
# (also on INT, TERM) every process started here is killed with its
# whole session (bg), the servers are stopped, their segments and the
# directory removed.  BRIDGE_TEST_KEEP=1 keeps the directory;
# BRIDGE_TEST_CASES="t_name ..." runs only those cases.
if [ -z "${BASH_VERSION:-}" ]; then
	command -v bash >/dev/null 2>&1 || { echo "SKIP: no bash"; exit 77; }
	exec bash "$0" "$@"
fi
set -u
export LC_ALL=C

build=$(cd "${SHMQ_BUILDDIR:-.}" && pwd) || exit 99
BRIDGE=$build/bridge/shmq-bridge
QCTL=$build/tools/qctl
SHMQD=$build/daemon/shmqd
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)

# skip REASON: 77, or a failure (99) under SHMQ_REQUIRE_ALL=1
# (tools/check.sh, which installs libnats-dev and nats-server).
skip() {
	if [ "${SHMQ_REQUIRE_ALL:-0}" = 1 ]; then
		echo "Bail out! $1, and SHMQ_REQUIRE_ALL=1"
		exit 99
	fi
	echo "SKIP: $1"
	exit 77
}
[ -x "$BRIDGE" ] ||
	skip "shmq-bridge not built (libnats missing: ./configure --with-nats)"
[ -x "$NATS" ] || skip "nats-server not installed"
for t in timeout sort uniq awk cmp seq setsid pkill; do
	command -v "$t" >/dev/null 2>&1 || { echo "SKIP: no $t"; exit 77; }
done
for b in "$QCTL" "$SHMQD"; do
	[ -x "$b" ] || { echo "Bail out! $b is not built"; exit 99; }
done
unset SHMQ_DAEMON

TOP=$(mktemp -d /tmp/bridge-test.XXXXXX) || exit 99
# A fifo held open both ways: a read on it waits out its timeout (tick).
mkfifo "$TOP/tick" && exec {TICK}<>"$TOP/tick" || exit 99
N=0
FAILED=0
CASE=""
C=""
PIDS=()                 # every background process started here
SOCK=""                 # this case's shmqd socket
NATS_PID=""
NATS_PORT=""
URL=""

ok() { N=$((N + 1)); echo "ok $N - $CASE: $1"; }
not_ok() {
	local l
	N=$((N + 1))
	FAILED=$((FAILED + 1))
	echo "not ok $N - $CASE: $1"
	shift
	for l in "$@"; do
		printf '%s\n' "$l" | sed 's/^/#   /'
	done
}
# check DESC CMD...
check() {
	local d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else not_ok "$d" "failed: $*"; fi
}
# status DESC WANT GOT
status() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "status $3, wanted $2"; fi
}

# wait_for SECONDS CMD...: polls CMD every 20 ms until it succeeds.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge "$end" ] && return 1
		sleep 0.02
	done
}

# bg CMD...: starts CMD in the background in a session of its own,
# remembered for cleanup; $! is its pid and its session's id.  From a
# shell without job control a background child is no process group
# leader, so setsid(1) calls setsid() and execs CMD in place (checked
# once at the start): whatever CMD starts (sh -c's pipelines, timeout(1),
# which moves itself and its child to a group of their own) stays in
# that session, and reap kills the whole session.
bg() {
	setsid "$@" &
	PIDS+=($!)
}

# Kills the remembered processes and everything in their sessions.
reap() {
	local p
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
		pkill -KILL -s "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	PIDS=()
}

# The daemon's segments: "shmq." + FNV-1a-64 of the socket path + ".".
seg_glob() {
	local s=$1 h=$((0xcbf29ce484222325)) i b
	for ((i = 0; i < ${#s}; i++)); do
		printf -v b '%d' "'${s:i:1}"
		h=$(((h ^ (b & 255)) * 0x100000001b3))
	done
	printf '/dev/shm/shmq.%016x.*' "$h"
}

stop_shmqd() {
	[ -n "$SOCK" ] || return
	local p
	p=$(cat "$SOCK.pid" 2>/dev/null)
	if [ -n "$p" ]; then
		kill -TERM "$p" 2>/dev/null
		wait_for 5 eval "! kill -0 $p" || kill -KILL "$p" 2>/dev/null
	fi
	# shellcheck disable=SC2046
	rm -f $(seg_glob "$SOCK")
	SOCK=""
}

nats_up() { [ -n "$(ls "$C"/nats/*.ports 2>/dev/null)" ]; }

# start_nats [PORT]: nats-server -js on PORT (default: a free one, read
# from the ports file), storage in $C/nats.
start_nats() {
	local port=${1:--1}
	mkdir -p "$C/nats"
	rm -f "$C"/nats/*.ports
	"$NATS" -js -a 127.0.0.1 -p "$port" -sd "$C/nats" \
		--ports_file_dir "$C/nats" >>"$C/nats.log" 2>&1 &
	NATS_PID=$!
	wait_for 10 nats_up || return 1
	URL=$(sed -n 's/.*"nats:\/\/\([^"]*\)".*/nats:\/\/\1/p' "$C"/nats/*.ports)
	NATS_PORT=${URL##*:}
	[ -n "$URL" ]
}

# stream_last_seq STREAM: the last sequence number the server gave a
# message of STREAM (its own state, $JS.API.STREAM.INFO): how many
# messages were ever stored, consumed ones included.  Empty if it cannot
# tell.
stream_last_seq() {
	js_api "\$JS.API.STREAM.INFO.$1" '{}' |
		sed -n 's/.*"state":{[^}]*"last_seq":\([0-9]*\).*/\1/p'
}
# stream_holds STREAM N: the stream holds N messages now.
stream_holds() {
	js_api "\$JS.API.STREAM.INFO.$1" '{}' |
		grep -q "\"state\":{\"messages\":$2,"
}

stop_nats() {
	[ -n "$NATS_PID" ] || return
	kill -TERM "$NATS_PID" 2>/dev/null
	if ! wait_for 10 eval "! kill -0 $NATS_PID"; then
		kill -KILL "$NATS_PID" 2>/dev/null
	fi
	wait "$NATS_PID" 2>/dev/null
	NATS_PID=""
}

CLEANED=0
cleanup() {
	[ "$CLEANED" = 1 ] && return
	CLEANED=1
	trap '' INT TERM
	reap
	stop_nats
	stop_shmqd
	if [ "${BRIDGE_TEST_KEEP:-0}" = 1 ]; then
		echo "# kept $TOP"
	else
		rm -rf "$TOP"
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# run_case NAME FUNCTION: a fresh shmqd and nats-server for each case.
run_case() {
	local fn=$2 log
	CASE=$1
	if [ -n "${BRIDGE_TEST_CASES:-}" ] &&
	   [[ " $BRIDGE_TEST_CASES " != *" $fn "* ]]; then
		return
	fi
	C=$TOP/$fn
	mkdir -p "$C"
	SOCK=$C/s.sock
	export SHMQ_SOCKET=$SOCK SHMQ_NO_AUTOSTART=1
	local before=$FAILED
	if ! timeout 10 "$SHMQD" --socket "$SOCK" --pid-file "$SOCK.pid" \
		--log "$C/shmqd.log"; then
		not_ok "shmqd starts" "$(cat "$C/shmqd.log" 2>/dev/null)"
		return
	fi
	if ! start_nats; then
		not_ok "nats-server starts" "$(tail -n 20 "$C/nats.log")"
		stop_shmqd
		return
	fi
	"$fn"
	reap
	stop_nats
	stop_shmqd
	if [ "$FAILED" != "$before" ]; then
		for log in "$C"/*.err "$C"/nats.log; do
			[ -s "$log" ] || continue
			echo "# --- $log (last lines)"
			tail -n 15 "$log" | sed 's/^/#   /'
		done
	fi
}

# ------------------------------------------------------------------------
# Helpers

q() { timeout -k 2 10 "$QCTL" "$@"; }
stat_field() { q stat "$1" --json | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }
# Some process blocks in a get on queue $1 (an out bridge waiting).
getting() { [ "$(stat_field "$1" blocked_get)" -ge 1 ]; }
putting() { [ "$(stat_field "$1" blocked_put)" -ge 1 ]; }
got_some() { [ "$(stat_field "$1" total_got)" -ge "$2" ]; }
put_some() { [ "$(stat_field "$1" total_put)" -ge "$2" ]; }
# No message of queue $1 is leased: a killed holder's came back.
none_leased() { [ "$(stat_field "$1" leased)" = 0 ]; }
# tick: a pause of 10 ms without starting a process (a poll's pace).
tick() { read -r -t 0.01 -u "$TICK" 2>/dev/null; }

# out LOCAL STREAM [OPTS...], into STREAM LOCAL [OPTS...]: a bridge in
# the foreground, bounded; stderr to out.err / in.err.
out() {
	local l=$1 s=$2
	shift 2
	timeout -k 2 120 "$BRIDGE" out "$l" "$URL/$s" "$@" 2>>"$C/out.err"
}
into() {
	local s=$1 l=$2
	shift 2
	timeout -k 2 120 "$BRIDGE" in "$URL/$s" "$l" "$@" 2>>"$C/in.err"
}
# out_bg / in_bg: the same in the background, $! being the bridge itself
# (so that a SIGKILL hits it); wait for it with wait_pid.
out_bg() {
	local l=$1 s=$2
	shift 2
	"$BRIDGE" out "$l" "$URL/$s" "$@" 2>>"$C/out.err" &
	PIDS+=($!)
}
in_bg() {
	local s=$1 l=$2
	shift 2
	"$BRIDGE" in "$URL/$s" "$l" "$@" 2>>"$C/in.err" &
	PIDS+=($!)
}
# wait_pid PID: its exit status, waiting at most 120 s (then 124).
wait_pid() {
	if ! wait_for 120 eval "! kill -0 $1"; then
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		return 124
	fi
	wait "$1"
}
# cat_bg QUEUE: qctl cat into $C/got, its status into $C/cat.rc.
cat_bg() {
	bg sh -c "timeout 150 '$QCTL' cat $1 >'$C/got'; echo \$? >'$C/cat.rc'"
}
cat_status() {
	wait_for 150 test -s "$C/cat.rc"
	cat "$C/cat.rc"
}

# exactly_in_order FILE N: FILE is 1..N, one per line.
exactly_in_order() { seq 1 "$2" | cmp -s - "$1"; }
# all_of FILE N: every one of 1..N is in FILE (duplicates allowed).
all_of() { [ "$(sort -nu "$1" | wc -l)" = "$2" ] && seq 1 "$2" |
	   cmp -s - <(sort -nu "$1"); }
dupes() { echo $(( $(wc -l <"$1") - $(sort -nu "$1" | wc -l) )); }

# ------------------------------------------------------------------------
# Cases

t_usage() {
	local rc
	timeout 10 "$BRIDGE" --help >/dev/null; status "--help" 0 $?
	timeout 10 "$BRIDGE" sideways x y 2>/dev/null; status "unknown direction" 2 $?
	timeout 10 "$BRIDGE" out q http://x:1/S 2>"$C/e"; rc=$?
	status "a URL that is not nats:// is bad usage" 2 $rc
	check "... said in one line" test "$(wc -l <"$C/e")" = 1
	timeout 10 "$BRIDGE" out q nats://h:99999/S 2>/dev/null; status "bad port" 2 $?
	timeout 10 "$BRIDGE" out q nats://h:1/a.b 2>/dev/null; status "bad stream name" 2 $?
	timeout 10 "$BRIDGE" out q "$URL/S" --batch 3 2>/dev/null
	status "an in option on out" 2 $?
	timeout 10 "$BRIDGE" in "$URL/S" q --max-msgs x 2>/dev/null
	status "bad number" 2 $?
	timeout 10 "$BRIDGE" out q "$URL/S" --max-bytes 0x10 2>/dev/null
	status "a size is decimal" 2 $?
	timeout 10 "$BRIDGE" in "$URL/S" q --batch 4K 2>/dev/null
	status "a count without a suffix takes none" 2 $?
	q create there >/dev/null
	timeout 10 "$BRIDGE" out nothere "$URL/S" --create 2>"$C/e"; rc=$?
	status "out: no such local queue" 6 $rc
	check "... one line naming it" grep -q "^shmq-bridge: nothere: " "$C/e"
	timeout 10 "$BRIDGE" out there "$URL/NOSTREAM" 2>"$C/e"; rc=$?
	status "out: no stream without --create" 6 $rc
	check "... one line" test "$(wc -l <"$C/e")" = 1
	timeout 10 "$BRIDGE" in "$URL/NOSTREAM" there 2>/dev/null
	status "in: no such stream" 6 $?
	timeout 10 "$BRIDGE" in "$URL/S" nothere 2>/dev/null
	status "in: no such local queue" 6 $?
	# A port where nothing listens: the server's own, once it is gone.
	local dead=$URL
	stop_nats
	timeout 10 "$BRIDGE" out there "$dead/S" 2>"$C/e"; rc=$?
	status "no NATS server: unreachable" 8 $rc
	check "... said in one line" test "$(wc -l <"$C/e")" = 1
	# Credentials never show: not in a refusal, not in a bad URL.
	local creds=${dead/nats:\/\//nats://bob:s3cret@}
	timeout 10 "$BRIDGE" out there "$creds/S" 2>"$C/e"; rc=$?
	status "no NATS server, with a password: unreachable" 8 $rc
	check "... the password is not shown" grep -q "^shmq-bridge: nats://\*\*\*@" "$C/e"
	check "... nor the user" eval "! grep -q 's3cret\|bob' '$C/e'"
	timeout 10 "$BRIDGE" in "nats://t0ken@h:99999/S" there 2>"$C/e"; rc=$?
	status "a bad URL with a token" 2 $rc
	check "... the token is not shown" eval "! grep -q t0ken '$C/e'"
	start_nats
	SHMQ_SOCKET=$C/none.sock timeout 10 "$BRIDGE" out there "$URL/S" \
		2>/dev/null
	status "no shmqd: unreachable" 8 $?
}

# 100,000 through an acked queue, out and in running together.
t_100k() {
	local n=100000 opid ipid
	q create src --acked --capacity 1000 >/dev/null && q create dst >/dev/null
	out_bg src S --create --max-msgs 20000; opid=$!
	wait_for 20 getting src || not_ok "the out bridge starts"
	in_bg S dst; ipid=$!
	cat_bg dst
	seq 1 "$n" | timeout 120 "$QCTL" put src --close
	status "the producer puts everything and closes" 0 $?
	wait_pid "$opid"; status "out exits 0 at the end of stream" 0 $?
	wait_pid "$ipid"; status "in exits 0 at the marker" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	check "every message exactly once, in order" exactly_in_order "$C/got" $n
	check "nothing said on stderr" test ! -s "$C/out.err" -a ! -s "$C/in.err"
	q stat dst --json >"$C/dst.json"
	check "the local queue is closed, no producer lost" \
		grep -q '"state":"closed".*"producer_lost":false' "$C/dst.json"
	# Again: both ends are done and say so at once.
	out src S; status "out again: end of stream at once" 0 $?
	into S dst; status "in again: the queue is closed, the stream done" 0 $?
}

# A plain auto-close queue whose producer is killed: producer lost (10)
# all the way through.
t_lost() {
	local n=3000 opid ipid ppid
	q create src --auto-close >/dev/null && q create dst >/dev/null
	mkfifo "$C/feed"
	out_bg src S --create; opid=$!
	wait_for 20 getting src || not_ok "the out bridge starts"
	in_bg S dst; ipid=$!
	cat_bg dst
	setsid "$QCTL" put src <"$C/feed" &  # bounded: we close the fifo
	ppid=$!
	PIDS+=("$ppid")
	exec 7>"$C/feed"
	seq 1 $n >&7
	wait_for 60 got_some src $n || not_ok "the bridge takes them all"
	kill -KILL "$ppid"
	exec 7>&-
	wait_pid "$opid"; status "out exits 10: producer lost" 10 $?
	wait_pid "$ipid"; status "in exits 10 at the lost marker" 10 $?
	status "qctl cat ends with producer lost" 10 "$(cat_status)"
	check "every message exactly once, in order" exactly_in_order "$C/got" $n
}

# A small stream and no in bridge: the local producer blocks.
t_backpressure() {
	local n=2000 put opid ipid
	q create src --acked --capacity 50 >/dev/null && q create dst >/dev/null
	out_bg src S --create --max-msgs 100; opid=$!
	wait_for 20 getting src || not_ok "the out bridge starts"
	seq 1 $n | q put src --timeout 2
	status "the local producer times out: the stream is full" 5 $?
	put=$(stat_field src total_put)
	check "only the stream's 100 + the queue's 50 (+ a batch) got in" \
		test "$put" -le $((100 + 50 + 256)) -a "$put" -ge 100
	in_bg S dst; ipid=$!
	cat_bg dst
	seq $((put + 1)) $n | timeout 60 "$QCTL" put src --close
	status "with an in bridge, everything flows" 0 $?
	wait_pid "$opid"; status "out exits 0" 0 $?
	wait_pid "$ipid"; status "in exits 0" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	check "every message exactly once, in order" exactly_in_order "$C/got" $n
}

# stored_once N: the stream stored N messages and the marker, each once
# (its last sequence number counts every message ever stored).
stored_once() {
	local last
	last=$(stream_last_seq S)
	if [ "$last" = $(($1 + 1)) ]; then
		ok "the stream stored each message once ($1 and the marker)"
	else
		not_ok "the stream stored each message once" \
			"last sequence ${last:-unknown}, wanted $(($1 + 1))"
	fi
}

# The out bridge SIGKILLed again and again while it publishes.  The
# producer is fed in chunks, one per kill, so that each kill falls while
# the bridge has work whatever the machine's speed: once the stream holds
# a random part of the chunk (its last sequence, asked of the server:
# quicker than a qctl stat, so the poll does not lag behind the bridge)
# the bridge is killed, then started again once shmqd has taken back
# its leases, and the rest of the chunk is put before the next one.
# What it held at its death is exact: the queue's "returned" once its
# leases came back (no other consumer takes them meanwhile).  The queue
# is closed after the last chunk, so no bridge ends before.
t_kill_out() {
	local n=120000 k=12 c kills=0 busy=0 bad=0 opid ipid ppid i a at end
	local last held seen=""
	c=$((n / k))
	q create src --acked --capacity 1000 >/dev/null && q create dst >/dev/null
	out_bg src S --create --max-msgs 200000; opid=$!
	wait_for 20 getting src || not_ok "the out bridge starts"
	in_bg S dst; ipid=$!
	cat_bg dst
	for ((i = 0; i < k; i++)); do
		a=$((i * c))
		bg sh -c "seq $((a + 1)) $((a + c)) | timeout 60 '$QCTL' put src"
		ppid=$!
		at=$((a + c / 16 + RANDOM % (c / 4)))
		end=$((SECONDS + 60))
		until [ $SECONDS -ge $end ]; do
			last=$(stream_last_seq S)
			[ "${last:-0}" -ge $at ] && break
			tick
		done
		kill -KILL "$opid"
		wait "$opid" 2>/dev/null
		kills=$((kills + 1))
		# shmqd takes back what the dead bridge leased; a bridge
		# started before that could take later messages first.
		wait_for 10 none_leased src || not_ok "leases come back ($kills)"
		held=$(stat_field src returned)
		seen+=" ${held:--}"
		[ "${held:-0}" -gt 0 ] && busy=$((busy + 1))
		out_bg src S; opid=$!
		wait_pid "$ppid" || bad=$((bad + 1))
	done
	echo "# kill-out: messages in flight (leased) at each of the $kills kills:$seen"
	check "killed $k times, at least $((k - 1)) with messages in flight ($busy)" \
		test $busy -ge $((k - 1))
	check "the producer puts every chunk" test $bad = 0
	q close src >/dev/null
	wait_pid "$opid"; status "the last out bridge reaches the end" 0 $?
	wait_pid "$ipid"; status "in exits 0" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	stored_once $n
	check "every message arrived" all_of "$C/got" $n
	check "... none twice" test "$(dupes "$C/got")" = 0
	check "... in order" exactly_in_order "$C/got" $n
}

# The same on a plain queue, where the bridge holds a view (the queue's
# consumer lock) while the server stores the message: a killed holder's
# lock is recovered with the message still first in the queue.
t_kill_out_plain() {
	local n=4000 k=8 kills=0 opid ipid ppid at
	q create src --capacity 100 >/dev/null && q create dst >/dev/null
	bg sh -c "seq 1 $n | timeout 120 '$QCTL' put src"; ppid=$!
	out_bg src S --create; opid=$!
	wait_for 20 got_some src 1 || not_ok "the out bridge starts"
	in_bg S dst; ipid=$!
	cat_bg dst
	while [ $kills -lt $k ]; do
		at=$(( (kills + 1) * n / (k + 1) + RANDOM % 50 ))
		wait_for 60 got_some src $at || break
		kill -KILL "$opid"
		wait "$opid" 2>/dev/null
		kills=$((kills + 1))
		out_bg src S; opid=$!
	done
	check "killed while running, $k times" test $kills = $k
	wait_pid "$ppid"; status "the producer puts everything" 0 $?
	q close src >/dev/null
	wait_pid "$opid"; status "the last out bridge reaches the end" 0 $?
	wait_pid "$ipid"; status "in exits 0" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	stored_once $n
	check "every message exactly once, in order" exactly_in_order "$C/got" $n
}

# The in bridge SIGKILLed again and again, into an auto-close queue: its
# deaths neither close it early nor mark a producer lost (a relay).  The
# producer is fed in chunks, one per kill, and each kill comes once the
# server has delivered the in bridge a random part of its chunk (the
# consumer's state, asked of the server: a quick poll).  The kill was
# "mid-chunk" if the local queue's count of puts (read after the kill:
# only the bridge puts there, so it is the count at the kill) falls
# inside the chunk: the bridge had work.  The source is closed after
# the last chunk.
t_kill_in() {
	local n=60000 k=12 c batch=64 kills=0 mid=0 bad=0 d opid ipid ppid i a at
	local end r got p seen=""
	c=$((n / k))
	q create src --acked --capacity 1000 >/dev/null &&
		q create dst --capacity 4096 --auto-close >/dev/null
	out_bg src S --create --max-msgs 100000; opid=$!
	wait_for 20 getting src || not_ok "the out bridge starts"
	cat_bg dst
	in_bg S dst --batch $batch --ack-wait 1; ipid=$!
	for ((i = 0; i < k; i++)); do
		a=$((i * c))
		bg sh -c "seq $((a + 1)) $((a + c)) | timeout 60 '$QCTL' put src"
		ppid=$!
		at=$((a + c / 16 + RANDOM % (c / 4)))
		end=$((SECONDS + 60))
		until [ $SECONDS -ge $end ]; do
			r=$(js_api '$JS.API.CONSUMER.INFO.S.shmq-bridge' '{}')
			got=0
			[[ $r =~ \"delivered\":\{[^}]*\"stream_seq\":([0-9]+) ]] &&
				got=${BASH_REMATCH[1]}
			[ "$got" -ge $at ] && break
			tick
		done
		kill -KILL "$ipid"
		wait "$ipid" 2>/dev/null
		kills=$((kills + 1))
		p=$(stat_field dst total_put)
		seen+=" ${p:--}"
		[ "${p:-0}" -gt $a ] && [ "${p:-0}" -lt $((a + c)) ] &&
			mid=$((mid + 1))
		in_bg S dst --batch $batch; ipid=$!
		wait_pid "$ppid" || bad=$((bad + 1))
	done
	echo "# kill-in: dst total_put at each of the $kills kills (chunks of $c):$seen"
	check "killed $k times, at least $((k / 2)) in the middle of a chunk ($mid)" \
		test $mid -ge $((k / 2))
	check "the producer puts every chunk" test $bad = 0
	q close src >/dev/null
	wait_pid "$ipid"; status "the last in bridge reaches the marker" 0 $?
	wait_pid "$opid"; status "out exits 0" 0 $?
	# The in bridge is a relay: its deaths are no lost producer.
	status "qctl cat: end of stream, no producer lost" 0 "$(cat_status)"
	stored_once $n
	check "every message arrived" all_of "$C/got" $n
	d=$(dupes "$C/got")
	echo "# $d duplicates after $kills kills of the in bridge"
	check "duplicates: at most one batch ($batch) per kill" \
		test "$d" -le $((kills * batch))
}

# SIGTERM stops either bridge cleanly (status 0): nothing lost, nothing
# twice, and a stopped in bridge is no lost producer.
t_sigterm() {
	local n=40000 opid ipid
	q create src --acked --capacity 1000 >/dev/null && q create dst >/dev/null
	bg sh -c "seq 1 $n | timeout 120 '$QCTL' put src --close"
	out_bg src S --create --max-msgs 100000; opid=$!
	wait_for 20 got_some src 1 || not_ok "the out bridge starts"
	in_bg S dst; ipid=$!
	cat_bg dst
	wait_for 60 got_some dst 1000 || not_ok "messages flow"
	kill -TERM "$opid" "$ipid"
	wait_pid "$opid"; status "out stops on SIGTERM with 0" 0 $?
	wait_pid "$ipid"; status "in stops on SIGTERM with 0" 0 $?
	out_bg src S; opid=$!
	in_bg S dst; ipid=$!
	wait_pid "$opid"; status "a new out bridge finishes" 0 $?
	wait_pid "$ipid"; status "a new in bridge finishes" 0 $?
	status "qctl cat: end of stream, no producer lost" 0 "$(cat_status)"
	# Not "in order": what the stopped in bridge was being sent comes
	# again after its ack wait (docs/bridge.md, in: order).
	stored_once $n
	check "every message arrived" all_of "$C/got" $n
	check "... none twice" test "$(dupes "$C/got")" = 0
}

# Two in bridges on one consumer share the work; both end.
t_two_in() {
	local n=20000 opid i1 i2
	q create src --acked --capacity 1000 >/dev/null && q create dst >/dev/null
	out_bg src S --create --max-msgs 100000; opid=$!
	wait_for 20 getting src || not_ok "the out bridge starts"
	in_bg S dst --batch 32; i1=$!
	in_bg S dst --batch 32; i2=$!
	cat_bg dst
	seq 1 $n | timeout 120 "$QCTL" put src --close
	wait_pid "$opid"; status "out exits 0" 0 $?
	wait_pid "$i1"; status "the first in bridge exits 0" 0 $?
	wait_pid "$i2"; status "the second in bridge exits 0" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	check "every message exactly once" all_of "$C/got" $n
	check "... no duplicate" test "$(dupes "$C/got")" = 0
}

# nats-server restarted (same storage, same port) mid-stream: half the
# messages are put before; the producer of the other half runs across
# the restart, so that the out bridge has messages in flight when the
# server stops (checked: the queue's "leased" right after the stop).
t_restart() {
	local n=40000 half=20000 win=64 port opid ipid ppid d last od held
	q create src --acked --capacity 1000 >/dev/null && q create dst >/dev/null
	out_bg src S --create --max-msgs 100000 --inflight $win; opid=$!
	wait_for 20 getting src || not_ok "the out bridge starts"
	# An ack wait long enough that a bridge stalled by the restart is
	# not taken for dead (a redelivery would be a duplicate beyond the
	# bound checked below); acks the server lost come back after it.
	in_bg S dst --ack-wait 10 --batch $win; ipid=$!
	cat_bg dst
	seq 1 $half | timeout 60 "$QCTL" put src
	status "the first half is put" 0 $?
	wait_for 60 put_some dst $((half / 2)) || not_ok "messages flow"
	bg sh -c "seq $((half + 1)) $n | timeout 120 '$QCTL' put src --close"
	ppid=$!
	wait_for 20 put_some src $((half + 1)) || not_ok "the second half starts"
	port=$NATS_PORT
	stop_nats
	held=$(stat_field src leased)
	echo "# restart: leased by the out bridge when the server stopped: ${held:-?}"
	check "the out bridge had messages in flight when the server stopped" \
		test "${held:-0}" -gt 0
	start_nats "$port" || not_ok "nats-server restarts on port $port"
	wait_pid "$ppid"
	status "the second half is put (across the restart) and the queue closed" 0 $?
	wait_pid "$opid"; status "out reconnects and exits 0" 0 $?
	wait_pid "$ipid"; status "in reconnects and exits 0" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	check "every message arrived" all_of "$C/got" $n
	# Where duplicates come from (docs/bridge.md): the server forgets,
	# when it restarts, the ids of messages already consumed, so a
	# publish unanswered when it went down and retried after may be
	# stored twice: at most the out bridge's round in flight.  The in
	# bridge's acks in flight are lost: at most its unacknowledged
	# batch comes again.
	last=$(stream_last_seq S)
	od=$(( ${last:-0} - n - 1 ))
	d=$(dupes "$C/got")
	echo "# stream: $od stored twice; local queue: $d duplicates in all"
	check "the stream stored at most a round in flight twice ($win)" \
		test -n "$last" -a "$od" -ge 0 -a "$od" -le $win
	check "duplicates: at most that and the in bridge's batch ($win)" \
		test "$d" -le $((od + win))
	check "out said the loss once and the reconnect once" \
		test "$(grep -c 'lost the connection' "$C/out.err")" = 1 -a \
		"$(grep -c 'reconnected' "$C/out.err")" = 1
	check "in said the loss once and the reconnect once" \
		test "$(grep -c 'lost the connection' "$C/in.err")" = 1 -a \
		"$(grep -c 'reconnected' "$C/in.err")" = 1
}

# js_io PROTO: a NATS connection (plain text over TCP, headers on) that
# subscribes to the inbox _R, sends PROTO and prints the first message
# on _R: a MSG's payload; an HMSG's reply subject ("reply: ..." if it
# has one), its header lines, then its payload (if any).  For what the
# bridge never does itself: JetStream API requests, a foreign publisher,
# a raw puller that does not ack.
js_io() {
	local line f
	exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT" || return 1
	read -r -t 5 line <&3                   # INFO
	printf 'CONNECT {"verbose":false,"headers":true}\r\nSUB _R 1\r\n%s' \
		"$1" >&3
	while read -r -t 5 line <&3; do
		line=${line%$'\r'}
		case $line in
		MSG\ *)
			read -r -t 5 line <&3
			printf '%s\n' "${line%$'\r'}"
			break ;;
		HMSG\ *)
			read -r -a f <<<"$line"
			[ ${#f[@]} = 6 ] && echo "reply: ${f[3]}"
			while read -r -t 5 line <&3; do
				line=${line%$'\r'}
				[ -z "$line" ] && break
				printf '%s\n' "$line"
			done
			if [ "${f[-1]}" != "${f[-2]}" ]; then
				read -r -t 5 line <&3
				printf '%s\n' "${line%$'\r'}"
			fi
			break ;;
		PING*) printf 'PONG\r\n' >&3 ;;
		-ERR*) printf '%s\n' "$line" >&2; break ;;
		esac
	done
	exec 3<&-
}
# js_api SUBJECT JSON: one JetStream API request; the JSON answer.
js_api() {
	local p
	printf -v p 'PUB %s _R %d\r\n%s\r\n' "$1" "${#2}" "$2"
	js_io "$p"
}
# js_pub SUBJECT MSG_ID PAYLOAD [HEADER...]: a publish with headers
# (HPUB), as another publisher would; the server's answer (PubAck JSON).
js_pub() {
	local h p subj=$1 id=$2 data=$3
	shift 3
	printf -v h 'NATS/1.0\r\nNats-Msg-Id: %s\r\n' "$id"
	for p in "$@"; do
		h+="$p"$'\r\n'
	done
	h+=$'\r\n'
	printf -v p 'HPUB %s _R %d %d\r\n%s%s\r\n' "$subj" "${#h}" \
		$((${#h} + ${#data})) "$h" "$data"
	js_io "$p"
}
# js_next STREAM DURABLE: takes the consumer's next message and does not
# ack it (so the server delivers it again after the ack wait); prints it
# as js_io does.
js_next() {
	js_api "\$JS.API.CONSUMER.MSG.NEXT.$1.$2" '{"batch":1,"expires":5000000000}'
}

# An existing stream or consumer that would lose messages, or that differs
# from the limits given, is refused in one line (status 1).
t_existing() {
	local rc
	q create src >/dev/null && q close src >/dev/null && q create dst >/dev/null
	js_api '$JS.API.STREAM.CREATE.I' \
		'{"name":"I","subjects":["I"],"retention":"interest","storage":"file"}' |
		grep -q did_create || not_ok "an interest stream is made"
	timeout 10 "$BRIDGE" out src "$URL/I" 2>"$C/e"; rc=$?
	status "out: interest retention refused" 1 $rc
	check "... in one line saying why" eval "[ \$(wc -l <'$C/e') = 1 ] &&
		grep -q 'retention is .interest' '$C/e'"
	js_api '$JS.API.STREAM.CREATE.O' \
		'{"name":"O","subjects":["O"],"retention":"workqueue","discard":"old","max_msgs":10,"storage":"file"}' |
		grep -q did_create || not_ok "a discard-old stream is made"
	timeout 10 "$BRIDGE" out src "$URL/O" 2>"$C/e"; rc=$?
	status "out: discard old refused" 1 $rc
	check "... saying why" grep -q 'discards old messages' "$C/e"
	out src W --create --max-msgs 100 --dupe-window 60
	status "out --create on an ended queue: the marker, status 0" 0 $?
	out src W --max-msgs 200; rc=$?
	status "out: another --max-msgs than the stream's refused" 1 $rc
	check "... naming both" grep -q 'at most 100 messages, not --max-msgs 200' \
		"$C/out.err"
	out src W --dupe-window 120
	status "out: another --dupe-window refused" 1 $?
	out src W --max-msgs 100 --dupe-window 60
	status "out: the same limits again are fine" 0 $?
	js_api '$JS.API.CONSUMER.DURABLE.CREATE.W.D' \
		'{"stream_name":"W","config":{"durable_name":"D","ack_policy":"explicit","max_deliver":5}}' |
		grep -q consumer_create_response || not_ok "a consumer is made"
	timeout 10 "$BRIDGE" in "$URL/W" dst --durable D 2>"$C/e"; rc=$?
	status "in: a consumer with a delivery limit refused" 1 $rc
	check "... saying why" grep -q 'after 5 deliveries' "$C/e"
	timeout 10 "$BRIDGE" in "$URL/W" dst --durable E 2>"$C/e"; rc=$?
	status "in: a second consumer on a work queue, refused by the server" 1 $rc
	check "... saying so in one line" eval "[ \$(wc -l <'$C/e') = 1 ] &&
		grep -q \"creating consumer 'E'\" '$C/e'"
	js_api '$JS.API.CONSUMER.DELETE.W.D' '{}' | grep -q '"success":true' ||
		not_ok "the consumer is deleted"
	into W dst --durable E --batch 16
	status "in: a new consumer, the marker, status 0" 0 $?
	timeout 10 "$BRIDGE" in "$URL/W" dst --durable E --batch 32 2>"$C/e"
	status "in: another --batch than the consumer's refused" 1 $?
	check "... naming both" grep -q '16 messages be unacknowledged, not --batch 32' \
		"$C/e"
}

# A marker left by an earlier queue of the same name (nobody took it) is
# followed by the messages of the new queue: it is ignored, said once.
t_stale() {
	local n=100
	q create src >/dev/null && q close src >/dev/null && q create dst >/dev/null
	out src S --create; status "the first queue ends: its marker" 0 $?
	q delete src >/dev/null && q create src >/dev/null
	seq 1 $n | q put src --close
	out src S; status "the second queue: its messages and its marker" 0 $?
	cat_bg dst
	into S dst; status "in: exits 0 at the second marker" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	check "every message of the second queue, in order" \
		exactly_in_order "$C/got" $n
	check "the stale marker said once" \
		test "$(grep -c 'ignored a stale end marker (queue src@' "$C/in.err")" = 1
}

# B1. A stale marker is told by its place in the stream, whenever it
# comes.  The stream holds [A's end, B's 1..5, B's end]; a raw puller takes
# A's end and does not ack it, so the in bridge gets B's messages and
# B's end first, and A's end only when the server delivers it again
# (ack wait 3 s).  A's end says "producer lost", B's "drained": the in
# bridge must end with B's (0), and A's, earlier in the stream, be acked
# and dropped.
t_stale_late() {
	local n=5 ppid
	q create src --auto-close >/dev/null && q create dst >/dev/null
	mkfifo "$C/feed"
	setsid "$QCTL" put src <"$C/feed" &  # bounded: killed below
	ppid=$!
	PIDS+=("$ppid")
	exec 7>"$C/feed"
	wait_for 10 eval '[ "$(stat_field src producers)" = 1 ]' ||
		not_ok "a producer attaches"
	kill -KILL "$ppid"
	wait "$ppid" 2>/dev/null
	exec 7>&-
	out src S --create
	status "queue A (its producer killed) ends: its marker, producer lost" 10 $?
	q delete src >/dev/null && q create src >/dev/null
	seq 1 $n | q put src --close
	out src S; status "queue B: its messages and its marker" 0 $?
	js_api '$JS.API.CONSUMER.DURABLE.CREATE.S.D' \
		'{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","ack_wait":3000000000}}' |
		grep -q consumer_create_response || not_ok "a consumer is made"
	js_next S D >"$C/pulled"
	check "a raw puller takes A's end and does not ack it" \
		eval "grep -q '^reply: ' '$C/pulled' &&
		grep -q '^Shmq-End: producer-lost' '$C/pulled'"
	cat_bg dst
	timeout -k 2 60 "$BRIDGE" in "$URL/S" dst --durable D 2>>"$C/in.err"
	status "in: ends with B's end (drained), A's redelivered after it" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	check "B's messages, exactly, in order" exactly_in_order "$C/got" $n
	check "both markers acked: the stream holds nothing" \
		wait_for 10 stream_holds S 0
}

# B2. A foreign publisher's message, with an id of its own (not a shmq
# id), stored after our end marker: not a later queue.  The in bridge
# puts it (it is in the stream) and still ends at our marker.
t_foreign() {
	local n=5
	q create src >/dev/null && q create dst >/dev/null
	seq 1 $n | q put src --close
	out src S --create; status "the queue's messages and its marker" 0 $?
	check "a foreign message is stored after the marker" \
		eval "js_pub S order:42 foreign-42 | grep -q '\"seq\":$((n + 2))[,}]'"
	cat_bg dst
	timeout -k 2 60 "$BRIDGE" in "$URL/S" dst 2>>"$C/in.err"
	status "in: ends at our marker" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	check "our messages, then the foreign one" \
		eval "{ seq 1 $n; echo foreign-42; } | cmp -s - '$C/got'"
	check "nothing said about markers" eval "! grep -qi marker '$C/in.err'"
}

# B3-B5. Refusals, each one line: a batch of 1 (bad usage); a consumer
# that lets one message be unacknowledged; an existing stream that would
# drop or lose messages (limits retention, an age limit, a per-subject
# limit that discards old ones, memory storage); a stream the server
# refuses to create.
t_refused() {
	local rc name cfg why
	q create src >/dev/null && q close src >/dev/null && q create dst >/dev/null
	timeout 10 "$BRIDGE" in "$URL/S" dst --batch 1 2>"$C/e"
	status "in --batch 1 is bad usage" 2 $?
	out src S --create; status "a stream, its marker" 0 $?
	js_api '$JS.API.CONSUMER.DURABLE.CREATE.S.ONE' \
		'{"stream_name":"S","config":{"durable_name":"ONE","ack_policy":"explicit","max_ack_pending":1}}' |
		grep -q consumer_create_response || not_ok "a consumer is made"
	timeout 10 "$BRIDGE" in "$URL/S" dst --durable ONE 2>"$C/e"; rc=$?
	status "in: a consumer with max_ack_pending 1 refused" 1 $rc
	check "... in one line" test "$(wc -l <"$C/e")" = 1
	for why in "limits retention:L:\"retention\":\"limits\",\"storage\":\"file\"" \
		   "an age limit:A:\"retention\":\"workqueue\",\"max_age\":60000000000,\"storage\":\"file\"" \
		   "a per-subject limit, old ones discarded:P:\"retention\":\"workqueue\",\"max_msgs_per_subject\":10,\"storage\":\"file\"" \
		   "memory storage:M:\"retention\":\"workqueue\",\"storage\":\"memory\""; do
		name=${why#*:}
		cfg=${name#*:}
		name=${name%%:*}
		js_api "\$JS.API.STREAM.CREATE.$name" \
			"{\"name\":\"$name\",\"subjects\":[\"$name\"],\"discard\":\"new\",\"max_msgs\":1000,$cfg}" |
			grep -q did_create || not_ok "stream $name is made"
		timeout 10 "$BRIDGE" out src "$URL/$name" 2>"$C/e"; rc=$?
		status "out: an existing stream with ${why%%:*} refused" 1 $rc
		check "... in one line: the stream exists, but ..." \
			eval "[ \$(wc -l <'$C/e') = 1 ] &&
			grep -q 'the stream exists, but' '$C/e'"
	done
	timeout 10 "$BRIDGE" out src "$URL/BIG" --create --max-bytes 100000G \
		2>"$C/e"; rc=$?
	status "out --create, more bytes than the server has: refused" 1 $rc
	check "... in one line naming the server's refusal" \
		eval "[ \$(wc -l <'$C/e') = 1 ] && grep -q 'creating stream' '$C/e' &&
		! grep -q 'no such stream' '$C/e'"
}

# B6. A message larger than the stream's byte limit can never be stored:
# status 9 at once, one line, the message still in the local queue.
t_too_big() {
	local rc
	q create src --acked --max-msg 4096 >/dev/null
	head -c 3000 /dev/zero | tr '\0' x | q put src
	timeout -k 2 30 "$BRIDGE" out src "$URL/S" --create --max-bytes 2K \
		2>"$C/e"; rc=$?
	status "out: a 3000-byte message, a 2K stream: too big" 9 $rc
	check "... in one line" test "$(wc -l <"$C/e")" = 1
	check "... the message is still in the local queue" \
		wait_for 10 eval '[ "$(stat_field src messages)" = 1 ] && none_leased src'
}

# B7. A consumer whose pull requests may ask for at most 4 messages
# (max_batch): the in bridge's fetches keep to it, and it completes.
t_max_batch() {
	local n=1000
	q create src --acked >/dev/null && q create dst >/dev/null
	seq 1 $n | q put src --close
	out src S --create; status "the messages and the marker" 0 $?
	js_api '$JS.API.CONSUMER.DURABLE.CREATE.S.D' \
		'{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","max_batch":4}}' |
		grep -q consumer_create_response || not_ok "a consumer is made"
	cat_bg dst
	timeout -k 2 60 "$BRIDGE" in "$URL/S" dst --durable D 2>>"$C/in.err"
	status "in, the default --batch: exits 0 at the marker" 0 $?
	status "qctl cat sees the end of stream" 0 "$(cat_status)"
	check "every message exactly once, in order" exactly_in_order "$C/got" $n
}

# setsid(1) must exec in place (see bg): the session is the pid.
setsid_in_place() {
	local p f rc=1
	setsid sleep 30 &
	p=$!
	wait_for 5 eval "read -r -a f </proc/$p/stat && [ \"\${f[5]}\" = $p ]" &&
		rc=0
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return $rc
}
setsid_in_place || { echo "Bail out! setsid does not exec in place here"; exit 99; }

run_case usage t_usage
run_case existing t_existing
run_case stale t_stale
run_case stale-late t_stale_late
run_case foreign t_foreign
run_case refused t_refused
run_case too-big t_too_big
run_case max-batch t_max_batch
run_case 100k t_100k
run_case lost t_lost
run_case backpressure t_backpressure
run_case kill-out t_kill_out
run_case kill-out-plain t_kill_out_plain
run_case kill-in t_kill_in
run_case sigterm t_sigterm
run_case two-in t_two_in
run_case restart t_restart

echo "1..$N"
echo "$((N - FAILED)) passed, $FAILED failed"
[ "$FAILED" = 0 ]
