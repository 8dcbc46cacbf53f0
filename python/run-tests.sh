#!/bin/sh
# run-tests.sh - the Python binding's tests: pytest, against the real
# shmqd, with the package as built (python/stage in the build directory).
#
# pytest's "no tests collected" (exit status 5) is a failure here, as is
# any other non-zero status; 77 (skip) only if pytest is not installed,
# and not even then under SHMQ_REQUIRE_ALL=1 (tools/check.sh, which
# installs it): there a missing pytest fails (99).
# Everything the tests start lives under one temporary directory: on the
# way out (even after a crash or a kill by the outer timeout) every shmqd
# found there is killed and its shared memory removed.
#
# Environment (make check sets it): SHMQ_BUILDDIR, SHMQ_SRCDIR, PYTHON,
# HAVE_PYTEST, SHMQ_SANITIZERS (non-empty in a sanitizer build), SHMQ_CC.
# Arguments go to pytest (e.g. -k NAME, -x).
set -u
build=${SHMQ_BUILDDIR:-.}
src=${SHMQ_SRCDIR:-$(dirname "$0")/..}
py=${PYTHON:-/usr/bin/python3}

if [ "${HAVE_PYTEST:-yes}" != yes ] || ! "$py" -c 'import pytest' 2>/dev/null; then
	if [ "${SHMQ_REQUIRE_ALL:-0}" = 1 ]; then
		echo "Bail out! pytest is not installed for $py (Debian: python3-pytest), and SHMQ_REQUIRE_ALL=1"
		exit 99
	fi
	echo "SKIP: pytest is not installed for $py (Debian: python3-pytest)"
	exit 77
fi
if ! [ -f "$build/python/stage/shmq/_shmq.so" ] || ! [ -x "$build/daemon/shmqd" ]; then
	echo "Bail out! the binding or shmqd is not built in $build"
	exit 99
fi

tmp=$(mktemp -d /tmp/shmq-pytest.XXXXXX) || exit 99
sweep() {
	for pidfile in "$tmp"/*/shmqd.pid; do
		[ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null
	done
	if [ -f "$tmp/segments" ]; then
		while read -r prefix; do
			rm -f /dev/shm/"$prefix"*
		done < "$tmp/segments"
	fi
	rm -rf "$tmp"
}
trap sweep EXIT
trap 'exit 130' INT TERM

# The interpreter is not built with the sanitizers: their runtime must be
# loaded first for the extension (and libshmq) that are (gcc's libasan and
# libubsan; clang's runtime where gcc's is not there).
if [ -n "${SHMQ_SANITIZERS:-}" ]; then
	cc=${SHMQ_CC:-cc}
	for lib in libasan.so libubsan.so libclang_rt.asan-x86_64.so; do
		path=$($cc -print-file-name=$lib 2>/dev/null)
		case $lib in libclang_rt*) [ -n "${LD_PRELOAD:-}" ] && continue ;; esac
		[ -f "$path" ] && LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$path"
	done
	export LD_PRELOAD
	# The interpreter's own allocations are not ours to account for (the
	# last setting wins: after the caller's).
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	export ASAN_OPTIONS
fi

PYTHONPATH=$(cd "$build/python/stage" && pwd)
SHMQ_DAEMON=$(cd "$build/daemon" && pwd)/shmqd
SHMQ_PYTEST_TMP=$tmp
PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH SHMQ_DAEMON SHMQ_PYTEST_TMP PYTHONDONTWRITEBYTECODE
unset SHMQ_SOCKET SHMQ_NO_AUTOSTART

"$py" -m pytest -c "$src/python/pytest.ini" --rootdir "$src/python" \
	"$src/python/tests" "$@"
rc=$?
if [ $rc -eq 5 ]; then
	echo "run-tests.sh: pytest collected no tests: that is a failure"
	rc=1
fi
exit $rc
