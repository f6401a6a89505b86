/* Shared helpers of the libattn Vulkan shaders (GLSL 4.50, no extensions).
 * Tensors are uint[] storage buffers; element i of a 16-bit tensor is half
 * of word i/2 (little-endian: the low half first), of a u8 tensor byte i%4
 * of word i/4. GLSL cannot pass a buffer to a function, so each accessor
 * is stamped out per buffer by a macro. */

const int DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2, DT_U8 = 3;

#define NEG_INF uintBitsToFloat(0xff800000u)

float attn_bf16_to_f32(uint u) { return uintBitsToFloat(u << 16); }

uint attn_f32_to_bf16(float f)
{
    uint u = floatBitsToUint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)          /* quiet NaN */
        return (u >> 16) | 0x40u;
    u += 0x7fffu + ((u >> 16) & 1u);              /* round to nearest even */
    return u >> 16;
}

/* tanh without exp overflow (inf/inf) for large |x|. */
float attn_tanh(float x)
{
    const float t = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - t) / (1.0 + t);
}

/* Element i as f32 of a 32- or 16-bit dtype DT. */
#define ATTN_LOAD_BITS(B, DT, i) \
    ((DT) == DT_F32 ? uintBitsToFloat(B.w[uint(i)]) : \
     (DT) == DT_F16 ? unpackHalf2x16(B.w[uint(i) >> 1] >> ((uint(i) & 1u) * 16u)).x : \
     attn_bf16_to_f32(B.w[uint(i) >> 1] >> ((uint(i) & 1u) * 16u)))

/* float NAME(int i): element i of buffer B, whose dtype DT is a constant. */
#define ATTN_LOAD_FIXED(NAME, B, DT) \
    float NAME(int i) { return ATTN_LOAD_BITS(B, DT, i); }

/* float NAME(int dt, int i), uint NAME_u8(int i): element i of buffer B of
 * run-time dtype dt (u8 as 0..255). */
#define ATTN_LOAD_ANY(NAME, B) \
    uint NAME##_u8(int i) { return (B.w[uint(i) >> 2] >> ((uint(i) & 3u) * 8u)) & 0xffu; } \
    float NAME(int dt, int i) { return dt == DT_U8 ? float(NAME##_u8(i)) : ATTN_LOAD_BITS(B, dt, i); }

/* void NAME(int dt, int i, float x): stores element i of buffer B (f32,
 * f16 or bf16). A 16-bit element shares its word with a neighbour another
 * invocation may write: clear and set its half with atomics. */
#define ATTN_STORE_ANY(NAME, B) \
    void NAME(int dt, int i, float x) { \
        if (dt == DT_F32) { \
            B.w[uint(i)] = floatBitsToUint(x); \
        } else { \
            const uint bits = dt == DT_F16 ? packHalf2x16(vec2(x, 0.0)) & 0xffffu \
                                           : attn_f32_to_bf16(x); \
            const uint sh = (uint(i) & 1u) * 16u; \
            atomicAnd(B.w[uint(i) >> 1], ~(0xffffu << sh)); \
            atomicOr(B.w[uint(i) >> 1], bits << sh); \
        } \
    }
