#!/bin/bash
# qctl-acked.sh - qctl on acked queues, end to end, against the real shmqd:
# create --acked and its options, work (the worker pool), get and cat
# acking what they printed, join, pending, and stat and ls of leases.
#
# Same rules as tests/qctl.sh (whose helpers, tests/lib/qctl.sh, it
# shares): every case starts its own shmqd, every command is bounded, no
# verdict depends on a sleep (a command that must still be running when a
# test looks waits for a file the test creates; only the passing of a
# lease timeout is waited for by time), and everything is cleaned up.
#
# The commands `qctl work` runs here are $C/job (write_job), told what to
# do by their message: ok, flaky (fails its first delivery), poison
# (always fails), wait3 (waits until three commands run at once), park
# (waits until the test writes $C/go.SEQ, then exits 0 if it says ok).
# Each records "QUEUE SEQ DELIVERY MESSAGE" in $C/runs.
if [ -z "${BASH_VERSION:-}" ]; then
	command -v bash >/dev/null 2>&1 || { echo "SKIP: bash not installed"; exit 77; }
	exec bash "$0" "$@"
fi
. "$(dirname "$0")/lib/qctl.sh"

write_job() {
	cat >"$C/job" <<'EOF'
#!/bin/sh
msg=$(cat)
echo "$SHMQ_QUEUE $SHMQ_SEQ $SHMQ_DELIVERY $msg" >>"$JOBDIR/runs"
case $msg in
ok*) exit 0 ;;
flaky*) [ "$SHMQ_DELIVERY" -ge 2 ] ;;
poison*) exit 1 ;;
wait3*)
	: >"$JOBDIR/running.$SHMQ_SEQ"
	i=0
	while [ "$(ls "$JOBDIR" | grep -c '^running\.')" -lt 3 ]; do
		i=$((i + 1)); [ $i -gt 1000 ] && exit 1
		sleep 0.01
	done ;;
park*)
	case $msg in *trap*) trap 'exit 0' TERM INT ;; esac
	: >"$JOBDIR/parked.$SHMQ_SEQ.$SHMQ_DELIVERY"
	i=0
	until [ -s "$JOBDIR/go.$SHMQ_SEQ" ]; do
		i=$((i + 1)); [ $i -gt 2000 ] && exit 1
		sleep 0.01
	done
	[ "$(cat "$JOBDIR/go.$SHMQ_SEQ")" = ok ] ;;
*) exit 2 ;;
esac
EOF
	chmod +x "$C/job"
	: >"$C/runs"
	export JOBDIR=$C
}

# parked SEQ [DELIVERY]: the command of message SEQ is running (parked).
parked() {
	[ -e "$C/parked.$1.${2:-1}" ]
}

# go SEQ [ok|fail]: lets the parked command of SEQ finish.
go() {
	echo "${2:-ok}" >"$C/go.$1"
}

# no_signal_pending PID: PID has taken every signal sent to it.
no_signal_pending() {
	grep -qE '^ShdPnd:[[:space:]]+0+$' "/proc/$1/status"
}

# runs_of SEQ: how many times a command ran for message SEQ.
runs_of() {
	awk -v s="$1" '$2 == s' "$C/runs" | wc -l | tr -d ' '
}

# ------------------------------------------------------------------------
# The cases

t_help() {
	local cmd usage
	expect 0 "qctl --help" qc --help
	for cmd in work join pending; do
		check "qctl --help lists $cmd" grep -qE "^  $cmd +[a-z]" "$C/out"
	done
	while IFS='|' read -r cmd usage; do
		expect 0 "qctl $cmd --help" qc "$cmd" --help
		check "qctl $cmd --help starts with its usage line" \
			[ "$(head -n 1 "$C/out")" = "usage: qctl $cmd $usage" ]
	done <<'EOF'
work|NAME [-0] [-j N] [--timeout SECONDS] [--] COMMAND [ARG...]
join|NAME [--timeout SECONDS] [--nonblock]
pending|NAME [--json]
EOF
	expect 0 "qctl create --help" qc create --help
	check "create --help shows the acked options" \
		grep -qF "[--acked] [--lease-timeout SECONDS] [--max-deliveries N]" \
		"$C/out"
	check "create --help shows --dead-letter" \
		grep -qF -- "--dead-letter QUEUE" "$C/out"
}

