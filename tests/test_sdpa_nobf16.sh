#!/bin/sh
# On a CPU with AVX512_BF16 the avx512 kernel set is always the vdpbf16ps one,
# so test_sdpa never runs the plain AVX-512 table. This runs the quick sdpa
# matrix again with the feature masked out (ATTN_CPU_DISABLE). Exit 77 =
# skipped: not an x86-64 build, or no AVX512_BF16 to mask.
set -u
top_builddir=${top_builddir:-.}
if [ "${host_cpu:-}" != x86_64 ] || ! grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then
    echo "test_sdpa_nobf16: needs an x86-64 build on a CPU with avx512_bf16: SKIP"
    exit 77
fi
ATTN_CPU_DISABLE=avx512_bf16 ATTN_TEST_QUICK=1 exec "$top_builddir/tests/test_sdpa"
