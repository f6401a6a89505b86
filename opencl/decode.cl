/* attn_decode: split-KV flash decoding over the paged KV cache (OpenCL C 1.2).
 *
 * attn_decode_chunk: one work-group per task (sequence b, kv head hk, chunk
 * of the sequence's scanned keys, block of RB query rows). The RB rows are
 * the Sq x Hq/Hkv query rows that share head hk, so every K and V row of
 * the chunk is read from memory once for all of them. Keys go in tiles of
 * TK; a work-item is (key group kg, lane): the LR lanes of a key group read
 * one cache row together, CW consecutive elements each (wide, coalesced
 * loads; Q8/Q4 dequantised in registers), so the row is covered by KI (K)
 * or VI (V) loads per lane.
 *   1  page base and slot of each key of the tile (from the host's table),
 *      done for the next tile during this one's softmax
 *   2  QK: each lane's partial dot products for its keys and RB rows
 *   3  scores: partials summed over the lanes; soft-cap, ALiBi, visibility
 *   4  online softmax: the row owners update the running max and rescale
 *   5  P = exp(s - m) (or sigmoid(s + bias))
 *   6  PV: each work-item accumulates its columns of O over its keys, in
 *      registers; the key groups' accumulators are summed once per chunk.
 * With VEARLY the V rows of the tile are loaded in step 2, right after the
 * K rows, into registers (16-bit types as raw bits): their latency then
 * overlaps the K loads' and the softmax steps instead of following them.
 * With KPREF each work-item's K chunks of the next tile are loaded into
 * registers once step 3 has located them, so step 2 finds them there.
 * The unnormalised partial (O, m, l) of each task goes to scratch;
 * attn_decode_combine merges the chunks with their log-sum-exp, normalises,
 * gates and stores out (and lse).
 *
 * Host tables (src/opencl/decode.c): per sequence SEQW longs (kept length
 * L, sinks scanned ns, window start lo of the scanned keys, kept sink
 * tokens nsk, window start position ws, sink pages sp, first window page
 * fw, page-table start, first task, chunks); per task 4 ints (b, hk,
 * chunk, row block); page table: pool page of each logical page, sink pages
 * [0, sp) then window pages from fw.
 *
 * Compile-time: D, DV, SDT (cache dtype), CW, LR, WG, TK, RB, VEARLY, KPREF,
 * F16CVT; MWG and CCB (combine). */

#define SEQW 10
#define SDT_F32  0
#define SDT_F16  1
#define SDT_BF16 2
#define SDT_Q8   4
#define SDT_Q4   5

#define NKC (D / CW)                    /* CW-element chunks of a K row */
#define NVC (DV / CW)
#define KI ((NKC + LR - 1) / LR)        /* chunks per lane */
#define VI ((NVC + LR - 1) / LR)
#define KG (WG / LR)                    /* key groups */
#define KPT (TK / KG)                   /* keys per work-item per tile */
#define RED_W (LR + 1)                  /* padded: lane partials of one (row, key) */
#define RED_QK (RB * TK * RED_W)
#define RED_O (KG * (DV + 1))
#define RED_A (RED_QK > RED_O ? RED_QK : RED_O)
#define RED_N (RED_A > RB * D ? RED_A : RB * D)

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
#if CW == 1
#define VT float
#define UT uchar
#define IT uint
#define VLOAD(p) (*(p))
#define VCONVERT(x) convert_float(x)
#define VAS_FLOAT(x) as_float(x)
#define VAS_UINT(x) as_uint(x)
#define VCONVERT_UINT(x) convert_uint(x)
#define VSTORE(v, p) (*(p) = (v))
#define VDOT(a, b) ((a) * (b))
#else
#define VT CAT(float, CW)
#define UT CAT(uchar, CW)
#define IT CAT(uint, CW)
#define VLOAD(p) CAT(vload, CW)(0, p)
#define VCONVERT(x) CAT(convert_float, CW)(x)
#define VAS_FLOAT(x) CAT(as_float, CW)(x)
#define VAS_UINT(x) CAT(as_uint, CW)(x)
#define VCONVERT_UINT(x) CAT(convert_uint, CW)(x)
#define VSTORE(v, p) CAT(vstore, CW)(v, 0, p)
#if CW == 8
#define VDOT(a, b) (dot((a).lo, (b).lo) + dot((a).hi, (b).hi))
#else
#define VDOT(a, b) dot(a, b)
#endif
#endif

/* f16 bits to f32 without vload_half, so that CW values come from one
 * vector load on every driver: the 15 magnitude bits moved to a float's
 * exponent and mantissa position, rebiased by a multiply by 2^112 (exact,
 * subnormals included); inf and NaN keep the top exponent. */
