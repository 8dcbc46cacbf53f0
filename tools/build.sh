#!/bin/bash
# build.sh - configure and build shmq out of tree: build.sh DIR [CONFIGURE ARGS]
# Sourced helpers for demo.sh and check.sh; `make` output stays quiet.
set -eu

shmq_top=$(cd "$(dirname "$0")/.." && pwd)

shmq_bootstrap() {
	cd "$shmq_top"
	# An in-tree configure would stop every out-of-tree build.
	if [ -f config.status ]; then
		echo "==> cleaning the in-tree build (make distclean)"
		make -s distclean >/dev/null 2>&1 || true
	fi
	if [ ! -x configure ] || [ configure.ac -nt configure ] ||
	   [ Makefile.am -nt configure ]; then
		echo "==> autoreconf"
		autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
	fi
}

# shmq_build DIR [configure args...]: configure (once) and make in DIR.
shmq_build() {
	dir=$1
	shift
	mkdir -p "$shmq_top/$dir"
	cd "$shmq_top/$dir"
	if [ ! -f Makefile ] || [ "$shmq_top/configure" -nt Makefile ]; then
		echo "==> configure $* (in $dir/)"
		"$shmq_top/configure" -q "$@"
	fi
	echo "==> make (in $dir/)"
	make -s -j"$(nproc)" >/dev/null
}
