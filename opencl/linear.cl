/* attn_linear: the recurrent form, every kind, on OpenCL C 1.2.
 *
 * One work-group per (sequence, head, slice of DVS state columns); it walks
 * the sequence's tokens in order. Work-item (c, r) owns column c of the
 * slice and rows r, r + KS, r + 2 KS, ... (DKT of them) of the f32 state
 * S [Dk x Dv] in registers, so the state never leaves the work-item between
 * the first token and the last. Products over Dk are partial dots per
 * work-item summed over the KS work-items of a column in local memory: S^T k
 * of the delta rule at every token (one barrier a token when KS > 1), the
 * outputs q^T S and q^T z once per block of tokens, all tokens at once, so
 * the non-delta kinds walk a block without any barrier.
 *
 * Tokens are staged TB at a time: q, k (preprocessed once per token in
 * local memory: l2norm, feature map, scale on q), the per-channel gates as
 * alpha = exp(g), the slice of v, beta and the scalar gate. Rows past Dk are
 * padded with zeros (DKP = KS * DKT), so the loops over a work-item's rows
 * need no bounds test.
 *
 * The normaliser z (PLAIN + normalize) is kept per work-item for its rows
 * (the same in every column) and its q'^T z reduced with the output; the
 * final z goes to a scratch buffer that attn_linear_zcopy then writes to
 * z_out, so that an in-place z_out = z_in is never read after it is written.
 *
 * Compile-time: DK, KS, DVS, TB, IN_DT (and ATTN_UNROLL on GPUs). */

#define DKT ((DK + KS - 1) / KS)
#define DKP (DKT * KS)
#define NT (KS * DVS)
#define NPART (NT / (2 * TB) > 0 ? NT / (2 * TB) : 1)   /* work-items per norm */

#define LIN_PLAIN 0
#define LIN_DECAY 1
#define LIN_GLA 2
#define LIN_DELTA 3
#define LIN_GATED_DELTA 4
#define LIN_KDA 5

#define FEAT_IDENTITY 0
#define FEAT_ELU1 1
#define FEAT_RELU 2

/* Run-time flags, shared with src/opencl/linear.c. */
#define LF_L2NORM     (1 << 0)
#define LF_NORMALIZE  (1 << 1)
#define LF_VARLEN     (1 << 2)
#define LF_STATE_IN   (1 << 3)
#define LF_STATE_OUT  (1 << 4)
#define LF_Z_IN       (1 << 5)
#define LF_Z_OUT      (1 << 6)
#define LF_G_SCALAR   (1 << 7)    /* g [B,S,H] */
#define LF_G_CHANNEL  (1 << 8)    /* g [B,S,H,Dk] */
#define LF_DECAY_PARAM (1 << 9)   /* params->decay [H] */
#define LF_NO_OUT     (1 << 10)   /* segment summary pass: state only */

#ifdef ATTN_UNROLL
#define UNROLL _Pragma("unroll")
#else
#define UNROLL
#endif

inline float phi(float x, int feature)
{
    if (feature == FEAT_ELU1)
        return x > 0.0f ? x + 1.0f : exp(x);
    if (feature == FEAT_RELU)
        return fmax(x, 0.0f);
    return x;
}

/* Strides of one [B,S,H,*] tensor in elements, with its element offset. */
typedef struct view4 { long off, s0, s1, s2, s3; } view4;

inline long at4(view4 v, long b, long t, long h, long i)
{
    return v.off + b * v.s0 + t * v.s1 + h * v.s2 + i * v.s3;
}

/* Segment p of nseg of a sequence of *len tokens from *t_begin: equal
 * parts, the last shorter, empty ones past the end. */
inline void segment_range(int p, int nseg, long *t_begin, long *len)
{
    const long seg = (*len + nseg - 1) / nseg, s0 = min(*len, p * seg);
    *t_begin += s0;
    *len = min(*len, s0 + seg) - s0;
}

