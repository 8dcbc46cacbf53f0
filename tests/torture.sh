#!/bin/sh
# torture.sh - the short form of `make torture`: 15 s of random SIGKILLs of
# producers, consumers and shmqd, then the exactly-once checks.
set -u
build=${SHMQ_BUILDDIR:-.}
exec "$build/tools/shmq-torture" --daemon "$build/daemon/shmqd" \
	--seconds "${TORTURE_SECONDS:-15}" --kill-daemon
