/* attn_decode: split-KV flash decoding over the paged KV cache (OpenCL C 1.2).
 *
 * attn_decode_chunk: one work-group of W work-items per task (sequence b,
 * kv head hk, chunk of the sequence's scanned keys, block of RB query rows).
 * The RB rows are the Sq x Hq/Hkv query rows that share head hk, so every K
 * and V row of the chunk is read from memory once for all of them. A tile
 * is W keys; per tile:
 *   QK  key group g (LP lanes) reads the K rows of its KPT = LP keys, lane j
 *       the KCW-element pieces j, j + LP, ... of a row (16-byte loads: the
 *       LP lanes read a row's consecutive pieces, the groups consecutive
 *       rows), and forms partial dot products with its pieces of the query
 *       rows, which stay in registers; the partials go to local memory.
 *       A tile's loads are all issued before the first is used (raw into
 *       registers, converted afterwards; with VEARLY its V loads too):
 *       per-key branches or loads interleaved with their use left one
 *       memory latency per key on an NVIDIA H200.
 *   S   work-item t sums the LP partials of key t alone (soft-cap, ALiBi,
 *       visibility) and locates key t of the next tile.
 *   P   every work-item reads all W scores (broadcast reads) and updates
 *       the running max itself: no work-item walks a row serially while the
 *       others wait. Work-item t turns its own key's scores into weights.
 *   PV  the work-group splits into KS key slots of VL lanes; lane v of a
 *       slot owns the VCW-column pieces v, v + VL, ... of O (16-byte loads
 *       for 16-bit types): the slots read consecutive V rows, each with
 *       coalesced loads; acc = alpha acc + sum_k p_k v_k over the slot's
 *       keys. The slots' accumulators are added once per chunk.
 * Three barriers per W keys and none after PV: each local buffer is next
 * written after a barrier that its last readers have passed (the key
 * locations alternate between two buffers by tile parity). With W = 32 on
 * NVIDIA a work-group is one warp, whose barriers are cheap, and a compute
 * unit holds many. Each work-item's running sum l covers its own keys; the
 * sums are added once per chunk. The unnormalised partial (O, m, l) of the
 * task goes to scratch; attn_decode_combine merges the chunks with their
 * log-sum-exp, normalises, gates and stores out (and lse).
 *
 * Host tables (src/opencl/decode.c): per sequence SEQW longs (kept length
 * L, sinks scanned ns, window start lo of the scanned keys, kept sink
 * tokens nsk, window start position ws, sink pages sp, first window page
 * fw, page-table start, first task, chunks); per task 4 ints (b, hk,
 * chunk, row block); page table: pool page of each logical page, sink pages
 * [0, sp) then window pages from fw.
 *
 * Compile-time: D, DV, SDT (cache dtype), W, LP, KCW, VCW, VL, RB, F16CVT,
 * ALIGNED, VEARLY; MWG
 * and CCB (combine). */

#define SEQW 10
#define SDT_F32  0
#define SDT_F16  1
#define SDT_BF16 2
#define SDT_Q8   4
#define SDT_Q4   5

#define NKC (D / KCW)                   /* K pieces of a row */
#define NVC (DV / VCW)                  /* V pieces of a row */
#define KI ((NKC + LP - 1) / LP)        /* K pieces per lane */
#define KS (W / VL)                     /* key slots of P.V (VL: lanes per V row) */
#define VI ((NVC + VL - 1) / VL)        /* V pieces per work-item */
#define KG (W / LP)                     /* key groups */
#define KPT LP                          /* keys per group per tile: W keys */
#define PST (LP * RB + 1)               /* partials of one key: odd stride, no bank conflicts */
#define QN ((RB * D + W - 1) / W)     /* query elements each work-item loads */
#define QB (QN < 16 ? QN : 16)          /* of them, loaded at once */
#define RED_N (W * PST > KS * RB * DV ? W * PST : KS * RB * DV)

/* Flag bits (src/gpu_decode_flags.h sets them). */
#define F_CAUSAL  (1 << 0)
#define F_SIGMOID (1 << 1)
#define F_ALIBI   (1 << 2)
#define F_SINKS   (1 << 3)
#define F_LSE     (1 << 4)
#define F_GATE    (1 << 5)
#define F_SOFTCAP (1 << 6)

#ifdef ATTN_UNROLL
#define UNROLL _Pragma("unroll")
#else
#define UNROLL
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

#if SDT == SDT_F16 && F16CVT == 2
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif

/* Types and operations of n-element pieces (n = 1 is the scalar): FT
 * float, UT uchar, CT char, ST ushort, IT uint. */
