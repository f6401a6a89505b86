#!/bin/sh
# Validates every SPIR-V module the build embeds with spirv-val, so that a
# shader the driver would reject (or a compiler bug) fails here rather than
# on a user's GPU. Only lavapipe runs the shaders in CI; this also covers the
# cooperative-matrix variant, which lavapipe cannot run.
# Environment (from Makefile.am): SPIRV_VAL, ATTN_SPV (paths relative to the
# build directory). Exit 77 (skipped) without a validator or shaders.
if [ -z "$SPIRV_VAL" ] || [ -z "$ATTN_SPV" ]; then
    echo "test_spirv: no spirv-val or no Vulkan shaders in this build: skipped"
    exit 77
fi
fail=0
for spv in $ATTN_SPV; do
    f=${abs_top_builddir:-.}/$spv
    if "$SPIRV_VAL" --target-env vulkan1.1 "$f"; then
        echo "ok   $spv"
    else
        echo "FAIL $spv"
        fail=1
    fi
done
exit $fail
