/* attn_sdpa: FlashAttention-2 on OpenCL C 1.2.
 *
 * A work-group of TX x TY work-items owns BQ = TY*RM query rows of one
 * head of one sequence and streams the keys in tiles of BK = TX*RN:
 *   S = Q K^T      Q and K staged through local memory transposed ([dim]
 *                  [row]), K in chunks of DC dims; work-item (tx, ty)
 *                  accumulates the RM x RN block of rows ty*RM.. and of its
 *                  keys KEY(0..RN) in registers. With QRES the whole Q block
 *                  is staged once and stays in local memory for every key
 *                  tile; otherwise it is restaged with each K chunk.
 *   S -> P         scale, soft-cap, ALiBi, masks and visibility applied in
 *                  registers; the row max is reduced across the TX
 *                  work-items of a row through local memory; online softmax
 *                  (running max m, running partial sum l) in registers.
 *   O += P V       P goes to local memory (transposed), V in chunks of KC
 *                  keys; each work-item owns rows ty*RM.. and the DVT
 *                  columns COL(0..DVT) of O.
 * Ownership of keys and columns: with RN (DVT) a multiple of 4, work-item tx
 * owns groups of 4 consecutive keys (columns) strided by 4*TX, so that the
 * float4 local reads of the work-items of a row fall on consecutive banks;
 * otherwise RN (DVT) consecutive ones. A work-item's RM rows are contiguous
 * at each dim (float4 reads and writes when RM is a multiple of 4).
 * Staging gives consecutive work-items consecutive rows of a tile, so the
 * transposed local stores hit consecutive banks; with F_VEC (unit innermost
 * strides, head dims multiples of 4) each loads four dims at a time. With
 * PREF >= 1 (F_VEC only) the next K chunk of the tile, with PREF >= 2 also
 * the next V chunk, with PREF 3 also the next restaged Q chunk, is read from
 * global memory into registers while the current one is multiplied (the V
 * and Q chunks' registers live across the O product).
 * The key range a block can see (causal / window / sink tokens) is computed
 * once: tiles outside it are skipped, tiles fully inside it skip the
 * per-element visibility test.
 *
 * Compile-time: D, DV, IN_DT, TX, TY, RM, RN, DC, KC, QRES, PREF, IDX_T, ALIGNED,
 * FEATS (the flags the program is for). */

#define BQ (TY * RM)
#define BK (TX * RN)
#define NT (TX * TY)
#define DVT ((DV + TX - 1) / TX)     /* O columns per work-item */
#define DVP (DVT * TX)               /* padded V tile row */
#define BQP (BQ + 4)                 /* transposed P row (padded) */
/* Row of the row-reduction array: padded by 4 when read as float4, so that
 * the rows of a warp's row groups start on different banks. */
#define REDP (TX % 4 == 0 ? TX + 4 : TX)
#define RUP4(n) (((n) + 3) / 4 * 4)
#define KOFF (QRES ? 0 : RUP4(DC * BQ))       /* K chunk after a staged Q chunk */
#define STAGE_QK (KOFF + DC * BK)
#define STAGE_V (KC * DVP)
#define STAGE (STAGE_QK > STAGE_V ? STAGE_QK : STAGE_V)
/* Local memory, in floats: [the resident Q] [stage: Q/K chunks or V chunks]
 * [P transposed] [row reductions]; every part 16-byte aligned. */
#define ST_AT (QRES ? RUP4(D * BQ) : 0)
#define P_AT (ST_AT + RUP4(STAGE))
#define RED_AT (P_AT + RUP4(BK * BQP))
#define LOCAL_LEN (RED_AT + RUP4(BQ * REDP))
/* float4s of a K (Q, V) chunk per work-item, with PREF; at least one. */
#define NUK (BK * (DC / 4) >= NT ? (BK * (DC / 4) + NT - 1) / NT : 1)
#define NUQ (BQ * (DC / 4) >= NT ? (BQ * (DC / 4) + NT - 1) / NT : 1)
#define NUV (KC * (DVP / 4) >= NT ? (KC * (DVP / 4) + NT - 1) / NT : 1)
#define PREF_Q (PREF >= 3 && QRES == 0)           /* Q chunks prefetched */

/* ALIGNED (host-checked: F_VEC views whose offsets and strides are
 * multiples of 4 elements): four elements by one 16- or 8-byte load.
 * vload4 needs only the element's alignment, so NVIDIA's driver splits it
 * into four loads. */