t_usage() {
	write_job
	expect 0 "create q --acked" qc create q --acked
	expect 2 "work without COMMAND" qc work q
	err_has "it says what is missing" "missing COMMAND"
	expect 2 "work -j 0" qc work q -j 0 -- true
	expect 2 "work -j 2000" qc work q -j 2000 -- true
	expect 2 "work -j x" qc work q -j x -- true
	expect 2 "work --timeout -1" qc work q --timeout -1 -- true
	expect 0 "put one message" qc put q ok
	expect 2 "work with a command that does not exist" \
		qc work q -- /nonexistent/command
	err_has "it names the command" "cannot run '/nonexistent/command'"
	expect 2 "work with a command not on PATH" \
		qc work q -- no-such-command-here
	check_stat "nothing was leased for those" q messages=1 leased=0 \
		total_got=0
	expect 2 "--lease-timeout without --acked" qc create r --lease-timeout 5
	err_has "it says so" "--lease-timeout needs --acked"
	expect 2 "--max-deliveries without --acked" qc create r --max-deliveries 3
	expect 2 "--dead-letter without --acked" qc create r --dead-letter q
	expect 2 "--lease-timeout -1" qc create r --acked --lease-timeout -1
	expect 2 "--lease-timeout x" qc create r --acked --lease-timeout x
	expect 2 "--max-deliveries -2" qc create r --acked --max-deliveries -2
	expect 2 "--dead-letter with a bad name" qc create r --acked \
		--dead-letter .bad
	expect 6 "stat r: none of those created it" qc stat r
	# Options end at COMMAND: sh's -c is its own.
	expect 0 "close q" qc close q
	expect 0 "work q sh -c ... without --" qc work q sh -c 'cat >"$0"' \
		"$C/got"
	check "the command ran with its own options" \
		[ "$(cat "$C/got")" = ok ]
}

t_create() {
	local uid
	uid=$(id -u)
	expect 0 "create a dead-letter queue" qc create dead --max-msg 8K
	expect 0 "create --acked with every option" qc create q --acked \
		--lease-timeout 2.5 --max-deliveries 4 --dead-letter dead \
		--capacity 16 --max-msg 8K
	check_stat "stat --json shows them" q acked=true \
		lease_timeout_ms=2500 max_deliveries=4 dead_letter=dead \
		leased=0 returned=0 total_acked=0 dead_lettered=0 dropped=0 \
		capacity=16 uid="$uid"
	expect 0 "stat (text)" qc stat q
	for l in "acked:           yes" "leased:          0" \
		"returned:        0" "total_acked:     0" \
		"lease_timeout_ms: 2500" "max_deliveries:  4" \
		"dead_letter:     dead"; do
		check "stat text: $l" grep -qxF "$l" "$C/out"
	done
	expect 0 "create --acked without options" qc create plainacked --acked
	check_stat "no timeout, no limit, no dead-letter queue" plainacked \
		acked=true lease_timeout_ms=0 max_deliveries=0 dead_letter=null
	expect 0 "ls" qc ls
	check "ls: LEASED is 0 for acked queues" \
		grep -qE '^q +0/16 +open +0 +0 +0$' "$C/out"
	check "ls: LEASED is - for a plain queue" \
		grep -qE '^dead +0/1024 +open +0 +0 +-$' "$C/out"

	# The dead-letter queue is checked at create.
	expect 6 "a dead-letter queue that does not exist" qc create r \
		--acked --dead-letter nosuch
	err_has "the detail names it" "dead-letter queue 'nosuch' does not exist"
	expect 2 "a dead-letter queue with smaller messages" qc create r \
		--acked --dead-letter dead --max-msg 9K
	err_has "the detail says why" "dead-letter queue 'dead' takes messages"
	expect 6 "none of those created r" qc stat r
	if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
		chmod 0711 "$TOP"
		chmod 0755 "$C"
		chmod 0666 "$C/s.sock"
		expect 0 "create a dead-letter queue others may read" \
			qc create rdonly --mode 0644
		expect 7 "another user: a dead-letter queue it may not write" \
			qn create r --acked --dead-letter rdonly
		err_has "the detail names the queue" "dead-letter queue 'rdonly'"
		expect 0 "create one it may write" qc create rw --mode 0666
		expect 0 "another user: with that one" \
			qn create r --acked --dead-letter rw
	else
		ok "# SKIP the permission check needs root and setpriv"
	fi
}

