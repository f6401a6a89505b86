/* T_UNROLL: full unrolling of the small constant-trip loops of the register
 * blocks, so that accumulator arrays live in registers (clang needs
 * "unroll" for a full unroll; gcc's count is an upper bound). */
#ifndef ATTN_SIMD_UNROLL_H
#define ATTN_SIMD_UNROLL_H

#if defined(__clang__)
#define T_UNROLL _Pragma("unroll")
#else
#define T_UNROLL _Pragma("GCC unroll 16")
#endif

#endif