#ifndef ALIGNED
#define ALIGNED 0
#endif
#if ALIGNED && IN_DT == DT_F32
#undef LOAD_IN4
#define LOAD_IN4(p, i) (*(__global const float4 *)((p) + (i)))
#elif ALIGNED && IN_DT == DT_F16
inline float4 load_f16x4(__global const half *p)
{
    const uint2 w = *(__global const uint2 *)p;
    return vload_half4(0, (const __private half *)&w);
}
#undef LOAD_IN4
#define LOAD_IN4(p, i) load_f16x4((p) + (i))
#elif ALIGNED
#undef LOAD_IN4
#define LOAD_IN4(p, i) \
    as_float4(convert_uint4(as_ushort4(*(__global const uint2 *)((p) + (i)))) << 16)
#endif

#define F_CAUSAL   (1 << 0)
#define F_SIGMOID  (1 << 1)
#define F_ALIBI    (1 << 2)
#define F_SINKS    (1 << 3)
#define F_VARLEN   (1 << 4)
#define F_LSE      (1 << 5)
#define F_MASK     (1 << 6)
#define F_GATE     (1 << 7)
#define F_BMASK    (1 << 8)
#define F_SOFTCAP  (1 << 9)
#define F_VEC      (1 << 10)

/* Full unrolling of the loops over a work-item's rows, keys and columns
 * keeps its private arrays in registers on GPUs (-DATTN_UNROLL); CPU
 * drivers (PoCL) compile much faster without it. The loops over a staged
 * chunk's dims (keys) are unrolled too, so that the local reads of later
 * steps are issued ahead of the multiplies that wait on them (NVIDIA H200,
 * f32 causal B=1 H=32 S=4096 D=128: 6.94-6.97 -> 6.61 ms). */
#ifdef ATTN_UNROLL
#define UNROLL _Pragma("unroll")
#else
#define UNROLL
#endif

/* Key j and column c of work-item tx inside a tile (see the header). */
#define KEY_G (RN % 4 == 0)
#define COL_G (DVT % 4 == 0)
#define KEY(j) ((KEY_G ? (j) / 4 * (TX * 4) + tx * 4 + (j) % 4 : tx * RN + (j)))
#define COL(c) ((COL_G ? (c) / 4 * (TX * 4) + tx * 4 + (c) % 4 : tx * DVT + (c)))

/* n (a compile-time constant) floats of local memory into the private array
 * dst: at p, p+1, .. or, with g4 (p 16-byte aligned, n a multiple of 4), as
 * float4s at p, p + stride4, p + 2*stride4, ... Components are copied one by
 * one so that dst stays in registers (no address of a private array is ever
 * taken). */
#define LDS(dst, p, n, g4, stride4) do { \
    if (g4) { \
        UNROLL \
        for (int u_ = 0; u_ < (n); u_ += 4) { \
            const float4 t_ = *(__local const float4 *)((p) + u_ / 4 * (stride4)); \
            (dst)[u_] = t_.s0; (dst)[u_ + 1] = t_.s1; \
            (dst)[u_ + 2] = t_.s2; (dst)[u_ + 3] = t_.s3; \
        } \
    } else { \
        UNROLL \
        for (int u_ = 0; u_ < (n); u_++) \
            (dst)[u_] = (p)[u_]; \
    } } while (0)

/* Rows [0, R) x dims [c0, c0 + C) of a view (row stride rs, dim stride cs,
 * from element base) into local memory transposed, dst[c * R + r]; rows
 * >= nr and dims >= dlim read as zero. Consecutive work-items take
 * consecutive rows (bank-conflict-free stores); with vec (unit dim stride,
 * C and c0 multiples of 4) four dims per load. */