t_getcat() {
	expect 0 "create --acked" qc create q --acked --capacity 8
	expect 0 "put 5" qc put q m0 m1 m2 m3 m4
	expect 0 "get" qc get q
	out_is "the first message" m0
	check_stat "get acked it" q leased=0 total_acked=1 messages=4
	IN=/dev/null expect 1 "get -n 2 writing to /dev/full" \
		bash -c "\"$QCTL\" get q -n 2 >/dev/full"
	err_has "a write error" "write error"
	check_stat "the two were given back, not acked" q leased=0 \
		returned=2 total_acked=1 messages=4
	expect 0 "pending" qc pending q --json
	check "they wait, delivered once" \
		[ "$(grep -c '"state":"waiting","pid":null,"deliveries":1' \
		     "$C/out")" = 2 ]
	expect 1 "cat writing to /dev/full" \
		bash -c "\"$QCTL\" cat q >/dev/full"
	check_stat "cat gave back what it could not write" q leased=0 \
		returned=4 total_acked=1 messages=4
	expect 0 "close" qc close q
	expect 0 "cat" qc cat q
	out_is "cat prints them in order" m1 m2 m3 m4
	check_stat "all acked" q leased=0 returned=0 messages=0 \
		total_acked=5
	expect 0 "pending of a settled queue" qc pending q
	out_is "only the header" \
		"SEQ           STATE             PID  DELIVERIES        AGE       LEFT       BYTES"
	expect 0 "pending --json" qc pending q --json
	out_is "an empty array" "[]"
}

# The worker pool: 3 commands at once, some fail once, one always fails.
pool_run() {       # pool_run DEAD_LETTER_OPTION...
	local i rc
	write_job
	expect 0 "create the work queue" qc create w --acked --capacity 64 \
		--max-deliveries 3 "$@"
	{
		echo wait3-a; echo wait3-b; echo wait3-c
		for i in $(seq 1 12); do echo "ok-$i"; done
		for i in $(seq 1 5); do echo "flaky-$i"; done
		echo poison
	} >"$C/in"
	IN=$C/in expect 0 "put 21 messages, close" qc put w --close
	IN=/dev/null expect 0 "work -j 3 until end of stream" \
		ql work w -j 3 -- "$C/job"
	check "three commands ran at once (wait3 finished)" \
		[ "$(grep -c ' wait3-' "$C/runs")" = 3 ]
	check "each ok message ran once" [ "$(grep -c ' ok-' "$C/runs") $(
		grep -o ' ok-[0-9]*' "$C/runs" | sort -u | wc -l)" = "12 12" ]
	check "each flaky message ran twice: delivery 1, then 2" \
		[ "$(grep -c ' 1 flaky-' "$C/runs") $(
		     grep -c ' 2 flaky-' "$C/runs") $(
		     grep -c ' flaky-' "$C/runs")" = "5 5 10" ]
	check "the poison ran three times, deliveries 1 2 3" \
		[ "$(awk '$4 == "poison" { printf "%s ", $3 }' "$C/runs")" = "1 2 3 " ]
	check "every command saw SHMQ_QUEUE=w" \
		[ "$(awk '$1 != "w"' "$C/runs" | wc -l)" = 0 ]
	check "SHMQ_SEQ: each message its position" \
		[ "$(awk '$4 == "poison" { print $2 }' "$C/runs" | sort -u)" = 20 ]
}

t_pool_dead_letter() {
	expect 0 "create the dead-letter queue" qc create dl
	pool_run --dead-letter dl
	check_stat "stat: 20 acked, 1 dead-lettered, nothing left" w \
		total_acked=20 dead_lettered=1 dropped=0 leased=0 returned=0 \
		messages=0 state=closed
	expect 0 "close dl" qc close dl
	expect 0 "cat dl" qc cat dl
	out_is "the poison is in the dead-letter queue, once" poison
}

t_pool_dropped() {
	pool_run
	check_stat "stat: 20 acked, 1 dropped, nothing left" w \
		total_acked=20 dead_lettered=0 dropped=1 leased=0 returned=0 \
		messages=0 state=closed
}

