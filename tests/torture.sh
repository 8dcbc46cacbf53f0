#!/bin/sh
# torture.sh - the short form of `make torture`: random SIGKILLs of
# producers, consumers and shmqd, then the exactly-once checks; 15 s on
# plain queues, then 15 s on acked queues, whose workers lease and ack.
set -u
build=${SHMQ_BUILDDIR:-.}
secs=${TORTURE_SECONDS:-15}
"$build/tools/shmq-torture" --daemon "$build/daemon/shmqd" \
	--seconds "$secs" --kill-daemon || exit 1
exec "$build/tools/shmq-torture" --daemon "$build/daemon/shmqd" \
	--seconds "$secs" --kill-daemon --acked
