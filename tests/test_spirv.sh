#!/bin/sh
# Validates every SPIR-V module the build embeds with spirv-val, so that a
# shader the driver would reject (or a compiler bug) fails here rather than
# on a user's GPU. Only lavapipe runs the shaders in CI; this also covers the
# cooperative-matrix variants, which lavapipe cannot run.
# Environment (from Makefile.am): SPIRV_VAL, ATTN_SPV and ATTN_SPV13 (paths
# relative to the build directory). Exit 77 (skipped) without a validator or shaders.
if [ -z "$SPIRV_VAL" ] || [ -z "$ATTN_SPV" ]; then
    echo "test_spirv: no spirv-val or no Vulkan shaders in this build: skipped"
    exit 77
fi
fail=0
# ATTN_SPV: SPIR-V 1.3 modules (Vulkan 1.1); ATTN_SPV13: SPIR-V 1.6 (Vulkan 1.3)
check() {
    f=${abs_top_builddir:-.}/$2
    if "$SPIRV_VAL" --target-env "$1" "$f"; then
        echo "ok   $2 ($1)"
    else
        echo "FAIL $2 ($1)"
        fail=1
    fi
}
for spv in $ATTN_SPV; do
    check vulkan1.1 "$spv"
done
for spv in $ATTN_SPV13; do
    check vulkan1.3 "$spv"
done
exit $fail