t_work() {
	write_job
	# -0, the environment, empty and binary messages.
	expect 0 "create" qc create q --acked
	printf 'a b\0\0x\ny\0' >"$C/in"
	IN=$C/in expect 0 "put -0 three messages" qc put q -0 --close
	expect 0 "work -0" qc work q -0 -- sh -c \
		'cat >"$JOBDIR/in.$SHMQ_SEQ"; echo "$SHMQ_QUEUE $SHMQ_SEQ $SHMQ_DELIVERY" >>"$JOBDIR/env"'
	printf 'a b\0' >"$C/want"
	same_file "message 0 on stdin, NUL-terminated" "$C/want" "$C/in.0"
	printf '\0' >"$C/want"
	same_file "an empty message is a lone NUL" "$C/want" "$C/in.1"
	printf 'x\ny\0' >"$C/want"
	same_file "a newline inside stays" "$C/want" "$C/in.2"
	check "the environment of each" [ "$(sort "$C/env" | tr '\n' ,)" = \
		"q 0 1,q 1 1,q 2 1," ]
	check_stat "all acked" q total_acked=3 leased=0 messages=0

	# A plain queue: a get is the ack; a failure loses the message.
	expect 0 "create a plain queue" qc create p
	expect 0 "put" qc put p ok-1 poison ok-2
	expect 0 "close" qc close p
	: >"$C/runs"
	expect 0 "work on a plain queue" qc work p -j 2 -- "$C/job"
	check "each message ran once, the poison too" \
		[ "$(lines_of "$C/runs")" = 3 ]
	check_stat "all taken" p messages=0 total_got=3

	# --timeout: no message for that long.
	expect 0 "create an empty queue" qc create e --acked
	local t0
	t0=$(now_ms)
	expect 5 "work --timeout 0.3 on an empty queue" \
		qc work e --timeout 0.3 -- "$C/job"
	err_has "it says so" "timed out"
	check "it waited about 0.3 s" between 250 "$(($(now_ms) - t0))" 5000
	expect 5 "--timeout 0: no message now" qc work e --timeout 0 -- true

	# A producer lost: status 10, as cat.
	expect 0 "create --auto-close" qc create l --acked --auto-close \
		--capacity 20
	"$QCTL" put l < <(yes ok) 2>/dev/null &
	local ppid=$!
	wait_stat "the producer fills the queue" l blocked_put=1
	kill_tree "$ppid"
	wait "$ppid" 2>/dev/null
	wait_stat "the queue closes, producer lost" l state=closed \
		producer_lost=true
	expect 10 "work drains it, then exits 10" ql work l -j 2 -- true
	check_stat "every message was acked" l messages=0 leased=0
}

# A command slower than the lease timeout keeps its message.
t_extend() {
	write_job
	# 1 s: work extends at half of it, so a scheduling delay under 0.5 s
	# (a loaded CI machine, the sanitizers) costs nothing.
	expect 0 "create, lease timeout 1 s" qc create q --acked \
		--lease-timeout 1
	expect 0 "put one" qc put q park
	qc work q -- "$C/job" >"$C/w.out" 2>"$C/w.err" &
	local wpid=$! rc
	wait_for "$T" parked 0 || not_ok "the command starts"
	# Only time passing is waited for here: the lease would have timed
	# out three times over without the extensions.
	sleep 3.2
	expect 0 "pending" qc pending q --json
	check "still held, delivered once" \
		grep -q '"state":"held","pid":[0-9]*,"deliveries":1' "$C/out"
	check "its lease has time left" \
		grep -qE '"left_ms":[1-9][0-9]*,' "$C/out"
	go 0
	expect 0 "close" qc close q
	wait "$wpid"
	rc=$?
	check "work exits 0 (got $rc)" [ "$rc" = 0 ]
	check "it ran once" [ "$(runs_of 0)" = 1 ]
	check_stat "acked" q total_acked=1 leased=0 messages=0
	check "work said nothing" empty "$C/w.err"
}