inline VT f16_bits_to_float(IT u)
{
    const IT a = (u & 0x7fffu) << 13;
    const VT f = select(VAS_FLOAT(a) * 0x1p112f, VAS_FLOAT(a | 0x7f800000u), a >= 0x0f800000u);
    return VAS_FLOAT(VAS_UINT(f) | ((u & 0x8000u) << 16));
}

/* f16 conversion (F16CVT): 0 the bit arithmetic above; 1 vload_half (the
 * driver's loads and conversion: values, not bits, come back); 2 raw bits
 * reinterpreted as half (cl_khr_fp16) and converted by the hardware. */
#ifndef F16CVT
#define F16CVT 0
#endif
#if SDT == SDT_F16 && F16CVT == 2
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif

/* RT: a row chunk as loaded, before its conversion to float (raw_value):
 * the bits of 16-bit types (half the registers of floats), the values of
 * the others. */
#if (SDT == SDT_F16 && F16CVT != 1) || SDT == SDT_BF16
#if CW == 1
#define RT ushort
#else
#define RT CAT(ushort, CW)
#endif
inline VT raw_value(RT x)
{
#if SDT == SDT_F16 && F16CVT == 2 && CW == 1
    return convert_float(as_half(x));
#elif SDT == SDT_F16 && F16CVT == 2
    return VCONVERT(CAT(as_half, CW)(x));
#elif SDT == SDT_F16
    return f16_bits_to_float(VCONVERT_UINT(x));
#else
    return VAS_FLOAT(VCONVERT_UINT(x) << 16);
#endif
}
#else
#define RT VT
#define raw_value(x) (x)
#endif

/* Elements e0 .. e0+CW-1 of a stored row (data at row, meta at meta), as RT. */
inline RT load_raw(__global const uchar *row, __global const uchar *meta, int e0)
{
#if SDT == SDT_F32
    return VLOAD((__global const float *)row + e0);
#elif SDT == SDT_F16 && F16CVT == 1 && CW == 1
    return vload_half(e0, (__global const half *)row);
#elif SDT == SDT_F16 && F16CVT == 1
    return CAT(vload_half, CW)(0, (__global const half *)row + e0);
#elif SDT == SDT_F16 || SDT == SDT_BF16
    return VLOAD((__global const ushort *)row + e0);
#elif SDT == SDT_Q8
    const float s = vload_half(e0 / 32, (__global const half *)meta);
    return VCONVERT(VLOAD((__global const char *)row + e0)) * s;
#else
    /* block b = e0/32: byte t holds element 32b+t (low nibble) and 32b+t+16 (high) */
    const int blk = e0 / 32, t = e0 % 32;
    const float s = vload_half(2 * blk, (__global const half *)meta);
    const float m = vload_half(2 * blk + 1, (__global const half *)meta);
    const UT by = VLOAD(row + blk * 16 + (t & 15));
    if (t < 16)
        return VCONVERT(by & (UT)15) * s + m;
    return VCONVERT(by >> (UT)4) * s + m;
#endif
}

#define load_chunk(row, meta, e0) raw_value(load_raw(row, meta, e0))

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

/* 1: where each key of the tile at u0 lives: its page's byte offset in the
 * pool and its slot, j = -1 past the chunk's end k1. */
inline void locate_keys(__local long *kbase, __local long *kj, __local int *kslot, int lid,
                        long u0, long k1, long ns, long lo, long nsk, long ws, long ps, long spg,
                        long fw, __global const int *pages, long page_bytes)
{
    for (int x = lid; x < TK; x += WG) {
        const long u = u0 + x;
        long j = -1;
        if (u < k1) {
            j = u < ns ? u : lo + (u - ns);
            const long pos = j < nsk ? j : ws + (j - nsk);
            /* 32-bit division where it fits: 64-bit is emulated on GPUs */
            const long lp = pos <= INT_MAX && ps <= INT_MAX ? (long)((int)pos / (int)ps)
                                                            : pos / ps;
            const long page = pages[lp < spg ? lp : spg + (lp - fw)];
            kbase[x] = page * page_bytes;
            kslot[x] = (int)(pos - lp * ps);
        }
        kj[x] = j;
    }
}

#if KPREF
/* This work-item's K chunks of a located tile, as loaded (RT), zero for
 * keys past the chunk. */
