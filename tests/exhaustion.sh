#!/bin/bash
# exhaustion.sh - running out of room is refused at the moment of the
# request, with a clear error, and harms nobody else:
#
#   /dev/shm full      a 2 MiB tmpfs mounted on /dev/shm in a private mount
#                      namespace: create fails with "out of shared memory"
#                      and the queues that exist keep every message
#   descriptors        shmqd with RLIMIT_NOFILE 48 and 60 clients at once:
#                      the extra ones are refused, the daemon keeps serving
#   gigantic sizes     refused with the limit named, nothing created
#
# Needs root (mount namespace, setting limits); skipped otherwise.
set -u
build=${SHMQ_BUILDDIR:-.}
qctl="$build/tools/qctl"
shmqd="$build/daemon/shmqd"
fails=0
n=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() {   # check DESCRIPTION COMMAND...: passes if COMMAND succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null ||
   ! command -v prlimit >/dev/null; then
	echo "1..0 # SKIP needs root, unshare and prlimit"
	exit 77
fi

top=$(mktemp -d /tmp/shmq-exhaust.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	local f d prefix
	for f in "$top"/*/pid; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	wait 2>/dev/null
	for d in "$top"/*/; do
		prefix=$(segment_prefix "${d}s.sock")
		rm -f /dev/shm/"$prefix"*
	done
	rm -rf "$top"
}
trap cleanup EXIT

# The /dev/shm prefix of the daemon on socket $1 (paths_segment_prefix).
segment_prefix() {
	local s=$1 h=-3750763034362895579 i c   # 0xcbf29ce484222325
	for ((i = 0; i < ${#s}; i++)); do
		printf -v c '%d' "'${s:i:1}"
		h=$(( (h ^ c) * 1099511628211 ))
	done
	printf 'shmq.%016x.' "$h"
}

start_daemon() {   # start_daemon DIR [shmqd options...]
	local dir=$1
	shift
	mkdir -p "$dir"
	"$shmqd" --socket "$dir/s.sock" --pid-file "$dir/pid" \
		--log "$dir/shmqd.log" "$@"
}

# --- /dev/shm full ------------------------------------------------------
# Everything in this block runs inside a private mount namespace, where
# /dev/shm is a 2 MiB tmpfs; its own trap stops that daemon.
shm_full() {
	shm_dir=$top/shm
	local dir=$shm_dir
	mount -t tmpfs -o size=2m tmpfs /dev/shm || return 1
	# Past shmqd's own byte limit (by default 75 % of /dev/shm), so that
	# /dev/shm itself runs out; tests/quota.sh tests the byte limits.
	start_daemon "$dir" --max-bytes 1G 2>/dev/null || return 1
	trap 'kill -9 "$(cat "$shm_dir/pid")" 2>/dev/null' EXIT
	export SHMQ_SOCKET=$dir/s.sock SHMQ_NO_AUTOSTART=1
	"$qctl" create keep --capacity 16 --max-msg 64 || return 1
	"$qctl" put keep one two three || return 1
	# 64 x 64 KiB = 4 MiB does not fit in 2 MiB.
	out=$("$qctl" create big --capacity 64 --max-msg 64K 2>&1)
	rc=$?
	echo "# $out"
	[ $rc -eq 1 ] || { echo "# create big: exit $rc"; return 1; }
	case $out in *"out of shared memory"*) ;; *) return 1 ;; esac
	"$qctl" stat big >/dev/null 2>&1 && return 1    # nothing left behind
	# Fill the rest with small queues until refused: refused cleanly.
	local i=0
	while "$qctl" create "fill$i" --capacity 64 --max-msg 1K 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || return 1
	done
	echo "# refused after $i more queues"
	# The existing queue is whole and still works.
	"$qctl" put keep four || return 1
	[ "$("$qctl" get keep -n 4 | tr '\n' ' ')" = "one two three four " ] ||
		return 1
	# Room comes back when queues are deleted.
	"$qctl" rm fill0 && "$qctl" create again --capacity 8 --max-msg 64
}
export -f shm_full start_daemon
export top qctl shmqd
if unshare --mount --propagation private bash -c shm_full; then
	ok "/dev/shm full: create refused with 'out of shared memory', existing queue intact"
else
	not_ok "/dev/shm full"
fi

# --- file descriptors ---------------------------------------------------
dir=$top/fd
if prlimit --nofile=48:48 "$shmqd" --socket "$dir/s.sock" \
	--pid-file "$dir/pid" --log "$dir/shmqd.log" 2>/dev/null ||
   { mkdir -p "$dir" && prlimit --nofile=48:48 "$shmqd" \
	--socket "$dir/s.sock" --pid-file "$dir/pid" --log "$dir/shmqd.log"; }
then
	export SHMQ_SOCKET=$dir/s.sock SHMQ_NO_AUTOSTART=1
	"$qctl" create busy --capacity 4
	# 60 consumers blocked in cat: each holds a connection.
	for i in $(seq 60); do
		timeout 30 "$qctl" cat busy >/dev/null 2>"$dir/cat$i.err" &
		pids+=($!)
	done
	# Wait (bounded) until the daemon has seen them all come or go.
	for _ in $(seq 200); do
		done_=$(grep -l . "$dir"/cat*.err 2>/dev/null | wc -l)
		att=$("$qctl" stat busy 2>/dev/null | sed -n 's/^consumers: *//p')
		[ $((done_ + ${att:-0})) -ge 60 ] && break
		sleep 0.05
	done
	refused=$(grep -l . "$dir"/cat*.err 2>/dev/null | wc -l)
	unclear=$(grep -L "daemon limit reached\|daemon unreachable" \
		"$dir"/cat*.err 2>/dev/null | xargs -r grep -l . | wc -l)
	echo "# consumers attached: ${att:-?}, refused: $refused"
	check "descriptor limit: some clients refused" [ "$refused" -gt 0 ]
	check "descriptor limit: every refusal says why" [ "$unclear" -eq 0 ]
	check "descriptor limit: every client attached or refused" \
		[ $((refused + ${att:-0})) -eq 60 ]
	check "descriptor limit: daemon still alive" kill -0 "$(cat "$dir/pid")"
	# Free the descriptors: the daemon serves normally again.
	"$qctl" close busy
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	pids=()
	"$qctl" create after --capacity 2
	"$qctl" put after fine
	check "descriptor limit: serving again once clients left" \
		[ "$("$qctl" get after 2>/dev/null)" = fine ]
	grep -q "out of file descriptors\|refused" "$dir/shmqd.log"
	check "descriptor limit: logged" [ $? -eq 0 ]
else
	not_ok "descriptor limit: daemon did not start"
fi

# --- gigantic sizes -------------------------------------------------------
dir=$top/huge
start_daemon "$dir" --max-segment 64M
export SHMQ_SOCKET=$dir/s.sock SHMQ_NO_AUTOSTART=1
out=$("$qctl" create huge --capacity 1000 --max-msg 1M 2>&1)
rc=$?
check "huge segment refused (exit 1, limit named): $out" \
	[ $rc -eq 1 ] && [[ $out == *"exceeds the limit"* ]]
out=$("$qctl" create huge --capacity 4294967295 2>&1)
rc=$?
check "capacity beyond the layout refused (exit 2): $out" [ $rc -eq 2 ]
out=$("$qctl" create huge --max-msg 4G 2>&1)
rc=$?
check "max-msg beyond the layout refused (exit 2): $out" [ $rc -eq 2 ]
out=$("$qctl" create huge --max-bytes 16E 2>&1)
rc=$?
check "max-bytes overflow refused (exit 2): $out" [ $rc -eq 2 ]
"$qctl" stat huge >/dev/null 2>&1
check "nothing was created" [ $? -eq 6 ]
segs=$(find /dev/shm -maxdepth 1 -name "$(segment_prefix "$dir/s.sock")*" | wc -l)
check "no segment left by the refusals" [ "$segs" -eq 0 ]

echo "1..$n"
[ $fails -eq 0 ]
