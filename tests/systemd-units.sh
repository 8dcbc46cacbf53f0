#!/bin/sh
# systemd-units.sh - the units must pass `systemd-analyze verify` cleanly:
# no error and no warning (it reports parse errors as warnings only); the
# bridge's template keeps its restart policy and hardening.
set -u
top=${SHMQ_SRCDIR:-.}
build=${SHMQ_BUILDDIR:-.}
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "systemd-analyze not installed"
	exit 77
fi
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
# ExecStart must name an executable that exists: the one just built.
sed "s|@sbindir@|$build/daemon|g" "$top/systemd/shmqd.service.in" \
	> "$dir/shmqd.service"
cp "$top/systemd/shmqd.socket.in" "$dir/shmqd.socket"
units="./shmqd.socket ./shmqd.service"
# The bridge's template, as one instance, where shmq-bridge is built.
if [ -x "$build/bridge/shmq-bridge" ]; then
	sed "s|@bindir@|$build/bridge|g" "$top/systemd/shmq-bridge@.service.in" \
		> "$dir/shmq-bridge@test.service"
	units="$units ./shmq-bridge@test.service"
fi
# shellcheck disable=SC2086
out=$(cd "$dir" && systemd-analyze verify --man=no $units 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	echo "systemd-analyze verify failed (status $rc):"
	echo "$out"
	exit 1
fi
# The bridge's restart policy and hardening (docs/bridge.md, systemd):
# restarted on failure, not at the end of stream (0, 10) nor on bad
# usage (2); locked down, but with the network.
if [ -f "$dir/shmq-bridge@test.service" ]; then
	u=$dir/shmq-bridge@test.service
	for want in Restart=on-failure SuccessExitStatus=10 \
		    RestartPreventExitStatus=2 StartLimitIntervalSec=0 \
		    NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
		    PrivateTmp=yes CapabilityBoundingSet= \
		    RuntimeDirectoryPreserve=yes; do
		if ! grep -qx "$want" "$u"; then
			echo "shmq-bridge@.service: no $want"
			exit 1
		fi
	done
	if grep -q '^PrivateNetwork=\|^IPAddressDeny=' "$u"; then
		echo "shmq-bridge@.service: a network client without network"
		exit 1
	fi
fi
echo "units verified"
