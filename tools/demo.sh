#!/bin/bash
# demo.sh - the main job, from a fresh Debian 12 machine to a running
# pipeline: install the dependencies if missing, build, start a private
# shmqd in a temporary directory, run a real multi-process pipeline through
# queues (and a shell one through qctl), then remove everything again.
#
#   tools/demo.sh [shmq-pipeline options, e.g. --items 1000000 --workers 4]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/deps.sh"
shmq_install_deps
. "$here/build.sh"
shmq_bootstrap
shmq_build build
b="$shmq_top/build"

dir=$(mktemp -d /tmp/shmq-demo.XXXXXX)
export SHMQ_SOCKET="$dir/shmqd.sock" SHMQ_NO_AUTOSTART=1
cleanup() {
	[ -f "$dir/shmqd.pid" ] && kill "$(cat "$dir/shmqd.pid")" 2>/dev/null
	for q in $("$b/tools/qctl" ls --json 2>/dev/null |
		   sed -n 's/.*"name": *"\([^"]*\)".*/\1/p'); do
		"$b/tools/qctl" rm "$q" 2>/dev/null || true
	done
	sleep 0.2
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> starting a private shmqd on $SHMQ_SOCKET"
"$b/daemon/shmqd" --socket "$SHMQ_SOCKET" --pid-file "$dir/shmqd.pid" \
	--log "$dir/shmqd.log"

echo
echo "==> 1. a C pipeline: producer -> workers -> collector, separate processes"
"$b/tools/shmq-pipeline" run "$@"

echo
echo "==> 2. the same idea in the shell, with qctl"
qctl="$b/tools/qctl"
"$qctl" create lines --capacity 64
"$qctl" create lengths --capacity 64 --auto-close
# Two parallel stages read `lines`; each message goes to exactly one.
for w in 1 2; do
	"$qctl" cat lines | awk '{ print length($0) }' |
		"$qctl" put lengths &
done
seq 1 100000 | sed 's/^/line /' | "$qctl" put lines --close &
total=$("$qctl" cat lengths | awk '{ n++; s += $1 } END { print n, s }')
wait
echo "collected: $total (100000 lines, 988895 characters expected)"
[ "$total" = "100000 988895" ] || { echo "demo: shell pipeline FAILED"; exit 1; }
"$qctl" rm lines
"$qctl" rm lengths
echo
echo "==> done; stopping shmqd and removing $dir"
