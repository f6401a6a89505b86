#!/bin/sh
# On a CPU with AVX512-VNNI the avx512 decode set scores Q8/Q4 keys with
# integer dot products, so test_decode never runs its float Q8/Q4 scores.
# This runs the quick decode matrix again with the feature masked out
# (ATTN_CPU_DISABLE). Exit 77 = skipped: not an x86-64 build, or no
# AVX512-VNNI to mask.
set -u
top_builddir=${top_builddir:-.}
if [ "${host_cpu:-}" != x86_64 ] || ! grep -qw avx512_vnni /proc/cpuinfo 2>/dev/null; then
    echo "test_decode_novnni: needs an x86-64 build on a CPU with avx512_vnni: SKIP"
    exit 77
fi
ATTN_CPU_DISABLE=avx512_vnni ATTN_TEST_QUICK=1 exec "$top_builddir/tests/test_decode"
