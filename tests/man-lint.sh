#!/bin/sh
# man-lint.sh - the manual pages are clean and say what the programs do.
#
# 1. Every page in docs/man passes `mandoc -T lint -W warning` (or, without
#    mandoc, `groff -ww -z -mandoc` with nothing on standard error): no
#    error and no warning.  Skipped (77) only if neither tool exists.
# 2. The pages cover what the built programs and the header offer: every
#    command, long option and exit status of `qctl --help` is in qctl.1
#    (and every exit status in docs/exit-status.md), every long option of
#    `shmqd --help` in shmqd.8, every function of <shmq.h> in libshmq.3.
#    So a command or option added without its documentation fails here.
set -u
top=${SHMQ_SRCDIR:-.}
build=${SHMQ_BUILDDIR:-.}
man=$top/docs/man
fails=0

not_ok() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

if command -v mandoc >/dev/null 2>&1; then
	lint=mandoc
elif command -v groff >/dev/null 2>&1; then
	lint=groff
else
	echo "SKIP: neither mandoc nor groff is installed"
	exit 77
fi

pages=$(ls "$man"/*.[1-8]) || exit 99
for page in $pages; do
	if [ "$lint" = mandoc ]; then
		# Lint messages go to standard output; a mandoc.db that lacks
		# a page another one cites is the system's business (stderr).
		out=$(mandoc -T lint -W warning "$page" 2>/dev/null)
		rc=$?
	else
		out=$(groff -ww -z -mandoc "$page" 2>&1)
		rc=$?
	fi
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		not_ok "$lint finds fault with $page (status $rc):"
		echo "$out"
	else
		echo "ok: $page ($lint)"
	fi
done

# An option NAME (without its dashes) as an mdoc page spells it:
# ".Fl \-max\-msg" for --max-msg.
has_option() {         # has_option PAGE NAME
	pat=$(printf 'Fl \\-%s' "$(printf %s "$2" | sed 's/-/\\-/g')")
	grep -qF -- "$pat" "$1"
}

qctl=$build/tools/qctl
shmqd=$build/daemon/shmqd
if [ ! -x "$qctl" ] || [ ! -x "$shmqd" ]; then
	not_ok "qctl or shmqd is not built in $build"
	exit 1
fi

# qctl: commands, their long options, exit statuses.
cmds=$("$qctl" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
[ -n "$cmds" ] || not_ok "no command found in 'qctl --help'"
for c in $cmds; do
	grep -qE "^\\.(It )?Cm $c( |\$)" "$man/qctl.1" ||
		not_ok "qctl.1 does not document command '$c'"
	grep -qE "^## $c([ ,]|\$)" "$top/docs/qctl.md" ||
		not_ok "docs/qctl.md has no section for command '$c'"
	for o in $("$qctl" "$c" --help | sed -n '/^Options:/,/^$/p' |
		   grep -oE -- '--[a-z0-9-]+' | sed 's/^--//' | sort -u); do
		has_option "$man/qctl.1" "$o" ||
			not_ok "qctl.1 does not document 'qctl $c --$o'"
		grep -qF -- "--$o" "$top/docs/qctl.md" ||
			not_ok "docs/qctl.md does not document 'qctl $c --$o'"
	done
done
statuses=$("$qctl" --help | sed -n '/^Exit status:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
[ -n "$statuses" ] || not_ok "no exit status found in 'qctl --help'"
for s in $statuses; do
	grep -qE "^\\.It $s\$" "$man/qctl.1" ||
		not_ok "qctl.1 does not list exit status $s"
	grep -qE "^\\| $s \\|" "$top/docs/exit-status.md" ||
		not_ok "docs/exit-status.md does not list exit status $s"
done

# shmqd: long options.
for o in $("$shmqd" --help | grep -oE -- '--[a-z0-9-]+' | sed 's/^--//' | sort -u); do
	has_option "$man/shmqd.8" "$o" ||
		not_ok "shmqd.8 does not document 'shmqd --$o'"
	grep -qF -- "--$o" "$top/docs/shmqd.md" ||
		not_ok "docs/shmqd.md does not document 'shmqd --$o'"
done

# libshmq: every function the header declares.
funcs=$(grep -oE '^[a-z].*[ *](shmq_[a-z_]+)\(' "$top/client/shmq.h" |
	grep -oE 'shmq_[a-z_]+\($' | tr -d '(')
[ -n "$funcs" ] || not_ok "no function found in client/shmq.h"
for f in $funcs; do
	grep -qE "^\\.Fn $f( |\$)" "$man/libshmq.3" ||
		not_ok "libshmq.3 does not document $f()"
	grep -qE "^\\.Nm $f( ,|\$)" "$man/libshmq.3" ||
		not_ok "libshmq.3 does not name $f in NAME"
done

if [ $fails -ne 0 ]; then
	echo "$fails problem(s) with the manual pages"
	exit 1
fi
echo "manual pages clean and complete ($lint)"