__kernel __attribute__((reqd_work_group_size(DVS, KS, 1)))
void attn_linear_recurrent(
    __global const IN_T *q, long q_off, long q0, long q1, long q2, long q3,
    __global const IN_T *k, long k_off, long k0, long k1, long k2, long k3,
    __global const IN_T *v, long v_off, long v0, long v1, long v2, long v3,
    __global const uchar *g, long g_off, long g0, long g1, long g2, long g3, int g_dt,
    __global const uchar *beta, long b_off, long b0, long b1, long b2, int b_dt,
    __global uchar *out, long o_off, long o0, long o1, long o2, long o3, int o_dt,
    __global const float *s_in, long si_off, long si0, long si1, long si2, long si3,
    __global float *s_out, long so_off, long so0, long so1, long so2, long so3,
    __global const float *z_in, long zi_off, long zi0, long zi1, long zi2,
    __global float *z_scratch,
    __global const float *decay, __global const int *cu,
    int kind, int feature, int flags, long S, int H, int DV, float scale, float norm_eps,
    int nseg)
{
    __local float lq[TB * DKP], lk[TB * DKP], la[TB * DKP];
    __local float lv[TB * DVS], lb[TB], lg[TB], lnorm[2 * TB], lpart[2 * TB * NPART];
    __local float red_u[2][NT], red_o[TB * 2 * NT];

    const int c = get_local_id(0), r = get_local_id(1), lid = r * DVS + c;
    /* slot indexes state_in/out and z: the sequence, or its segment (nseg > 1) */
    const int h = get_group_id(1), slot = get_group_id(2), n = slot / nseg;
    const int col = get_group_id(0) * DVS + c;
    const int live = col < DV;
    const int delta = kind == LIN_DELTA || kind == LIN_GATED_DELTA || kind == LIN_KDA;
    const view4 Q = { q_off, q0, q1, q2, q3 }, K = { k_off, k0, k1, k2, k3 };
    const view4 V = { v_off, v0, v1, v2, v3 }, G = { g_off, g0, g1, g2, g3 };
    const view4 O = { o_off, o0, o1, o2, o3 };

    long b = n, t_begin = 0, len = S;
    if (flags & LF_VARLEN) {
        b = 0;
        t_begin = cu[H + n];      /* cu_seqlens follows decay [H] */
        len = cu[H + n + 1] - t_begin;
    }
    segment_range(slot % nseg, nseg, &t_begin, &len);
    const float fixed_gate = (flags & LF_DECAY_PARAM) ? decay[h] : 1.0f;

    float st[DKT], z[DKT];
    UNROLL
    for (int i = 0; i < DKT; i++) {
        const int row = r + KS * i;
        st[i] = 0.0f;
        z[i] = 0.0f;
        if (row < DK && live && (flags & LF_STATE_IN))
            st[i] = s_in[si_off + slot * si0 + h * si1 + row * si2 + col * si3];
        if (row < DK && (flags & LF_Z_IN))
            z[i] = z_in[zi_off + slot * zi0 + h * zi1 + row * zi2];
    }

    for (long t0 = 0; t0 < len; t0 += TB) {
        const int nt = (int)min((long)TB, len - t0);
        /* Stage the block. */
        for (int e = lid; e < nt * DKP; e += NT) {
            const int tb = e / DKP, i = e % DKP;
            const long t = t_begin + t0 + tb;
            float qv = 0.0f, kv = 0.0f, av = 1.0f;
            if (i < DK) {
                qv = LOAD_IN(q, at4(Q, b, t, h, i));
                kv = LOAD_IN(k, at4(K, b, t, h, i));
                if (flags & LF_G_CHANNEL)
                    av = exp(attn_load(g, g_dt, at4(G, b, t, h, i)));
            }
            lq[e] = qv;
            lk[e] = kv;
            la[e] = av;
        }
        for (int e = lid; e < nt * DVS; e += NT) {
            const int tb = e / DVS, j = get_group_id(0) * DVS + e % DVS;
            lv[e] = j < DV ? LOAD_IN(v, at4(V, b, t_begin + t0 + tb, h, j)) : 0.0f;
        }
        for (int e = lid; e < nt; e += NT) {
            const long t = t_begin + t0 + e;
            lb[e] = delta ? attn_load(beta, b_dt, b_off + b * b0 + t * b1 + h * b2) : 0.0f;
            lg[e] = (flags & LF_G_SCALAR) ? exp(attn_load(g, g_dt, at4(G, b, t, h, 0)))
                                          : fixed_gate;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* Preprocess q and k; the norms of the 2 nt vectors by NPART
         * work-items each, then one per vector. */
        if (flags & LF_L2NORM) {
            for (int w = lid; w < 2 * nt * NPART; w += NT) {
                const int e = w / NPART;
                __local const float *x = (e < nt ? lq : lk) + (e % nt) * DKP;
                float ss = 0.0f;
                for (int i = w % NPART; i < DK; i += NPART)
                    ss += x[i] * x[i];
                lpart[w] = ss;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int e = lid; e < 2 * nt; e += NT) {
                float ss = 0.0f;
                for (int j = 0; j < NPART; j++)
                    ss += lpart[e * NPART + j];
                lnorm[e] = rsqrt(ss + 1e-6f);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        for (int e = lid; e < nt * DKP; e += NT) {
            const int tb = e / DKP;
            float qv = lq[e], kv = lk[e];
            if (flags & LF_L2NORM) {
                qv *= lnorm[tb];
                kv *= lnorm[nt + tb];
            }
            if (e % DKP < DK) {     /* padding rows stay zero under elu+1 */
                qv = phi(qv, feature);
                kv = phi(kv, feature);
            }
            lq[e] = qv * scale;
            lk[e] = kv;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* The recurrence over the block's tokens. */
        for (int tb = 0; tb < nt; tb++) {
            __local const float *qt = lq + tb * DKP + r, *kt = lk + tb * DKP + r;
            __local const float *at = la + tb * DKP + r;
            const float gate = lg[tb], vt = lv[tb * DVS + c];
            float coef = vt;             /* what k_t is scaled by into column c */
            if (delta) {
                float u = 0.0f;
                UNROLL
                for (int i = 0; i < DKT; i++) {
                    st[i] *= at[KS * i] * gate;
                    u += st[i] * kt[KS * i];
                }
#if KS > 1
                __local float *ru = red_u[tb & 1];   /* two, so one barrier a token */
                ru[lid] = u;
                barrier(CLK_LOCAL_MEM_FENCE);
                u = 0.0f;
                for (int j = 0; j < KS; j++)
                    u += ru[j * DVS + c];
#endif
                coef = lb[tb] * (vt - u);
                UNROLL
                for (int i = 0; i < DKT; i++)
                    st[i] += kt[KS * i] * coef;
            } else {
                UNROLL
                for (int i = 0; i < DKT; i++)
                    st[i] = st[i] * (at[KS * i] * gate) + kt[KS * i] * coef;
            }
            float num = 0.0f, den = 0.0f;
            UNROLL
            for (int i = 0; i < DKT; i++)
                num += qt[KS * i] * st[i];
            if (flags & LF_NORMALIZE) {
                UNROLL
                for (int i = 0; i < DKT; i++) {
                    z[i] += kt[KS * i];
                    den += qt[KS * i] * z[i];
                }
            }
            red_o[(2 * tb) * NT + lid] = num;
            red_o[(2 * tb + 1) * NT + lid] = den;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* The block's outputs: partial dots summed over the KS row groups.
         * (The next block's staging cannot disturb red_o; its barrier also
         * keeps the next token loop from writing red_o before this is read.) */
        for (int e = lid; e < nt * DVS && !(flags & LF_NO_OUT); e += NT) {
            const int tb = e / DVS, cc = e % DVS, j = get_group_id(0) * DVS + cc;
            float num = 0.0f, den = 0.0f;
            for (int i = 0; i < KS; i++) {
                num += red_o[(2 * tb) * NT + i * DVS + cc];
                den += red_o[(2 * tb + 1) * NT + i * DVS + cc];
            }
            if (j < DV)
                attn_store(out, o_dt, at4(O, b, t_begin + t0 + tb, h, j),
                           (flags & LF_NORMALIZE) ? num / (den + norm_eps) : num);
        }
    }

    UNROLL
    for (int i = 0; i < DKT; i++) {
        const int row = r + KS * i;
        if (row < DK && live && (flags & LF_STATE_OUT))
            s_out[so_off + slot * so0 + h * so1 + row * so2 + col * so3] = st[i];
        if (row < DK && col == 0 && (flags & LF_Z_OUT))
            z_scratch[((long)slot * H + h) * DK + row] = z[i];
    }
}

/* z_out from the scratch that attn_linear_recurrent filled; one work-item
 * per (sequence, head, row). */
__kernel void attn_linear_zcopy(__global const float *z_scratch, __global float *z_out,
                                long z_off, long z0, long z1, long z2, long N, int H)
{
    const long e = get_global_id(0);
    if (e >= N * H * DK)
        return;
    const long row = e % DK, h = (e / DK) % H, n = e / ((long)DK * H);
    z_out[z_off + n * z0 + h * z1 + row * z2] = z_scratch[e];
}

/* Long sequences of the non-delta kinds in nseg segments (src/opencl/
 * linear.c): S_end = diag(D) S_start + dS for a segment, where dS is its
 * state from zero (the summary pass of attn_linear_recurrent, LF_NO_OUT) and
 * D = exp(sum of its log-gates) per row, so the segments' start states
 * follow by a scan, and every segment then runs with its own start state.
 * attn_linear_seg_decay: D, one work-item per (segment, head, row). */
__kernel void attn_linear_seg_decay(
    __global const uchar *g, long g_off, long g0, long g1, long g2, long g3, int g_dt,
    __global const float *decay, __global const int *cu, int flags, long S, int H,
    int nseg, long nitems, __global float *D)
{
    const long e = get_global_id(0);
    if (e >= nitems)
        return;
    const int row = (int)(e % DK), h = (int)((e / DK) % H), gi = (int)(e / ((long)DK * H));
    const int n = gi / nseg;
    long b = n, t_begin = 0, len = S;
    if (flags & LF_VARLEN) {
        b = 0;
        t_begin = cu[H + n];
        len = cu[H + n + 1] - t_begin;
    }
    segment_range(gi % nseg, nseg, &t_begin, &len);
    float sum = 0.0f;
    if (flags & LF_DECAY_PARAM)
        sum = (float)len * log(decay[h]);
    for (long t = t_begin; t < t_begin + len && (flags & (LF_G_SCALAR | LF_G_CHANNEL)); t++)
        sum += attn_load(g, g_dt, g_off + b * g0 + t * g1 + h * g2 +
                                  ((flags & LF_G_CHANNEL) ? row * g3 : 0));
    D[e] = exp(sum);
}

/* attn_linear_seg_combine: one work-item per state element (sequence, head,
 * row, column) walks the segments in order: the start state of each replaces
 * its dS in place, and the state after the last goes to state_out; z the
 * same way (column 0, no decay: normalize is PLAIN only). */
__kernel void attn_linear_seg_combine(
    __global const float *s_in, long si_off, long si0, long si1, long si2, long si3,
    __global float *s_out, long so_off, long so0, long so1, long so2, long so3,
    __global const float *z_in, long zi_off, long zi0, long zi1, long zi2,
    __global float *z_out, long zo_off, long zo0, long zo1, long zo2,
    __global float *dS, __global const float *D, __global float *dz,
    int flags, int H, int DV, int nseg, long nitems)
{
    const long e = get_global_id(0);
    if (e >= nitems)
        return;
    const int col = (int)(e % DV), row = (int)((e / DV) % DK);
    const int h = (int)((e / ((long)DV * DK)) % H), n = (int)(e / ((long)DV * DK * H));
    const int with_z = col == 0 && (flags & LF_NORMALIZE);
    float st = (flags & LF_STATE_IN) ? s_in[si_off + n * si0 + h * si1 + row * si2 + col * si3]
                                     : 0.0f;
    float z = with_z && (flags & LF_Z_IN) ? z_in[zi_off + n * zi0 + h * zi1 + row * zi2] : 0.0f;
    for (int p = 0; p < nseg; p++) {
        const long gi = ((long)n * nseg + p) * H + h;
        const long si = (gi * DK + row) * DV + col;
        const float ds = dS[si];
        dS[si] = st;
        st = D[gi * DK + row] * st + ds;
        if (with_z) {
            const float dzv = dz[gi * DK + row];
            dz[gi * DK + row] = z;
            z += dzv;
        }
    }
    if (flags & LF_STATE_OUT)
        s_out[so_off + n * so0 + h * so1 + row * so2 + col * so3] = st;
    if (with_z && (flags & LF_Z_OUT))
        z_out[zo_off + n * zo0 + h * zo1 + row * zo2] = z;
}
