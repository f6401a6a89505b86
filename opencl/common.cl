/* Shared helpers of the libattn OpenCL kernels (OpenCL C 1.2).
 * f16 storage is read and written with vload_half/vstore_half, which are
 * core OpenCL 1.2 and need no cl_khr_fp16; bf16 by bit shifts. */

#define DT_F32  0
#define DT_F16  1
#define DT_BF16 2
#define DT_U8   3

inline float attn_bf16_to_f32(ushort u) { return as_float((uint)u << 16); }

inline ushort attn_f32_to_bf16(float f)
{
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)        /* quiet NaN */
        return (ushort)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);            /* round to nearest even */
    return (ushort)(u >> 16);
}

/* Element i of a tensor whose dtype is only known at run time. */
inline float attn_load(__global const uchar *p, int dt, long i)
{
    if (dt == DT_F32)
        return ((__global const float *)p)[i];
    if (dt == DT_F16)
        return vload_half((size_t)i, (__global const half *)p);
    if (dt == DT_BF16)
        return attn_bf16_to_f32(((__global const ushort *)p)[i]);
    return (float)p[i];
}

inline void attn_store(__global uchar *p, int dt, long i, float x)
{
    if (dt == DT_F32)
        ((__global float *)p)[i] = x;
    else if (dt == DT_F16)
        vstore_half_rte(x, (size_t)i, (__global half *)p);
    else
        ((__global ushort *)p)[i] = attn_f32_to_bf16(x);
}

/* IN_DT (compile time) is the dtype of q, k and v: IN_T is the pointer
 * type of their buffers and LOAD_IN(p, i) reads element i as f32. */
#if !defined(IN_DT) || IN_DT == DT_F32
#define IN_T float
#define LOAD_IN(p, i) ((p)[i])
#define LOAD_IN4(p, i) vload4(0, (p) + (i))
#elif IN_DT == DT_F16
#define IN_T half
#define LOAD_IN(p, i) vload_half((size_t)(i), (p))
#define LOAD_IN4(p, i) ((float4)(LOAD_IN(p, i), LOAD_IN(p, (i) + 1), \
                                 LOAD_IN(p, (i) + 2), LOAD_IN(p, (i) + 3)))
#else
#define IN_T ushort
#define LOAD_IN(p, i) attn_bf16_to_f32((p)[i])
#define LOAD_IN4(p, i) as_float4(convert_uint4(vload4(0, (p) + (i))) << 16)
#endif

#ifdef ATTN_TEST_BUILD_ERROR
#error "build failure requested by ATTN_TEST_BUILD_ERROR (test hook)"
#endif
