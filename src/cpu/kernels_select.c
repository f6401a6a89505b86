/* Maps an ISA level to the kernel set compiled for it. An ISA whose file was
 * not built (configure --disable-X, or another architecture) falls back to
 * the portable set; the CPU backend never asks for more than the CPU has. */
#include "config.h"
#include "kernels.h"
#include "../cpu_features.h"

const attn_cpu_kernels *attn_cpu_kernels_for_features(attn_isa isa, uint64_t features)
{
    (void)features;   /* unused when no x86 kernel set is built */
    const attn_cpu_kernels *k = NULL;
    switch (isa) {
#ifdef HAVE_AVX512_KERNELS
    case ATTN_ISA_AVX512: {
        const uint64_t amx = ATTN_CPU_AMX_TILE | ATTN_CPU_AMX_BF16 | ATTN_CPU_AVX512_BF16;
#ifdef HAVE_AMX_KERNELS
        if ((features & amx) == amx && attn_cpu_amx_permit())
            k = attn_cpu_kernels_amx();
        else
#endif
        k = (features & ATTN_CPU_AVX512_BF16) ? attn_cpu_kernels_avx512_bf16()
                                              : attn_cpu_kernels_avx512();
        (void)amx;
        break;
    }
#endif
#ifdef HAVE_AVX2_KERNELS
    case ATTN_ISA_AVX2:   k = attn_cpu_kernels_avx2(); break;
#endif
#ifdef HAVE_NEON_KERNELS
    case ATTN_ISA_NEON:   k = attn_cpu_kernels_neon(); break;
#endif
    default: break;
    }
    return k ? k : &attn_cpu_kernels_scalar;
}
