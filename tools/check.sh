#!/bin/bash
# check.sh - the whole test suite, from a fresh Debian 12 machine: install
# the dependencies if missing, then build and test shmq four ways:
#
#   build/        gcc, -Werror: make check, then make distcheck
#   build-asan/   gcc with AddressSanitizer + UndefinedBehaviorSanitizer
#                 (and LeakSanitizer): make check
#   build-clang/  clang, -Werror: everything builds
#   build-fuzz/   clang + libFuzzer: make fuzz for FUZZ_SECONDS (60)
#
# Exits non-zero on the first failure, after printing the failing logs.
# .ci/run calls exactly this.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/deps.sh"
shmq_install_deps test
. "$here/build.sh"
shmq_bootstrap

start=$(date +%s)
# The dependencies are installed: a test that would skip for want of one
# (pytest, nats-server, libnats) fails instead.
export SHMQ_REQUIRE_ALL=1
step() { echo; echo "=== $* ($(( $(date +%s) - start ))s)"; }

# make check in the current build dir; show the logs of what failed.
run_check() {
	if ! make -s check "$@" >check.out 2>&1; then
		cat check.out
		for log in tests/*.log; do
			[ -f "$log" ] || continue
			grep -q '^\(FAIL\|ERROR\)' "${log%.log}.trs" 2>/dev/null &&
				{ echo "--- $log"; tail -n 100 "$log"; }
		done
		return 1
	fi
	grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR|# )' check.out || true
}

step "gcc build and tests"
shmq_build build
run_check

step "AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
shmq_build build-asan --enable-sanitizers
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_check

step "clang build (-Werror)"
shmq_build build-clang CC=clang CXX=clang++
make -s -j"$(nproc)" check TESTS= >/dev/null

step "fuzzing (${FUZZ_SECONDS:-60} s for the request handler)"
shmq_build build-fuzz CC=clang CXX=clang++ --enable-fuzzing
make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}" 2>&1 |
	grep -E '^(#[0-9]+ +DONE|==|SUMMARY|stat::number_of_executed_units)'

step "make distcheck"
cd "$shmq_top/build"
make -s distcheck >distcheck.out 2>&1 || { tail -n 80 distcheck.out; exit 1; }
grep -E 'archives ready|tar.gz' distcheck.out || true

step "all tests passed"