#define STAGE_T(dst, src, base, rs, cs, R, C, c0, dlim, nr, vec) do { \
    if (vec) { \
        for (int u_ = lid; u_ < (R) * ((C) / 4); u_ += NT) { \
            const int r_ = u_ % (R), c_ = u_ / (R) * 4; \
            float4 x_ = (float4)(0.0f); \
            if (r_ < (nr) && (c0) + c_ < (dlim)) \
                x_ = LOAD_IN4(src, (base) + (r_ * (rs) + (c0) + c_)); \
            (dst)[c_ * (R) + r_] = x_.s0; (dst)[(c_ + 1) * (R) + r_] = x_.s1; \
            (dst)[(c_ + 2) * (R) + r_] = x_.s2; (dst)[(c_ + 3) * (R) + r_] = x_.s3; \
        } \
    } else { \
        for (int u_ = lid; u_ < (R) * (C); u_ += NT) { \
            const int r_ = u_ % (R), c_ = u_ / (R); \
            (dst)[c_ * (R) + r_] = (r_ < (nr) && (c0) + c_ < (dlim)) ? \
                LOAD_IN(src, (base) + (r_ * (rs) + ((c0) + c_) * (cs))) : 0.0f; \
        } \
    } } while (0)

/* A transposed F_VEC chunk, dims [c0, c0 + DC) of R rows (rows >= nr and
 * dims >= D zero), in NU float4s per work-item: read from global memory into
 * the private array pr (PREF), later stored to local memory as STAGE_T does. */
#define LOAD_T(pr, NU, R, src, base, rs, nr, c0) do { \
    UNROLL \
    for (int n_ = 0; n_ < (NU); n_++) { \
        const int u_ = lid + n_ * NT, r_ = u_ % (R), c_ = u_ / (R) * 4; \
        (pr)[n_] = (float4)(0.0f); \
        if (u_ < (R) * (DC / 4) && r_ < (nr) && (c0) + c_ < D) \
            (pr)[n_] = LOAD_IN4(src, (base) + (r_ * (rs) + (c0) + c_)); \
    } } while (0)
#define STORE_T(dst, pr, NU, R) do { \
    UNROLL \
    for (int n_ = 0; n_ < (NU); n_++) { \
        const int u_ = lid + n_ * NT, r_ = u_ % (R), c_ = u_ / (R) * 4; \
        if (u_ < (R) * (DC / 4)) { \
            (dst)[c_ * (R) + r_] = (pr)[n_].s0; (dst)[(c_ + 1) * (R) + r_] = (pr)[n_].s1; \
            (dst)[(c_ + 2) * (R) + r_] = (pr)[n_].s2; (dst)[(c_ + 3) * (R) + r_] = (pr)[n_].s3; \
        } \
    } } while (0)

/* The F_VEC V chunk of keys [kc0, kc0 + KC) of the tile, row-major [KC][DVP],
 * four columns per load; STORE_V writes it to local memory (PREF >= 2). */
#define LOAD_V(pv, kc0) do { \
    UNROLL \
    for (int n_ = 0; n_ < NUV; n_++) { \
        const int u_ = lid + n_ * NT, r_ = u_ / (DVP / 4), c_ = u_ % (DVP / 4) * 4; \
        (pv)[n_] = (float4)(0.0f); \
        if (u_ < KC * (DVP / 4) && j0 + (kc0) + r_ < j1 && c_ < DV) \
            (pv)[n_] = LOAD_IN4(v, vt + (((kc0) + r_) * vs1i + c_)); \
    } } while (0)
#define STORE_V(dst, pv) do { \
    UNROLL \
    for (int n_ = 0; n_ < NUV; n_++) { \
        const int u_ = lid + n_ * NT, r_ = u_ / (DVP / 4), c_ = u_ % (DVP / 4) * 4; \
        if (u_ < KC * (DVP / 4)) \
            vstore4((pv)[n_], 0, (dst) + r_ * DVP + c_); \
    } } while (0)

/* Which local reads are float4-aligned (see the layouts below). */
#define V4_Q  (RM % 4 == 0)
#define V4_K  KEY_G
#define V4_V  COL_G
#define V4_P  (RM % 4 == 0)
#define V4_R  (TX % 4 == 0)

