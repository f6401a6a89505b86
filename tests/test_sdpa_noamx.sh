#!/bin/sh
# On a CPU with AMX-BF16 the avx512 kernel level is always the AMX set, so
# test_sdpa never runs the avx512_bf16 (vdpbf16ps) table for bf16 inputs.
# This runs the quick sdpa matrix again with AMX masked out (ATTN_CPU_DISABLE).
# Exit 77 = skipped: not an x86-64 build, or no AMX-BF16 to mask.
set -u
top_builddir=${top_builddir:-.}
if [ "${host_cpu:-}" != x86_64 ] || ! grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null; then
    echo "test_sdpa_noamx: needs an x86-64 build on a CPU with amx_bf16: SKIP"
    exit 77
fi
ATTN_CPU_DISABLE=amx_bf16 ATTN_TEST_QUICK=1 exec "$top_builddir/tests/test_sdpa"
