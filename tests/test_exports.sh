#!/bin/sh
# Fails if the shared library exports any dynamic symbol that is not part of
# the public API (attn_*). Run by `make check` with top_builddir and NM set
# (see AM_TESTS_ENVIRONMENT in Makefile.am); works in out-of-tree builds
# and under distcheck. Exit 77 = skipped (no shared library in this build).
set -u

top_builddir=${top_builddir:-.}
NM=${NM:-nm}
la="$top_builddir/libattn.la"

if [ ! -f "$la" ]; then
    echo "test_exports: $la not found" >&2
    exit 1
fi
# libtool records the shared library's file name in dlname ('' when the
# build is static-only).
dlname=$(sed -n "s/^dlname='\(.*\)'\$/\1/p" "$la")
if [ -z "$dlname" ]; then
    echo "test_exports: static-only build, nothing to check: SKIP"
    exit 77
fi
so="$top_builddir/.libs/$dlname"
if [ ! -f "$so" ]; then
    echo "test_exports: $so not found" >&2
    exit 1
fi

syms=$($NM -D --defined-only "$so" 2>/dev/null) || {
    # Some nm builds reject -B together with -D; retry with plain nm.
    syms=$(nm -D --defined-only "$so") || { echo "test_exports: nm failed on $so" >&2; exit 1; }
}

# Last field of each line is the symbol name; drop the linker's own markers.
names=$(printf '%s\n' "$syms" | awk 'NF { print $NF }' | sed 's/@.*//' |
        grep -v -x -e '_init' -e '_fini' -e '_edata' -e '_end' -e '__bss_start' \
                   -e '_DYNAMIC' -e '_GLOBAL_OFFSET_TABLE_' || true)

total=$(printf '%s\n' "$names" | grep -c . || true)
bad=$(printf '%s\n' "$names" | grep -v '^attn_' | grep . || true)

if [ -n "$bad" ]; then
    echo "test_exports: $so exports symbols outside the attn_ namespace:" >&2
    printf '  %s\n' $bad >&2
    exit 1
fi
if [ "$total" -eq 0 ]; then
    echo "test_exports: $so exports no symbols at all" >&2
    exit 1
fi
echo "test_exports: $total exported symbols, all attn_*: PASS"
exit 0