#define FT_1 float
#define UT_1 uchar
#define CT_1 char
#define ST_1 ushort
#define IT_1 uint
#define VLD_1(p) (*(p))
#define VST_1(v, p) (*(p) = (v))
#define CVF_1(x) convert_float(x)
#define CVU_1(x) convert_uint(x)
#define ASF_1(x) as_float(x)
#define ASU_1(x) as_uint(x)
#define ASH_1(x) as_half(x)
#define FT_2 float2
#define UT_2 uchar2
#define CT_2 char2
#define ST_2 ushort2
#define IT_2 uint2
#define VLD_2(p) vload2(0, p)
#define VST_2(v, p) vstore2(v, 0, p)
#define CVF_2(x) convert_float2(x)
#define CVU_2(x) convert_uint2(x)
#define ASF_2(x) as_float2(x)
#define ASU_2(x) as_uint2(x)
#define ASH_2(x) as_half2(x)
#define FT_4 float4
#define UT_4 uchar4
#define CT_4 char4
#define ST_4 ushort4
#define IT_4 uint4
#define VLD_4(p) vload4(0, p)
#define VST_4(v, p) vstore4(v, 0, p)
#define CVF_4(x) convert_float4(x)
#define CVU_4(x) convert_uint4(x)
#define ASF_4(x) as_float4(x)
#define ASU_4(x) as_uint4(x)
#define ASH_4(x) as_half4(x)
#define FT_8 float8
#define UT_8 uchar8
#define CT_8 char8
#define ST_8 ushort8
#define IT_8 uint8
#define VLD_8(p) vload8(0, p)
#define VST_8(v, p) vstore8(v, 0, p)
#define CVF_8(x) convert_float8(x)
#define CVU_8(x) convert_uint8(x)
#define ASF_8(x) as_float8(x)
#define ASU_8(x) as_uint8(x)
#define ASH_8(x) as_half8(x)
#define FT_16 float16
#define UT_16 uchar16
#define CT_16 char16
#define ST_16 ushort16
#define IT_16 uint16
#define VLD_16(p) vload16(0, p)
#define VST_16(v, p) vstore16(v, 0, p)
#define CVF_16(x) convert_float16(x)
#define CVU_16(x) convert_uint16(x)
#define ASF_16(x) as_float16(x)
#define ASU_16(x) as_uint16(x)
#define ASH_16(x) as_half16(x)
/* acc + a . b as a chain of fma: dot() of a float4 compiles to a multiply,
 * three fma and the add into acc; a piece of 8 to 9 instructions plus the
 * add, against 8 fma here (the loop is instruction-bound on an H200). */
#define FDOT_1(acc, a, b) fma(a, b, acc)
#define FDOT_2(acc, a, b) fma((a).s1, (b).s1, fma((a).s0, (b).s0, acc))
#define FDOT_4(acc, a, b) FDOT_2(FDOT_2(acc, (a).lo, (b).lo), (a).hi, (b).hi)
#define FDOT_8(acc, a, b) FDOT_4(FDOT_4(acc, (a).lo, (b).lo), (a).hi, (b).hi)
#define FDOT_16(acc, a, b) FDOT_8(FDOT_8(acc, (a).lo, (b).lo), (a).hi, (b).hi)

#define KFT CAT(FT_, KCW)
#define VFT CAT(FT_, VCW)
#define KDOT CAT(FDOT_, KCW)

/* f16 bits to f32 without vload_half, so that a piece comes from one
 * vector load on every driver: the 15 magnitude bits moved to a float's
 * exponent and mantissa position, rebiased by a multiply by 2^112 (exact,
 * subnormals included); inf and NaN keep the top exponent. */
#define DEFINE_F16_BITS(n)                                                                   \
    inline FT_##n f16_bits_##n(IT_##n u)                                                     \
    {                                                                                        \
        const IT_##n a = (u & 0x7fffu) << 13;                                                \
        const FT_##n f = select(ASF_##n(a) * 0x1p112f, ASF_##n(a | 0x7f800000u),             \
                                a >= 0x0f800000u);                                           \
        return ASF_##n(ASU_##n(f) | ((u & 0x8000u) << 16));                                  \
    }
#define DEFINE_F16_BITS_(n) DEFINE_F16_BITS(n)

/* LDV(T, n, p): n elements of type T at p. vloadn needs only the element's
 * alignment, so drivers may split it into n scalar loads (NVIDIA does);
 * with ALIGNED (the host checked that every row and piece starts at a
 * multiple of the piece's bytes) the piece is one vector load. */
