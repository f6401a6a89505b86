#!/bin/sh
# test_decode runs the best kernel set of the machine only. This runs its
# quick matrix again on the other x86 decode sets: AVX-512 without VNNI
# (float Q8/Q4 scores and P.V; ATTN_CPU_DISABLE masks the feature) and AVX2 (the
# shared template with 8-lane vectors; ATTN_ISA caps the set). Exit 77 =
# skipped: not an x86-64 build, or a CPU without AVX2.
set -u
top_builddir=${top_builddir:-.}
if [ "${host_cpu:-}" != x86_64 ] || ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    echo "test_decode_isas: needs an x86-64 build on a CPU with avx2: SKIP"
    exit 77
fi
if grep -qw avx512_vnni /proc/cpuinfo; then
    ATTN_CPU_DISABLE=avx512_vnni ATTN_TEST_QUICK=1 "$top_builddir/tests/test_decode" || exit 1
fi
ATTN_ISA=avx2 ATTN_TEST_QUICK=1 exec "$top_builddir/tests/test_decode"