# SIGTERM and SIGINT: the messages held are given back (or acked, if
# their command still succeeded), and work dies of the signal.
t_signals() {
	local wpid rc sig
	write_job
	for sig in TERM INT; do
		rm -f "$C"/parked.* "$C"/go.*
		expect 0 "create q$sig" qc create "q$sig" --acked
		expect 0 "put park, park-trap" qc put "q$sig" park park-trap
		"$QCTL" work "q$sig" -j 2 -- "$C/job" 2>"$C/w.err" &
		wpid=$!
		wait_for "$T" parked 0 && wait_for "$T" parked 1 ||
			not_ok "both commands start"
		check_stat "both leased" "q$sig" leased=2
		kill -"$sig" "$wpid"
		wait "$wpid"
		rc=$?
		check "work dies of SIG$sig (status $rc)" \
			[ "$rc" = $((128 + $(kill -l "$sig"))) ]
		check_stat "one given back, the trapping one acked" "q$sig" \
			leased=0 returned=1 total_acked=1 consumers=0
		expect 0 "pending" qc pending "q$sig" --json
		check "message 0 waits for redelivery" \
			grep -q '"seq":0,"state":"waiting"' "$C/out"
	done
	# A command that ignores the signal: the second one kills it.
	expect 0 "create k" qc create k --acked
	expect 0 "put" qc put k park
	rm -f "$C"/parked.* "$C"/go.*
	"$QCTL" work k -- sh -c 'trap "" TERM; exec "$0"' "$C/job" &
	wpid=$!
	wait_for "$T" parked 0 || not_ok "the command starts"
	kill -TERM "$wpid"
	wait_for "$T" no_signal_pending "$wpid" ||
		not_ok "work takes the first SIGTERM"
	check_stat "the first TERM leaves it running" k leased=1
	kill -TERM "$wpid"
	wait "$wpid"
	rc=$?
	check "work dies of SIGTERM (status $rc)" [ "$rc" = 143 ]
	check_stat "the killed command's message is given back" k leased=0 \
		returned=1
}

t_join() {
	local jpid rc
	write_job
	expect 0 "create a plain queue" qc create p
	expect 0 "join an empty queue" qc join p
	expect 0 "put 3" qc put p a b c
	expect 5 "join --timeout 0.2 with 3 queued" qc join p --timeout 0.2
	err_has "it says so" "timed out"
	expect 5 "join --nonblock" qc join p --nonblock
	expect 0 "get 3" qc get p -n 3
	expect 0 "join once they are taken" qc join p

	expect 0 "create --acked" qc create q --acked
	expect 0 "put park" qc put q park
	qc work q -- "$C/job" 2>/dev/null &
	wait_for "$T" parked 0 || not_ok "the command starts"
	expect 5 "join while it is leased" qc join q --nonblock
	qc join q >"$C/j.out" 2>&1 &
	jpid=$!
	expect 0 "put more after join began" qc put q ok
	go 0
	wait "$jpid"
	rc=$?
	check "join returns 0 once the lease is acked (got $rc)" [ "$rc" = 0 ]
	check "join said nothing" empty "$C/j.out"
	expect 0 "close" qc close q
	wait
	expect 0 "join a settled queue" qc join q
	expect 6 "join a queue that does not exist" qc join nosuch
}

t_pending() {
	local wpid
	write_job
	expect 0 "create with a lease timeout" qc create q --acked \
		--lease-timeout 60
	expect 0 "put park, ok" qc put q park ok
	"$QCTL" work q -- "$C/job" 2>/dev/null &
	wpid=$!
	wait_for "$T" parked 0 || not_ok "the command starts"
	expect 0 "pending" qc pending q
	check "one line per lease" [ "$(lines_of "$C/out")" = 2 ]
	check "seq 0, held by work's pid, delivered once" \
		grep -qE "^0 +held +$wpid +1 +[0-9]+\.[0-9]s +[0-9]+\.[0-9]s +4\$" \
		"$C/out"
	expect 0 "pending --json" qc pending q --json
	check "JSON: [, one object, ]" [ "$(lines_of "$C/out")" = 3 ]
	check "JSON: the keys" grep -qE \
		"^\\{\"seq\":0,\"state\":\"held\",\"pid\":$wpid,\"deliveries\":1,\"age_ms\":[0-9]+,\"left_ms\":[0-9]+,\"bytes\":4\\}\$" \
		"$C/out"
	if command -v jq >/dev/null 2>&1; then
		check "jq parses it" jq -e 'length == 1 and .[0].left_ms > 50000' \
			"$C/out"
	fi
	kill -KILL "$wpid"
	wait "$wpid" 2>/dev/null
	wait_stat "the holder died: its message comes back" q leased=0 \
		returned=1
	expect 0 "pending" qc pending q --json
	check "waiting, no pid, no time left" grep -qE \
		'^\{"seq":0,"state":"waiting","pid":null,"deliveries":1,"age_ms":[0-9]+,"left_ms":null,"bytes":4\}$' \
		"$C/out"
	expect 0 "pending of a plain queue" qc create p
	expect 0 "pending p --json" qc pending p --json
	out_is "none" "[]"
	expect 6 "pending of a queue that does not exist" qc pending nosuch
}

