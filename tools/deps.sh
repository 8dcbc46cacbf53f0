#!/bin/bash
# deps.sh - install what building and testing shmq needs on Debian 12,
# skipping what is already there.  Sourced by demo.sh and check.sh;
# `deps.sh test` also installs the test-only tools; `deps.sh bench` what
# `make bench` can also use (Boost.Interprocess, a peer the bench
# compares against; re-run configure after installing it).  The bench builds and runs
# without it.
#
# Needs root or sudo only when something is missing.

shmq_install_deps() {
	# python3-dev: the Python binding (python/) builds where it is;
	# libnats-dev: shmq-bridge (configure builds it when found).
	pkgs="build-essential autoconf automake libtool pkgconf libevent-dev check python3-dev libnats-dev"
	if [ "${1:-}" = test ]; then
		# clang + its runtime: the second compiler and libFuzzer;
		# systemd: systemd-analyze verify; util-linux: setpriv;
		# valgrind: memcheck of the daemon; procps: pgrep;
		# mandoc: lints the manual pages (tests/man-lint.sh);
		# python3-pytest: the Python binding's tests; python3-trio: its
		# trio adapter's; nats-server: the JetStream server
		# tests/bridge.sh starts.
		pkgs="$pkgs clang libclang-rt-dev systemd util-linux valgrind procps"
		pkgs="$pkgs mandoc python3-pytest python3-trio nats-server"
	fi
	if [ "${1:-}" = bench ]; then
		# Boost.Interprocess (header-only message_queue) and a C++
		# compiler for the bench's Boost peer.
		pkgs="$pkgs g++ libboost-dev"
	fi
	missing=""
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "==> installing:$missing"
	if [ "$(id -u)" -eq 0 ]; then
		sudo=""
	elif command -v sudo >/dev/null 2>&1; then
		sudo="sudo"
	else
		echo "deps.sh: need root (or sudo) to install:$missing" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -q || return 1
	# shellcheck disable=SC2086
	$sudo apt-get install -y -q --no-install-recommends $missing
}

# Run directly: install, and report.
case "$0" in
*deps.sh) set -eu; shmq_install_deps "${1:-}"; echo "==> dependencies present" ;;
esac