inline void load_k_tile(RT kr[KPT][KI], __global const uchar *pool, __local const long *kbase,
                        __local const long *kj, __local const int *kslot, int kg, int lane,
                        long plane, long k_row, long k_meta_off, long k_meta_row)
{
    UNROLL
    for (int x = 0; x < KPT; x++) {
        const int k = kg + x * KG;
        const long base = kbase[k] + plane, slot = kslot[k];
        __global const uchar *row = pool + base + slot * k_row;
        __global const uchar *meta = pool + base + k_meta_off + slot * k_meta_row;
        UNROLL
        for (int i = 0; i < KI; i++) {
            const int c = lane + i * LR;
            kr[x][i] = (RT)0;
            if (kj[k] >= 0 && c < NKC)
                kr[x][i] = load_raw(row, meta, c * CW);
        }
    }
}
#endif

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
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
    __local float red[RED_N];
    __local float sp_[RB * TK];             /* scores, then probabilities */
    __local float rowm[RB], rowa[RB];
    __local long kbase[2][TK], kj[2][TK];   /* by tile parity: read while the next fills */
    __local int kslot[2][TK];

    const int lid = get_local_id(0), lane = lid % LR, kg = lid / LR;
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

    /* the block's query rows, scaled, through local memory into registers */
    for (int x = lid; x < RB * D; x += WG) {
        const int r = x / D, e = x % D, rr = rb * RB + r;
        float v = 0.0f;
        if (rr < nr) {
            const long i = rr / group, h = hk * group + rr % group;
            v = scale * attn_load(q, q_dt, q_off + b * q0 + i * q1 + h * q2 + e * q3);
        }
        red[x] = v;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    VT qv[RB][KI];
    UNROLL
    for (int r = 0; r < RB; r++)
        UNROLL
        for (int i = 0; i < KI; i++) {
            const int c = lane + i * LR;
            qv[r][i] = c < NKC ? VLOAD(red + r * D + c * CW) : (VT)0.0f;
        }
    float lacc[RB];
    VT acc[RB][VI];
    UNROLL
    for (int r = 0; r < RB; r++) {
        const int rr = rb * RB + r;
        const long h = hk * group + rr % group;
        const int sink = ch == 0 && (flags & F_SINKS) && rr < nr && softmax;
        lacc[r] = sink && lid == 0 ? 1.0f : 0.0f;
        if (lid == 0)
            rowm[r] = sink ? sinks[h] : -INFINITY;
        UNROLL
        for (int i = 0; i < VI; i++)
            acc[r][i] = (VT)0.0f;
    }
    if (k0 < k1)
        locate_keys(kbase[0], kj[0], kslot[0], lid, k0, k1, ns, lo, nsk, ws, ps, spg, fw,
                    itab + pt, page_bytes);
    barrier(CLK_LOCAL_MEM_FENCE);
#if KPREF
    RT kr[KPT][KI];
    if (k0 < k1)
        load_k_tile(kr, pool, kbase[0], kj[0], kslot[0], kg, lane, hk * k_plane, k_row,
                    k_meta_off, k_meta_row);
#endif

    for (long u0 = k0, it = 0; u0 < k1; u0 += TK, it++) {
        const int pb = (int)(it & 1);
        /* 2: QK partial dot products of this lane's chunks */
#if VEARLY
        RT vr[KPT][VI];
        UNROLL
        for (int x = 0; x < KPT; x++) {
            const int k = kg + x * KG;
            const long base = kbase[pb][k] + v_plane0 + hk * v_plane;
            const long slot = kslot[pb][k];
            __global const uchar *row = pool + base + slot * v_row;
            __global const uchar *meta = pool + base + v_meta_off + slot * v_meta_row;
            UNROLL
            for (int i = 0; i < VI; i++) {
                const int c = lane + i * LR;
                vr[x][i] = (RT)0;
                if (kj[pb][k] >= 0 && c < NVC)
                    vr[x][i] = load_raw(row, meta, c * CW);
            }
        }
#endif
        UNROLL
        for (int x = 0; x < KPT; x++) {
            const int k = kg + x * KG;
            float pd[RB];
            UNROLL
            for (int r = 0; r < RB; r++)
                pd[r] = 0.0f;
            if (kj[pb][k] >= 0) {
#if !KPREF
                const long base = kbase[pb][k] + hk * k_plane;
                const long slot = kslot[pb][k];
                __global const uchar *row = pool + base + slot * k_row;
                __global const uchar *meta = pool + base + k_meta_off + slot * k_meta_row;
#endif
                UNROLL
                for (int i = 0; i < KI; i++) {
                    const int c = lane + i * LR;
                    if (c < NKC) {
#if KPREF
                        const VT kv = raw_value(kr[x][i]);
#else
                        const VT kv = load_chunk(row, meta, c * CW);
#endif
                        UNROLL
                        for (int r = 0; r < RB; r++)
                            pd[r] += VDOT(qv[r][i], kv);
                    }
                }
            }
            UNROLL
            for (int r = 0; r < RB; r++)
                red[(r * TK + k) * RED_W + lane] = pd[r];
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* 1 of the next tile, into the other parity (its last readers, the
         * previous tile's step 6, are done): the page-table loads overlap
         * the softmax steps instead of opening the next tile */
        if (u0 + TK < k1)
            locate_keys(kbase[pb ^ 1], kj[pb ^ 1], kslot[pb ^ 1], lid, u0 + TK, k1, ns, lo, nsk,
                        ws, ps, spg, fw, itab + pt, page_bytes);

        /* 3: scores */
        for (int x = lid; x < RB * TK; x += WG) {
            const int r = x / TK, k = x % TK, rr = rb * RB + r;
            const long j = kj[pb][k];
            float s = -INFINITY;
            if (j >= 0 && rr < nr) {
                s = 0.0f;
                for (int l = 0; l < LR; l++)
                    s += red[x * RED_W + l];
                const long i = rr / group, h = hk * group + rr % group, diag = i + L - sq;
                if (flags & F_SOFTCAP)
                    s = softcap * tanh(s / softcap);
                if (flags & F_ALIBI)
                    s -= alibi[h] * (float)abs(diag - j);
                if (!key_visible(flags, diag, j, wl, wr, sink_tokens))
                    s = -INFINITY;
            }
            sp_[x] = s;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#if KPREF
        /* the next tile's K, located in step 3, in flight through 4 to 6 */
        if (u0 + TK < k1)
            load_k_tile(kr, pool, kbase[pb ^ 1], kj[pb ^ 1], kslot[pb ^ 1], kg, lane,
                        hk * k_plane, k_row, k_meta_off, k_meta_row);
#endif

        /* 4: running max and the rescale of what came before */
        for (int r = lid; r < RB; r += WG) {
            float a = 1.0f;
            if (softmax) {
                float mt = rowm[r];
                UNROLL
                for (int k = 0; k < TK; k++)
                    mt = fmax(mt, sp_[r * TK + k]);
                a = mt == -INFINITY || mt == rowm[r] ? 1.0f : exp(rowm[r] - mt);
                rowm[r] = mt;
            }
            rowa[r] = a;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* 5: probabilities (sigmoid as e/(1+e) or 1/(1+e), e = exp(-|x|): no overflow) */
        for (int x = lid; x < RB * TK; x += WG) {
            const float s = sp_[x];
            float p = 0.0f;
            if (s != -INFINITY) {
                if (softmax) {
                    p = exp(s - rowm[x / TK]);
                } else {
                    const float y = s + sigmoid_bias, e = exp(-fabs(y));
                    p = (y >= 0.0f ? 1.0f : e) / (1.0f + e);
                }
            }
            sp_[x] = p;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* 6: O = alpha O + P V over this work-item's keys and columns */
        UNROLL
        for (int r = 0; r < RB; r++) {
            const float a = rowa[r];
            lacc[r] *= a;
            UNROLL
            for (int i = 0; i < VI; i++)
                acc[r][i] *= a;
        }
        UNROLL
        for (int x = 0; x < KPT; x++) {
            const int k = kg + x * KG;
            if (kj[pb][k] < 0)
                continue;
#if !VEARLY
            const long base = kbase[pb][k] + v_plane0 + hk * v_plane;
            const long slot = kslot[pb][k];
            __global const uchar *row = pool + base + slot * v_row;
            __global const uchar *meta = pool + base + v_meta_off + slot * v_meta_row;
#endif
            UNROLL
            for (int i = 0; i < VI; i++) {
                const int c = lane + i * LR;
                if (c < NVC) {
#if VEARLY
                    const VT vv = raw_value(vr[x][i]);
#else
                    const VT vv = load_chunk(row, meta, c * CW);
#endif
                    UNROLL
                    for (int r = 0; r < RB; r++)
                        acc[r][i] += sp_[r * TK + k] * vv;
                }
            }
            if (lane == 0)
                UNROLL
                for (int r = 0; r < RB; r++)
                    lacc[r] += sp_[r * TK + k];
        }
    }

    /* the key groups' accumulators summed, row by row, into the task's partial */
    __global float *po = part + (long)task * RB * DV;
    __global float *pml = part + ml_off + (long)task * RB * 2;
    UNROLL
    for (int r = 0; r < RB; r++) {
        barrier(CLK_LOCAL_MEM_FENCE);
        UNROLL
        for (int i = 0; i < VI; i++) {
            const int c = lane + i * LR;
            if (c < NVC)
                VSTORE(acc[r][i], red + kg * (DV + 1) + c * CW);
        }
        if (lane == 0)
            red[kg * (DV + 1) + DV] = lacc[r];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int e = lid; e <= DV; e += WG) {
            float s = 0.0f;
            for (int g = 0; g < KG; g++)
                s += red[g * (DV + 1) + e];
            if (e < DV)
                po[r * DV + e] = s;
            else
                pml[2 * r + 1] = s;
        }
        if (lid == 0)
            pml[2 * r] = rowm[r];
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