#ifndef ALIGNED
#define ALIGNED 0
#endif
#if ALIGNED
/* 16-bit pieces through 32-bit words: NVIDIA's compiler splits a ushort8
 * into two 8-byte loads (on the H200, f16 L = 128K: 0.232 against 0.279 ms).
 * Byte pieces as loaded were faster there than through words. */
#define LDV(T, n, p) CAT(CAT(LDV_, T), n)(p)
#define LDV_float1(p) (*(p))
#define LDV_float2(p) (*(__global const float2 *)(p))
#define LDV_float4(p) (*(__global const float4 *)(p))
#define LDV_float8(p) (*(__global const float8 *)(p))
#define LDV_float16(p) (*(__global const float16 *)(p))
#define LDV_ushort1(p) (*(p))
#define LDV_ushort2(p) as_ushort2(*(__global const uint *)(p))
#define LDV_ushort4(p) as_ushort4(*(__global const uint2 *)(p))
#define LDV_ushort8(p) as_ushort8(*(__global const uint4 *)(p))
#define LDV_ushort16(p) as_ushort16(*(__global const uint8 *)(p))
#define LDV_char1(p) (*(p))
#define LDV_char2(p) (*(__global const char2 *)(p))
#define LDV_char4(p) (*(__global const char4 *)(p))
#define LDV_char8(p) (*(__global const char8 *)(p))
#define LDV_char16(p) (*(__global const char16 *)(p))
#define LDV_uchar1(p) (*(p))
#define LDV_uchar2(p) (*(__global const uchar2 *)(p))
#define LDV_uchar4(p) (*(__global const uchar4 *)(p))
#define LDV_uchar8(p) (*(__global const uchar8 *)(p))
#define LDV_uchar16(p) (*(__global const uchar16 *)(p))
#else
#define LDV(T, n, p) CAT(VLD_, n)(p)
#endif

/* A piece (elements e0 .. e0+n-1 of a stored row) is loaded raw by RAW (the
 * bits of 16-bit types, the bytes of Q8/Q4; the block's scale and minimum
 * by SCALE and MINV) and converted to floats by CONV where it is used, so
 * that all the loads of a tile are issued before the first conversion
 * waits for one. F16CVT: 0 the bit arithmetic above; 1 vload_half of the
 * loaded bits (a private variable: the driver converts in registers, one
 * instruction an element on NVIDIA, where the bit arithmetic takes about
 * nine); 2 the bits as half (cl_khr_fp16), converted by the hardware. Q8: int8 times the block's f16
 * scale. Q4: in block b = e0/32, byte t holds element 32b+t (low nibble)
 * and 32b+t+16 (high), times the block's scale plus its minimum (a piece
 * never crosses a half block). */
#define QUANT (SDT == SDT_Q8 || SDT == SDT_Q4)
#if SDT == SDT_F32
#define RAWT(n) CAT(FT_, n)
#define RAW(n, row, e0) LDV(float, n, (__global const float *)(row) + (e0))
#define CONV(n, x, e0, s, m) (x)
#elif SDT == SDT_F16 || SDT == SDT_BF16
#define RAWT(n) CAT(ST_, n)
#define RAW(n, row, e0) LDV(ushort, n, (__global const ushort *)(row) + (e0))
#if SDT == SDT_BF16
#define CONV(n, x, e0, s, m) CAT(ASF_, n)(CAT(CVU_, n)(x) << 16)
#elif F16CVT == 1
#define CONV(n, x, e0, s, m) CAT(VLDHP_, n)((__private const half *)&(x))
#define VLDHP_1(p) vload_half(0, p)
#define VLDHP_2(p) vload_half2(0, p)
#define VLDHP_4(p) vload_half4(0, p)
#define VLDHP_8(p) vload_half8(0, p)
#define VLDHP_16(p) vload_half16(0, p)
#elif F16CVT == 2
#define CONV(n, x, e0, s, m) CAT(CVF_, n)(CAT(ASH_, n)(x))
#else
#define CONV(n, x, e0, s, m) CAT(f16_bits_, n)(CAT(CVU_, n)(x))
#endif
#elif SDT == SDT_Q8
#define RAWT(n) CAT(CT_, n)
#define RAW(n, row, e0) LDV(char, n, (__global const char *)(row) + (e0))
#define CONV(n, x, e0, s, m) (CAT(CVF_, n)(x) * (s))
#else
#define RAWT(n) CAT(UT_, n)
#define RAW(n, row, e0) LDV(uchar, n, (row) + ((e0) / 32) * 16 + ((e0) & 15))
#define CONV(n, x, e0, s, m)                                                                  \
    (CAT(CVF_, n)(((x) >> (CAT(UT_, n))(((e0) & 16) >> 2)) & (CAT(UT_, n))15) * (s) + (m))