# gone PID: no such process, or only its zombie is left.
gone() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -z "$st" ] || [ "$st" = Z ]
}

# work killed with SIGKILL takes its commands with it: its lease ends,
# and the message goes to another worker, so a command left running
# would do the work twice at the same time.
t_work_killed() {
	local wpid cpid
	write_job
	expect 0 "create" qc create q --acked
	expect 0 "put park" qc put q park
	"$QCTL" work q -- sh -c 'echo $$ >"$JOBDIR/cmd.pid"; exec "$0"' \
		"$C/job" 2>/dev/null &
	wpid=$!
	wait_for "$T" parked 0 || not_ok "the command starts"
	cpid=$(cat "$C/cmd.pid")
	check "the command runs" kill -0 "$cpid"
	kill -KILL "$wpid"
	wait "$wpid" 2>/dev/null
	if wait_for "$T" gone "$cpid"; then
		ok "the command dies with work"
	else
		not_ok "the command dies with work" "pid $cpid still runs"
		kill -KILL "$cpid" 2>/dev/null
	fi
	wait_stat "its message comes back" q leased=0 returned=1
}

# End of stream waits for a lease another process holds; it comes when
# that one is acked, or its holder dies and the message is taken again.
t_eos() {
	local wpid
	write_job
	expect 0 "create" qc create q --acked
	expect 0 "put park, close" qc put q park --close
	"$QCTL" work q -- "$C/job" 2>/dev/null &
	wpid=$!
	wait_for "$T" parked 0 || not_ok "the command starts"
	expect 5 "get: no end of stream while another holds a lease" \
		qc get q --timeout 0.2
	kill -KILL "$wpid"
	wait "$wpid" 2>/dev/null
	expect 0 "get: the dead holder's message comes back" qc get q
	out_is "it is the message" park
	expect 3 "then end of stream" qc get q --nonblock

	expect 0 "create r" qc create r --acked
	expect 0 "put park, close" qc put r park --close
	rm -f "$C"/parked.* "$C"/go.*
	qc work r -- "$C/job" 2>/dev/null &
	wpid=$!
	wait_for "$T" parked 0 || not_ok "the command starts"
	qc get r >"$C/g.out" 2>&1 &
	local gpid=$! rc
	wait_stat "get waits" r blocked_get=1
	go 0
	wait "$gpid"
	rc=$?
	check "get ends with 3 once the lease is acked (got $rc)" [ "$rc" = 3 ]
	wait "$wpid"
	rc=$?
	check "work exits 0 (got $rc)" [ "$rc" = 0 ]
}

# Leases count against the capacity.
t_capacity() {
	local wpid
	write_job
	expect 0 "create --capacity 4" qc create q --acked --capacity 4
	expect 0 "put 4 parks" qc put q park park park park
	qc work q -j 4 -- "$C/job" 2>/dev/null &
	wpid=$!
	for i in 0 1 2 3; do
		wait_for "$T" parked "$i" || not_ok "command $i starts"
	done
	check_stat "4 leased, none queued" q leased=4 messages=0
	expect 5 "put --nonblock: full with 4 leased" qc put q --nonblock ok
	qc put q --timeout 20 ok 2>"$C/p.err" &
	local ppid=$! rc
	wait_stat "put waits" q blocked_put=1
	go 2
	wait "$ppid"
	rc=$?
	check "put goes in once one is acked (got $rc)" [ "$rc" = 0 ]
	go 0; go 1; go 3
	expect 0 "close" qc close q
	wait "$wpid"
	check_stat "all acked" q total_acked=5 leased=0 messages=0
}

run_case "help" t_help
run_case "usage errors (2)" t_usage
run_case "create --acked" t_create
run_case "get and cat ack what they printed" t_getcat
run_case "worker pool, dead-letter queue" t_pool_dead_letter
run_case "worker pool, dropped" t_pool_dropped
run_case "work" t_work
run_case "work extends leases" t_extend
run_case "work and signals" t_signals
run_case "join" t_join
run_case "pending" t_pending
run_case "work killed: its commands die" t_work_killed
run_case "end of stream waits for leases" t_eos
run_case "leases count against capacity" t_capacity
finish