__kernel __attribute__((reqd_work_group_size(TX, TY, 1)))
void attn_sdpa(__global const IN_T *q, long q_off, long qs0, long qs1, long qs2, long qs3,
               __global const IN_T *k, long k_off, long ks0, long ks1, long ks2, long ks3,
               __global const IN_T *v, long v_off, long vs0, long vs1, long vs2, long vs3,
               __global uchar *out, long o_off, long os0, long os1, long os2, long os3, int out_dt,
               __global float *lse, long l_off, long ls0, long ls1, long ls2,
               __global const uchar *mask, long m_off, long ms0, long ms1, long ms2, long ms3,
               int mask_dt,
               __global const uchar *gate, long g_off, long gs0, long gs1, long gs2, long gs3,
               int gate_dt,
               __global const uchar *bmask, long b_off, long bs0, long bs1, long bs2, long bs3,
               __global const float *auxf, __global const int *auxi,
               int call_flags, int hq, int group, long sq, long sk, int nseq,
               float scale, float softcap, float sigmoid_bias,
               long window_left, long window_right, long sink_tokens, long block_q, long block_k)
{
    /* FEATS: the flags the program was built for; the rest fold away */
    const int flags = call_flags & FEATS;
    __local float4 lmem4[LOCAL_LEN / 4];
    __local float *lmem = (__local float *)lmem4;
    __local float *QsT = lmem + (QRES ? 0 : ST_AT);  /* [D][BQ] resident, or [DC][BQ] */
    __local float *stage = lmem + ST_AT;
    __local float *PsT = lmem + P_AT;                /* [BK][BQP] */
    __local float *red = lmem + RED_AT;              /* [BQ][REDP] */
    __local int bm_any, bm_all;

    const int tx = get_local_id(0), ty = get_local_id(1);
    const int lid = ty * TX + tx;
    /* query blocks in the slowest dimension, last first: every head's
     * heavy (causal) blocks start before any light one, so the dispatch
     * ends on short blocks */
    const long qb = (long)get_num_groups(1) - 1 - (long)get_group_id(1);
    const int h = get_group_id(0);
    const int b = get_group_id(2);
    const int hk = h / group;

    long bt = b, q0 = 0, k0 = 0, sqb = sq, skb = sk;
    if (flags & F_VARLEN) {
        bt = 0;
        __global const int *cu = auxi + 2 * hq;  /* after alibi and sinks */
        q0 = cu[b];
        sqb = cu[b + 1] - q0;
        k0 = cu[nseq + 1 + b];
        skb = cu[nseq + 2 + b] - k0;
    }
    /* No early exit for a block past its sequence (varlen padding): PoCL
     * 5's work-group former aborts on a return before a barrier, even a
     * uniform one. Such a block walks no tile and stores no row (nq = 0). */
    const long i0 = qb * BQ;
    const long nq = clamp(sqb - i0, 0L, (long)BQ);
    const long doff = skb - sqb;                 /* diag(i) = i + doff */

    const long qrow = q_off + bt * qs0 + (q0 + i0) * qs1 + h * qs2;
    const long krow = k_off + bt * ks0 + k0 * ks1 + hk * ks2;
    const long vrow = v_off + bt * vs0 + k0 * vs1 + hk * vs2;
    /* Offsets inside a tile in IDX_T (int unless the host saw huge strides). */
    const IDX_T qs1i = (IDX_T)qs1, qs3i = (IDX_T)qs3, ks1i = (IDX_T)ks1, ks3i = (IDX_T)ks3;
    const IDX_T vs1i = (IDX_T)vs1, vs3i = (IDX_T)vs3;
    const int causal = (flags & F_CAUSAL) != 0, sigmoid = (flags & F_SIGMOID) != 0;
    const int vec = (flags & F_VEC) != 0;
    const float slope = (flags & F_ALIBI) ? auxf[h] : 0.0f;

    /* Keys by position: row i sees [lo(i), hi(i)] plus sinks [0, ns). */
    const long ilast = i0 + nq - 1;
    const long lo_first = window_left >= 0 ? i0 + doff - window_left : 0;
    const long lo_last = window_left >= 0 ? ilast + doff - window_left : 0;
    long hi_first = skb - 1, hi_last = skb - 1;
    if (window_right >= 0) {
        hi_first = min(hi_first, i0 + doff + window_right);
        hi_last = min(hi_last, ilast + doff + window_right);
    }
    if (causal) {
        hi_first = min(hi_first, i0 + doff);
        hi_last = min(hi_last, ilast + doff);
    }
    const long klo = max(lo_first, 0L), khi = hi_last;
    long ns = min(sink_tokens, skb);
    if (causal)
        ns = min(ns, ilast + doff + 1);

    float m[RM], l[RM], o[RM][DVT];
    const float sink = (flags & F_SINKS) ? auxf[hq + h] : -INFINITY;
    UNROLL
    for (int i = 0; i < RM; i++) {
        m[i] = sink;
        l[i] = ((flags & F_SINKS) && tx == 0) ? 1.0f : 0.0f;  /* l is a partial sum per tx */
        UNROLL
        for (int c = 0; c < DVT; c++)
            o[i][c] = 0.0f;
    }
    /* The resident Q block, made visible by the first tile's barriers. With
     * PREF 3 and Q restaged, the next Q chunk is held in registers: the
     * chunks repeat for every tile, so after the last one comes the first. */
    const int pref_q = PREF_Q && vec;
    float4 pq[NUQ];
    if (QRES)
        STAGE_T(QsT, q, qrow, qs1i, qs3i, BQ, D, 0, D, nq, vec);
    else if (pref_q)
        LOAD_T(pq, NUQ, BQ, q, qrow, qs1i, nq, 0);

    /* The visible tiles, in key order: the sink tiles [0, nsink_t), then the
     * range tiles [range_t0, range_t1) not already among them. The loop
     * around the barriers has this group-uniform trip count and no break,
     * continue or jump of its counter, so every work-item walks the same
     * barriers (a structure every driver's work-group former handles). */
    const long nsink_t = nq > 0 && ns > 0 ? (ns + BK - 1) / BK : 0;
    const long range_t0 = max(klo / BK, nsink_t);
    const long range_t1 = nq > 0 && khi >= klo ? khi / BK + 1 : 0;
    const long ntiles = nsink_t + max(range_t1 - range_t0, 0L);
    for (long it = 0; it < ntiles; it++) {
        const long j0 = (it < nsink_t ? it : range_t0 + (it - nsink_t)) * BK;
        const long j1 = min(j0 + BK, skb);
        int full;
        if (j1 <= ns)
            full = !causal || j1 - 1 <= i0 + doff;
        else
            full = j0 >= lo_last && j1 - 1 <= hi_first;

        /* Block mask verdict for the tile: 0 none, 1 all, 2 mixed. */
        int bmode = 1;
        if (flags & F_BMASK) {
            barrier(CLK_LOCAL_MEM_FENCE);
            if (lid == 0) { bm_any = 0; bm_all = 1; }
            barrier(CLK_LOCAL_MEM_FENCE);
            const long bi0 = i0 / block_q, bj0 = j0 / block_k;
            const long nbi = ilast / block_q - bi0 + 1, nbj = (j1 - 1) / block_k - bj0 + 1;
            int any = 0, all = 1;
            for (long t = lid; t < nbi * nbj; t += NT) {
                const int on = bmask[b_off + b * bs0 + h * bs1 + (bi0 + t / nbj) * bs2 +
                                     (bj0 + t % nbj) * bs3] != 0;
                any |= on;
                all &= on;
            }
            if (any) atomic_or(&bm_any, 1);
            if (!all) atomic_and(&bm_all, 0);
            barrier(CLK_LOCAL_MEM_FENCE);
            bmode = bm_all ? 1 : bm_any ? 2 : 0;
        }
        /* A tile the block mask hides is skipped by the whole group: bmode
         * was read from local memory after a barrier, so it is uniform;
         * a structured branch rather than a continue out of the loop. */
        if (bmode != 0) {
            const long kt = krow + j0 * ks1, vt = vrow + j0 * vs1;   /* this tile's first key */
            const int pref_k = PREF >= 1 && vec, pref_v = PREF >= 2 && vec;
            /* S = Q K^T over chunks of DC dims. */
            float s[RM][RN];
            UNROLL
            for (int i = 0; i < RM; i++)
                UNROLL
                for (int j = 0; j < RN; j++)
                    s[i][j] = 0.0f;
            __local float *KsT = stage + KOFF;      /* [DC][BK] */
            float4 pk[NUK];
            if (pref_k)
                LOAD_T(pk, NUK, BK, k, kt, ks1i, j1 - j0, 0);
            for (int dc = 0; dc < D; dc += DC) {
                barrier(CLK_LOCAL_MEM_FENCE);
                if (pref_q) {
                    STORE_T(QsT, pq, NUQ, BQ);
                    LOAD_T(pq, NUQ, BQ, q, qrow, qs1i, nq, dc + DC < D ? dc + DC : 0);
                } else if (!QRES) {
                    STAGE_T(QsT, q, qrow, qs1i, qs3i, BQ, DC, dc, D, nq, vec);
                }
                if (pref_k) {
                    STORE_T(KsT, pk, NUK, BK);
                    if (dc + DC < D)
                        LOAD_T(pk, NUK, BK, k, kt, ks1i, j1 - j0, dc + DC);
                } else {
                    STAGE_T(KsT, k, kt, ks1i, ks3i, BK, DC, dc, D, j1 - j0, vec);
                }
                barrier(CLK_LOCAL_MEM_FENCE);
                __local const float *qcol = QsT + (QRES ? dc * BQ : 0) + ty * RM;
                __local const float *kcol = KsT + (KEY_G ? tx * 4 : tx * RN);
                UNROLL
                for (int c = 0; c < DC; c++) {
                    float a[RM], bb[RN];
                    LDS(a, qcol + c * BQ, RM, V4_Q, 4);
                    LDS(bb, kcol + c * BK, RN, V4_K, TX * 4);
                    UNROLL
                    for (int i = 0; i < RM; i++)
                        UNROLL
                        for (int j = 0; j < RN; j++)
                            s[i][j] = mad(a[i], bb[j], s[i][j]);
                }
            }
            /* The V chunk reads start while the scores are worked out. */
            float4 pv[NUV];
            if (pref_v)
                LOAD_V(pv, 0);

            /* Scores: scale, soft-cap, ALiBi, masks, visibility. */
            const int edge = j1 - j0 < BK;
            UNROLL
            for (int i = 0; i < RM; i++) {
                const long ii = i0 + ty * RM + i;
                const int row_ok = ii <= ilast;
                UNROLL
                for (int j = 0; j < RN; j++) {
                    const long jj = j0 + KEY(j);
                    float x = s[i][j] * scale;
                    if (flags & F_SOFTCAP)
                        x = softcap * tanh(x / softcap);
                    if (flags & F_ALIBI) {
                        long dd = ii + doff - jj;
                        x -= slope * (float)(dd < 0 ? -dd : dd);
                    }
                    if ((flags & F_MASK) && row_ok && jj < j1) {
                        const long mi = m_off + b * ms0 + h * ms1 + ii * ms2 + jj * ms3;
                        if (mask_dt == DT_U8) {
                            if (!mask[mi])
                                x = -INFINITY;
                        } else {
                            x += attn_load(mask, mask_dt, mi);
                        }
                    }
                    if (!full) {
                        const long dg = ii + doff;
                        int vis = !(causal && jj > dg);
                        if (vis && jj >= sink_tokens) {
                            if (window_left >= 0 && jj < dg - window_left) vis = 0;
                            if (window_right >= 0 && jj > dg + window_right) vis = 0;
                        }
                        if (!vis)
                            x = -INFINITY;
                    }
                    if (bmode == 2 && row_ok && jj < j1 &&
                        !bmask[b_off + b * bs0 + h * bs1 + (ii / block_q) * bs2 +
                               (jj / block_k) * bs3])
                        x = -INFINITY;
                    if (edge && jj >= j1)
                        x = -INFINITY;
                    s[i][j] = x;
                }
            }

            /* Online softmax (or sigmoid); P to local memory. */
            if (!sigmoid) {
                UNROLL
                for (int i = 0; i < RM; i++) {
                    float pm = s[i][0];
                    UNROLL
                    for (int j = 1; j < RN; j++)
                        pm = fmax(pm, s[i][j]);
                    red[(ty * RM + i) * REDP + tx] = pm;
                }
                barrier(CLK_LOCAL_MEM_FENCE);
                UNROLL
                for (int i = 0; i < RM; i++) {
                    float rv[TX];
                    LDS(rv, red + (ty * RM + i) * REDP, TX, V4_R, 4);
                    float mt = rv[0];
                    UNROLL
                    for (int t = 1; t < TX; t++)
                        mt = fmax(mt, rv[t]);
                    const float mn = fmax(m[i], mt);
                    float alpha = 1.0f, sum = 0.0f;
                    if (mn == -INFINITY) {
                        UNROLL
                        for (int j = 0; j < RN; j++)
                            s[i][j] = 0.0f;
                    } else {
                        alpha = exp(m[i] - mn);
                        UNROLL
                        for (int j = 0; j < RN; j++) {
                            s[i][j] = exp(s[i][j] - mn);
                            sum += s[i][j];
                        }
                        m[i] = mn;
                    }
                    l[i] = l[i] * alpha + sum;
                    UNROLL
                    for (int c = 0; c < DVT; c++)
                        o[i][c] *= alpha;
                }
            } else {
                UNROLL
                for (int i = 0; i < RM; i++)
                    UNROLL
                    for (int j = 0; j < RN; j++) {
                        const float x = s[i][j] + sigmoid_bias;
                        const float e = exp(-fabs(x));
                        s[i][j] = (x >= 0.0f ? 1.0f : e) / (1.0f + e);
                    }
            }
            UNROLL
            for (int j = 0; j < RN; j++) {
                __local float *pc = PsT + KEY(j) * BQP + ty * RM;
                if (V4_P) {
                    UNROLL
                    for (int i = 0; i < RM; i += 4)
                        vstore4((float4)(s[i][j], s[i + 1][j], s[i + 2][j], s[i + 3][j]),
                                0, pc + i);
                } else {
                    UNROLL
                    for (int i = 0; i < RM; i++)
                        pc[i] = s[i][j];
                }
            }

            /* O += P V over chunks of KC keys. */
            __local float *Vs = stage;               /* [KC][DVP] */
            __local const float *vc = Vs + (COL_G ? tx * 4 : tx * DVT);
            for (int kc = 0; kc < BK; kc += KC) {
                barrier(CLK_LOCAL_MEM_FENCE);
                if (pref_v) {
                    STORE_V(Vs, pv);
                    if (kc + KC < BK)
                        LOAD_V(pv, kc + KC);
                } else if (vec) {
                    for (int t = lid; t < KC * (DVP / 4); t += NT) {
                        const int r = t / (DVP / 4), c = t % (DVP / 4) * 4;
                        float4 x = (float4)(0.0f);
                        if (j0 + kc + r < j1 && c < DV)
                            x = LOAD_IN4(v, vt + ((kc + r) * vs1i + c));
                        vstore4(x, 0, Vs + r * DVP + c);
                    }
                } else {
                    for (int t = lid; t < KC * DVP; t += NT) {
                        const int r = t / DVP, c = t % DVP;
                        Vs[t] = (j0 + kc + r < j1 && c < DV) ?
                            LOAD_IN(v, vt + ((kc + r) * vs1i + c * vs3i)) : 0.0f;
                    }
                }
                barrier(CLK_LOCAL_MEM_FENCE);
                UNROLL
                for (int kk = 0; kk < KC; kk++) {
                    float vv[DVT], pp[RM];
                    LDS(vv, vc + kk * DVP, DVT, V4_V, TX * 4);
                    LDS(pp, PsT + (kc + kk) * BQP + ty * RM, RM, V4_P, 4);
                    UNROLL
                    for (int i = 0; i < RM; i++)
                        UNROLL
                        for (int c = 0; c < DVT; c++)
                            o[i][c] = mad(pp[i], vv[c], o[i][c]);
                }
            }
        }
    }

    /* Full row sums, normalise, gate, store. */
    barrier(CLK_LOCAL_MEM_FENCE);
    UNROLL
    for (int i = 0; i < RM; i++)
        red[(ty * RM + i) * REDP + tx] = l[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    UNROLL
    for (int i = 0; i < RM; i++) {
        const long ii = i0 + ty * RM + i;
        if (ii > ilast)
            break;                               /* rows only grow with i */
        float lsum = 0.0f;
        for (int t = 0; t < TX; t++)
            lsum += red[(ty * RM + i) * REDP + t];
        const float inv = sigmoid ? 1.0f : (lsum > 0.0f ? 1.0f / lsum : 0.0f);
        const long row = q0 + ii;
        const long obase = o_off + bt * os0 + row * os1 + h * os2;
        const long gbase = g_off + bt * gs0 + row * gs1 + h * gs2;
        UNROLL
        for (int c = 0; c < DVT; c++) {
            const int col = COL(c);
            if (col < DV) {
                float x = o[i][c] * inv;
                if (flags & F_GATE)
                    x *= 1.0f / (1.0f + exp(-attn_load(gate, gate_dt, gbase + col * gs3)));
                attn_store(out, out_dt, obase + col * os3, x);
            }
        }
        if ((flags & F_LSE) && tx == 0)
            lse[l_off + bt * ls0 + h * ls1 + row * ls2] =
                lsum > 0.0f ? m[i] + log(lsum) : -INFINITY;
    }
}