#endif
#define SCALE(meta, e0)                                                                        \
    vload_half(SDT == SDT_Q4 ? 2 * ((e0) / 32) : (e0) / 32, (__global const half *)(meta))
#define MINV(meta, e0)                                                                         \
    (SDT == SDT_Q4 ? vload_half(2 * ((e0) / 32) + 1, (__global const half *)(meta)) : 0.0f)
#define KRT RAWT(KCW)
#define VRT RAWT(VCW)
/* Piece (x, i)'s block scale or minimum from the array a loaded with it
 * (Q8/Q4); unquantised pieces have neither (CONV ignores them). */
#if QUANT
#define PIECE_META(a, x, i) (a)[x][i]
#else
#define PIECE_META(a, x, i) 0.0f
#endif

#if SDT == SDT_F16 && F16CVT == 0
DEFINE_F16_BITS_(KCW)
#if VCW != KCW
DEFINE_F16_BITS_(VCW)
#endif
#endif

inline int key_visible(int flags, long diag, long j, long wl, long wr, long sink_tokens)
{
    if ((flags & F_CAUSAL) && j > diag)
        return 0;
    if (j < sink_tokens)
        return 1;
    if (wl >= 0 && j < diag - wl)
        return 0;
    if (wr >= 0 && j > diag + wr)
        return 0;
    return 1;
}

#if SDT == SDT_Q8 || SDT == SDT_Q4
#define NLOC 4                          /* K row, V row, K meta, V meta */
#else
#define NLOC 2                          /* K row, V row */
#endif

/* Where key u of the scanned range lives: its position j, its logical
 * position pos in the sequence (past the sinks: in the window), and the
 * index of its page in the task's page table. A key past the chunk's end
 * k1 gets the place of key uf (the tile's first, always in the chunk):
 * every load of a tile is then unconditional, which lets the compiler issue
 * them all before the first is used (a load under a branch waits for the
 * loads before it), and its weight is 0 (j = -1). */
typedef struct key_place { long j, pos, lp; int pi; } key_place;

inline key_place place_key(long u, long uf, long k1, long ns, long lo, long nsk, long ws, long ps,
                           long spg, long fw)
{
    key_place k;
    const long ue = u < k1 ? u : uf;
    const long j = ue < ns ? ue : lo + (ue - ns);
    k.pos = j < nsk ? j : ws + (j - nsk);
    /* 32-bit division where it fits: 64-bit is emulated on GPUs */
    k.lp = k.pos <= INT_MAX && ps <= INT_MAX ? (long)((int)k.pos / (int)ps) : k.pos / ps;
    k.pi = (int)(k.lp < spg ? k.lp : spg + (k.lp - fw));
    k.j = u < k1 ? j : -1;
    return k;
}

/* The pool byte offsets of the key's K and V rows (and metas) into loc[0..
 * NLOC) (stride W), from its pool page: computed once per key, so that the
 * loads of a row add one offset. */
inline void store_loc(__local long *loc, key_place k, int page, long ps, long page_bytes,
                      long kp, long vp, long k_row, long v_row, long k_meta_off,
                      long v_meta_off, long k_meta_row, long v_meta_row)
{
    const long base = page * page_bytes, slot = k.pos - k.lp * ps;
    loc[0] = base + kp + slot * k_row;
    loc[W] = base + vp + slot * v_row;
#if NLOC == 4
    loc[2 * W] = base + kp + k_meta_off + slot * k_meta_row;
    loc[3 * W] = base + vp + v_meta_off + slot * v_meta_row;
#endif
}

/* dst[0..RB) = the RB floats of key k in buf (scores or weights, by key):
 * 16-byte local reads when RB is a multiple of 4 */
#if RB % 4 == 0
#define ROW_READ(dst, buf, k)                                                                 \
    UNROLL for (int q_ = 0; q_ < RB / 4; q_++) vstore4(vload4((k) * (RB / 4) + q_, buf), 0,   \
                                                      (dst) + 4 * q_)
#else
#define ROW_READ(dst, buf, k) UNROLL for (int q_ = 0; q_ < RB; q_++) (dst)[q_] = (buf)[(k) * RB + q_]
#endif

/* A key's row and meta addresses from its locations */
#if NLOC == 4
#define KMETA(pa, k) (pool + loc[pa][2][k])
#define VMETA(pa, k) (pool + loc[pa][3][k])
#else
#define KMETA(pa, k) pool
#define VMETA(pa, k) pool
#endif

/* the V pieces of the tile's keys for this work-item's slot and columns,
 * raw, into vr (and their scales) */
#if QUANT
#define V_QUANT_LOAD(x, i, k, c)                                                              \
    vsc[x][i] = SCALE(VMETA(pa, k), (c) * VCW);                                               \
    vmn[x][i] = MINV(VMETA(pa, k), (c) * VCW);
#else
#define V_QUANT_LOAD(x, i, k, c)
#endif
#define LOAD_V_TILE()                                                                         \
    UNROLL                                                                                    \
    for (int x = 0; x < W / KS; x++) {                                                        \
        const int k = vs + KS * x;                                                            \
        __global const uchar *row = pool + loc[pa][1][k];                                     \
        UNROLL                                                                                \
        for (int i = 0; i < VI; i++) {                                                        \
            const int c = vl + i * VL;                                                        \
            if (NVC % VL == 0 || c < NVC) {                                                   \
                vr[x][i] = RAW(VCW, row, c * VCW);                                            \
                V_QUANT_LOAD(x, i, k, c)                                                      \
            }                                                                                 \
        }                                                                                     \
    }

__kernel __attribute__((reqd_work_group_size(W, 1, 1)))
void attn_decode_chunk(__global const uchar *pool,
                       __global const long *seqtab, __global const int *itab, long task_off,
                       long page_off, __global const float *ftab, long head_off,
                       __global const uchar *q, int q_dt, long q_off,
                       long q0, long q1, long q2, long q3,
                       __global float *part, long ml_off,
                       int flags, int sq, int hq, int group, long chunk,
                       float scale, float softcap, float sigmoid_bias,
                       long wl, long wr, long sink_tokens, long ps, long page_bytes,
                       long k_plane, long v_plane0, long v_plane,
                       long k_row, long v_row, long k_meta_off, long v_meta_off,
                       long k_meta_row, long v_meta_row)
{
    __local float qs[RB * D];               /* the query rows, scaled */
    __local float pbuf[RED_N];              /* partial dot products by key; the merges at the end */
    __local float sb[W * RB] __attribute__((aligned(16)));   /* scores by key */
    __local float pb[W * RB] __attribute__((aligned(16)));   /* weights by key */
    __local long loc[2][NLOC][W];           /* by tile parity: read while the next fills */

    const int lid = get_local_id(0), lane = lid % LP, g = lid / LP, vs = lid / VL, vl = lid % VL;
    const int task = get_group_id(0);
    __global const int *tk = itab + task_off + 4 * task;
    const int b = tk[0], hk = tk[1], ch = tk[2], rb = tk[3];
    __global const long *st = seqtab + SEQW * b;
    const long L = st[0], ns = st[1], lo = st[2], nsk = st[3], ws = st[4];
    const long spg = st[5], fw = st[6], pt = page_off + st[7];
    const long nkeys = ns + L - lo, k0 = ch * chunk;
    const long k1 = min(nkeys, k0 + chunk);
    const int nr = sq * group, softmax = !(flags & F_SIGMOID);
    __global const float *alibi = ftab + head_off, *sinks = ftab + head_off + hq;
    __global const int *pages = itab + pt;
    const long kp = hk * k_plane, vp = v_plane0 + hk * v_plane;

    /* the block's query rows, scaled, through local memory into registers.
     * All of a work-item's QN loads are issued before the first is used,
     * under one branch on the dtype: loaded one at a time through
     * attn_load's branches, each waited for the one before it (QN memory
     * latencies at the start of every work-group). Elements past the rows
     * (x >= RB * D or row rr >= nr) load a valid element and store 0.
     * At most QB loads at once, to bound the registers. */
    for (int n0 = 0; n0 < QN; n0 += QB) {
        long qi[QB];
        float qx[QB];
        UNROLL
        for (int n = 0; n < QB; n++) {
            const int x = lid + (n0 + n) * W, r = x / D, e = x % D, rr = rb * RB + r;
            const int rc = x < RB * D && rr < nr ? rr : 0;
            qi[n] = q_off + b * q0 + (rc / group) * q1 + (hk * group + rc % group) * q2 + e * q3;
        }
        if (q_dt == DT_F32)
            UNROLL for (int n = 0; n < QB; n++) qx[n] = ((__global const float *)q)[qi[n]];
        else if (q_dt == DT_F16)
            UNROLL for (int n = 0; n < QB; n++) qx[n] = vload_half(qi[n], (__global const half *)q);
        else if (q_dt == DT_BF16)
            UNROLL for (int n = 0; n < QB; n++)
                qx[n] = attn_bf16_to_f32(((__global const ushort *)q)[qi[n]]);
        else
            UNROLL for (int n = 0; n < QB; n++) qx[n] = (float)q[qi[n]];
        UNROLL
        for (int n = 0; n < QB; n++) {
            const int x = lid + (n0 + n) * W;
            if (x < RB * D)
                qs[x] = rb * RB + x / D < nr ? scale * qx[n] : 0.0f;
        }
    }
#define PLACE(u, uf) place_key(u, uf, k1, ns, lo, nsk, ws, ps, spg, fw)
#define STORE_LOC(pa, kpl, page)                                                              \
    store_loc(&loc[pa][0][lid], kpl, page, ps, page_bytes, kp, vp, k_row, v_row, k_meta_off, \
              v_meta_off, k_meta_row, v_meta_row)
    /* this work-item's key of the first tile located now; its key of the
     * next tile is placed and its page-table entry loaded one tile ahead,
     * so that the entry's latency hides behind a tile */
    key_place kc = PLACE(k0 + lid, k0), kn = PLACE(k0 + W + lid, k0 + W < k1 ? k0 + W : k0);
    STORE_LOC(0, kc, pages[kc.pi]);
    int page_n = pages[kn.pi];
    long jt = kc.j;
    barrier(CLK_LOCAL_MEM_FENCE);
    KFT qv[RB][KI];
    UNROLL
    for (int r = 0; r < RB; r++)
        UNROLL
        for (int i = 0; i < KI; i++) {
            const int c = lane + i * LP;
            qv[r][i] = c < NKC ? CAT(VLD_, KCW)(qs + r * D + c * KCW) : (KFT)0.0f;
        }

    /* the running max m is the same on every work-item (computed from the
     * same scores); l sums this work-item's own keys */
    float m[RB], l[RB];
    VFT acc[RB][VI];
    UNROLL
    for (int r = 0; r < RB; r++) {
        const int rr = rb * RB + r;
        const long h = hk * group + rr % group;
        const int sink = ch == 0 && (flags & F_SINKS) && rr < nr && softmax;
        m[r] = sink ? sinks[h] : -INFINITY;
        l[r] = sink && lid == 0 ? 1.0f : 0.0f;
        UNROLL
        for (int i = 0; i < VI; i++)
            acc[r][i] = (VFT)0.0f;
    }

    for (long u0 = k0, it = 0; u0 < k1; u0 += W, it++) {
        const int pa = (int)(it & 1);
        /* QK: this lane's pieces of the group's keys, all loads first, then
         * the partial dot products; with VEARLY the tile's V pieces are
         * loaded here too, so that their latency overlaps the softmax
         * instead of following it (more registers) */
        VRT vr[W / KS][VI];
#if QUANT
        float vsc[W / KS][VI], vmn[W / KS][VI];
#endif
        KRT kr[KPT][KI];
#if QUANT
        float ksc[KPT][KI], kmn[KPT][KI];
#endif
        UNROLL
        for (int x = 0; x < KPT; x++) {
            const int k = g + x * KG;
            __global const uchar *row = pool + loc[pa][0][k];
            UNROLL
            for (int i = 0; i < KI; i++) {
                const int c = lane + i * LP;
                if (NKC % LP == 0 || c < NKC) {
                    kr[x][i] = RAW(KCW, row, c * KCW);
#if QUANT
                    ksc[x][i] = SCALE(KMETA(pa, k), c * KCW);
                    kmn[x][i] = MINV(KMETA(pa, k), c * KCW);
#endif
                }
            }
        }
#if VEARLY
        LOAD_V_TILE();
#endif
        UNROLL
        for (int x = 0; x < KPT; x++) {
            const int k = g + x * KG;
            float pd[RB];
            UNROLL
            for (int r = 0; r < RB; r++)
                pd[r] = 0.0f;
            UNROLL
            for (int i = 0; i < KI; i++) {
                const int c = lane + i * LP;
                if (NKC % LP == 0 || c < NKC) {
                    const KFT kv = CONV(KCW, kr[x][i], c * KCW, PIECE_META(ksc, x, i),
                                        PIECE_META(kmn, x, i));
                    UNROLL
                    for (int r = 0; r < RB; r++)
                        pd[r] = KDOT(pd[r], qv[r][i], kv);
                }
            }
            UNROLL
            for (int r = 0; r < RB; r++)
                pbuf[k * PST + lane * RB + r] = pd[r];
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* S: the scores of this work-item's key; then it locates its key of
         * the next tile (into the other parity: its last readers, the
         * previous tile's QK and PV, are past this tile's first barrier) */
        float s[RB];
        UNROLL
        for (int r = 0; r < RB; r++) {
            const int rr = rb * RB + r;
            float x = -INFINITY;
            if (jt >= 0 && rr < nr) {
                x = 0.0f;
                UNROLL
                for (int j = 0; j < LP; j++)
                    x += pbuf[lid * PST + j * RB + r];
                const long i = rr / group, h = hk * group + rr % group, diag = i + L - sq;
                if (flags & F_SOFTCAP)
                    x = softcap * tanh(x / softcap);
                if (flags & F_ALIBI)
                    x -= alibi[h] * (float)abs(diag - jt);
                if (!key_visible(flags, diag, jt, wl, wr, sink_tokens))
                    x = -INFINITY;
            }
            s[r] = x;
            sb[lid * RB + r] = x;
        }
        if (u0 + W < k1) {
            STORE_LOC(pa ^ 1, kn, page_n);
            jt = kn.j;
            const long u2 = u0 + 2 * W;
            kn = PLACE(u2 + lid, u2 < k1 ? u2 : u0 + W);
            page_n = pages[kn.pi];
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* P: running max over the tile's scores, the rescale factor, and
         * this work-item's weights (sigmoid as e/(1+e) or 1/(1+e), e =
         * exp(-|x|): no overflow) */
        float alpha[RB], mt[RB];
        UNROLL
        for (int r = 0; r < RB; r++)
            mt[r] = m[r];
        if (softmax)
            UNROLL
            for (int k = 0; k < W; k++) {
                float sk[RB];
                ROW_READ(sk, sb, k);
                UNROLL
                for (int r = 0; r < RB; r++)
                    mt[r] = fmax(mt[r], sk[r]);
            }
        UNROLL
        for (int r = 0; r < RB; r++) {
            float p = 0.0f, a = 1.0f;
            if (softmax) {
                a = mt[r] == -INFINITY || mt[r] == m[r] ? 1.0f : exp(m[r] - mt[r]);
                m[r] = mt[r];
                if (s[r] != -INFINITY)
                    p = exp(s[r] - mt[r]);
            } else if (s[r] != -INFINITY) {
                const float y = s[r] + sigmoid_bias, e = exp(-fabs(y));
                p = (y >= 0.0f ? 1.0f : e) / (1.0f + e);
            }
            alpha[r] = a;
            l[r] = l[r] * a + p;
            pb[lid * RB + r] = p;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* PV over the tile's keys, this work-item's columns */
        UNROLL
        for (int r = 0; r < RB; r++)
            UNROLL
            for (int i = 0; i < VI; i++)
                acc[r][i] *= alpha[r];
#if !VEARLY
        LOAD_V_TILE();
#endif
        UNROLL
        for (int x = 0; x < W / KS; x++) {
            const int k = vs + KS * x;
            float pk[RB];
            ROW_READ(pk, pb, k);
            UNROLL
            for (int i = 0; i < VI; i++) {
                const int c = vl + i * VL;
                if (NVC % VL == 0 || c < NVC) {
                    const VFT vv = CONV(VCW, vr[x][i], c * VCW, PIECE_META(vsc, x, i),
                                        PIECE_META(vmn, x, i));
                    UNROLL
                    for (int r = 0; r < RB; r++)
                        acc[r][i] += pk[r] * vv;
                }
            }
        }
    }

    /* the task's partial: O summed over the key slots, l over the work-items */
    __global float *po = part + (long)task * RB * DV;
    __global float *pml = part + ml_off + (long)task * RB * 2;
    if (KS == 1) {
        UNROLL
        for (int r = 0; r < RB; r++)
            UNROLL
            for (int i = 0; i < VI; i++) {
                const int c = vl + i * VL;
                if (c < NVC)
                    CAT(VST_, VCW)(acc[r][i], po + r * DV + c * VCW);
            }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (KS > 1) {
        UNROLL
        for (int r = 0; r < RB; r++)
            UNROLL
            for (int i = 0; i < VI; i++) {
                const int c = vl + i * VL;
                if (c < NVC)
                    CAT(VST_, VCW)(acc[r][i], pbuf + (vs * RB + r) * DV + c * VCW);
            }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int e = lid; e < RB * DV; e += W) {
            float sum = 0.0f;
            for (int v = 0; v < KS; v++)
                sum += pbuf[v * RB * DV + e];
            po[e] = sum;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    UNROLL
    for (int r = 0; r < RB; r++)
        pbuf[r * W + lid] = l[r];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = lid; r < RB; r += W) {
        float sum = 0.0f;
        for (int k = 0; k < W; k++)
            sum += pbuf[r * W + k];
        pml[2 * r] = m[r];
        pml[2 * r + 1] = sum;
    }
}

/* One work-group of MWG work-items per (output row (b, i, h), block of CCB
 * columns): merges the chunks of its (b, kv head, row block) with their
 * log-sum-exp, normalises, gates and stores. A long sequence has hundreds
 * of chunks, so the work-items split them: work-item (slice s, column e)
 * sums chunks s, s + NSL, ... of column e, four independent loads in
 * flight; the slices are added through local memory at the end. The
 * chunks' weights go through local memory MWG at a time. */
#define NSL (MWG / CCB)
__kernel __attribute__((reqd_work_group_size(MWG, 1, 1)))
void attn_decode_combine(__global const long *seqtab, __global const float *part,
                         long ml_off, int flags, int sq, int hq, int group, int nrb,
                         __global uchar *out, int o_dt, long o_off,
                         long o0, long o1, long o2, long o3,
                         __global const uchar *gate, int g_dt, long g_off,
                         long g0, long g1, long g2, long g3,
                         __global float *lse, long l_off, long l0, long l1, long l2)
{
    __local float w[MWG], red[MWG];
    const int lid = get_local_id(0), e = lid % CCB, sl = lid / CCB;
    const int ncb = (DV + CCB - 1) / CCB;
    const long row = get_group_id(0) / ncb;
    const int col = (int)(get_group_id(0) % ncb) * CCB + e;
    const long h = row % hq, i = (row / hq) % sq, b = row / ((long)hq * sq);
    const long hk = h / group, rr = i * group + h % group, rb = rr / RB, r = rr % RB;
    __global const long *st = seqtab + SEQW * b;
    const long t0 = st[8], nch = st[9];
    const int softmax = !(flags & F_SIGMOID);
    /* task of chunk c: t0 + (hk * nch + c) * nrb + rb; its (m, l) and O row */
#define ML(c) (part + ml_off + ((t0 + (hk * nch + (c)) * nrb + rb) * RB + r) * 2)
#define OROW(c) (part + ((t0 + (hk * nch + (c)) * nrb + rb) * RB + r) * DV)

    float mx = -INFINITY;
    for (long c = lid; c < nch; c += MWG)
        mx = fmax(mx, ML(c)[0]);
    red[lid] = mx;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int n = MWG / 2; n > 0; n /= 2) {
        if (lid < n)
            red[lid] = fmax(red[lid], red[lid + n]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    mx = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);

    float lpart = 0.0f, acc = 0.0f;
    for (long c0 = 0; c0 < nch; c0 += MWG) {
        const long c = c0 + lid;
        float wc = 0.0f;
        if (c < nch) {
            wc = 1.0f;
            if (softmax) {
                const float mc = ML(c)[0];
                wc = mc == -INFINITY ? 0.0f : exp(mc - mx);
                lpart += wc * ML(c)[1];
            }
        }
        w[lid] = wc;
        barrier(CLK_LOCAL_MEM_FENCE);
        const int n = (int)min((long)MWG, nch - c0);
        if (col < DV) {
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            int j = sl;
            for (; j + 3 * NSL < n; j += 4 * NSL) {
                s0 += w[j] * OROW(c0 + j)[col];
                s1 += w[j + NSL] * OROW(c0 + j + NSL)[col];
                s2 += w[j + 2 * NSL] * OROW(c0 + j + 2 * NSL)[col];
                s3 += w[j + 3 * NSL] * OROW(c0 + j + 3 * NSL)[col];
            }
            for (; j < n; j += NSL)
                s0 += w[j] * OROW(c0 + j)[col];
            acc += (s0 + s1) + (s2 + s3);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#undef ML
#undef OROW
    red[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    float y = 0.0f;
    if (sl == 0)
        for (int k = 0; k < NSL; k++)
            y += red[k * CCB + e];
    barrier(CLK_LOCAL_MEM_FENCE);
    red[lid] = lpart;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int n = MWG / 2; n > 0; n /= 2) {
        if (lid < n)
            red[lid] += red[lid + n];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float lsum = red[0];
    const float inv = !softmax ? 1.0f : lsum > 0.0f ? 1.0f / lsum : 0.0f;
    if (sl == 0 && col < DV) {
        y *= inv;
        if (flags & F_GATE) {
            const float g = attn_load(gate, g_dt, g_off + b * g0 + i * g1 + h * g2 + col * g3);
            y *= 1.0f / (1.0f + exp(-g));
        }
        attn_store(out, o_dt, o_off + b * o0 + i * o1 + h * o2 + col * o3, y);
    }
    if ((flags & F_LSE) && lid == 0 && get_group_id(0) % ncb == 0)
        lse[l_off + b * l0 + h * l1 + i * l2] = lsum > 0.0f ? mx + log(lsum) : -INFINITY;
}
