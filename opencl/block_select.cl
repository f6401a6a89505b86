/* attn_block_select on OpenCL (rules: include/attn.h). Every kernel reads
 * q and k through (element offset, strides) in elements; IN_DT (compile
 * time) is their dtype. The f32 scratch is shares [rows * nbk] (a block
 * row's per-block score or share, rows = (b*Hq + h)*nbq + I) and, for
 * XATTN, part (per block: running max and exp-sum of the current segment
 * rows); order [rows * nbk] ints holds each row's ranking.
 *
 *   attn_bs_pool         MOBA: mean of the rows of each block -> pooled
 *   attn_bs_moba_score   MOBA: qbar_I . kbar_J -> shares
 *   attn_bs_xattn_share  XATTN: antidiagonal scores, softmax per segment
 *                        row, summed into key blocks -> shares (part[]
 *                        per wave of block rows: XROWS pairs per block)
 *   attn_bs_select       both: rank, keep, write the u8 mask
 */

/* Allowed key blocks of block row I are a prefix [0, n): returns n, and
 * the diagonal block in *diag (as attn_bs_allowed on the CPU). */
inline long allowed_blocks(long I, long Sq, long Sk, long bq, long bk, long nbk, int causal,
                           long *diag)
{
    const long last = min((I + 1) * bq, Sq) - 1, d = last + Sk - Sq;
    *diag = max(d, 0L) / bk;
    if (!causal)
        return nbk;
    return d < 0 ? 0 : d / bk + 1;
}

/* Mean over the rows of block `blk` (of `blen` rows) of one head of a
 * [B,S,H,D] tensor, one work-item per output element: pooled
 * [(b*H + h)*nb + blk][c]. Summed in row order in f32, then scaled. */
__kernel void attn_bs_pool(__global const IN_T *x, long x_off, long x0, long x1, long x2, long x3,
                           long S, long H, long D, long blen, long nb, long total,
                           __global float *pooled)
{
    const long e = get_global_id(0);
    if (e >= total)
        return;
    const long c = e % D, row = e / D, blk = row % nb, bh = row / nb;
    const long h = bh % H, b = bh / H;
    const long r0 = blk * blen, r1 = min(r0 + blen, S);
    __global const IN_T *p = x + x_off + b * x0 + h * x2 + c * x3;
    float acc = 0.0f;
    for (long r = r0; r < r1; r++)
        acc += LOAD_IN(p, r * x1);
    pooled[e] = acc * (1.0f / (float)(r1 - r0));
}

/* One work-item per (block row, key block J < n): shares = qbar . kbar. */
__kernel void attn_bs_moba_score(__global const float *qbar, __global const float *kbar,
                                 long Hq, long group, long nbq, long nbk, long D,
                                 long Sq, long Sk, long bq, long bk, int causal, long total,
                                 __global float *shares)
{
    const long e = get_global_id(0);
    if (e >= total)
        return;
    const long J = e % nbk, row = e / nbk, I = row % nbq, bh = row / nbq;
    const long h = bh % Hq, b = bh / Hq;
    long diag;
    if (J >= allowed_blocks(I, Sq, Sk, bq, bk, nbk, causal, &diag))
        return;
    const long hkv_rows = Hq / group;
    __global const float *qv = qbar + row * D;
    __global const float *kv = kbar + ((b * hkv_rows + h / group) * nbk + J) * D;
    float s = 0.0f;
    for (long c = 0; c < D; c++)
        s += qv[c] * kv[c];
    shares[e] = s;
}

/* XATTN, one work-group per block row (b, h, I). The cells of key block J
 * are split into P slices (cells c0 + p, c0 + p + P, ...): work-item t owns
 * the slots (J, p) = t, t + L, ... (slot J*P + p), so that short rows of
 * blocks still fill the group. Segment rows of block I go XROWS at a time
 * (compile time): each key element loaded serves XROWS antidiagonal sums,
 * XROWS times less key traffic than one row at a time. Per segment row rr
 * of the chunk each item scores the allowed cells of its blocks
 * (x = scale*a/s), keeping per block the running max and exp-sum (in
 * part[], XROWS pairs per slot); the group reduces them to each row's max
 * and sum, and work-item J % L adds block J's share of each row's softmax
 * (over its P slots) to its total, without storing the rows. Launched for block rows
 * [row0, row0 + groups): part[] holds one wave of them. */
__kernel void attn_bs_xattn_share(__global const IN_T *q, long q_off, long q0, long q1, long q2,
                                  long q3,
                                  __global const IN_T *k, long k_off, long k0, long k1, long k2,
                                  long k3,
                                  long Hq, long group, long Sq, long Sk, long D, long bq, long bk,
                                  long nbq, long nbk, long s, float scale, int causal, long P,
                                  long row0,
                                  __global float *shares, __global float *part,
                                  __local float *red)
{
    const long wave_row = get_group_id(0), row = row0 + wave_row;
    const long I = row % nbq, bh = row / nbq, h = bh % Hq, b = bh / Hq;
    const int t = (int)get_local_id(0), L = (int)get_local_size(0);
    long diag;
    const long n = allowed_blocks(I, Sq, Sk, bq, bk, nbk, causal, &diag);
    __global float *w = shares + row * nbk, *pm = part + wave_row * nbk * P * 2 * XROWS;
    for (long J = t; J < n; J += L)
        w[J] = 0.0f;
    __global const IN_T *qh = q + q_off + b * q0 + h * q2;
    __global const IN_T *kh = k + k_off + b * k0 + (h / group) * k2;
    const long nsk = (Sk + s - 1) / s, cells_per_block = bk / s;
    const float xs = scale / (float)s;
    const long i1 = min((I + 1) * bq, Sq), r_end = (i1 + s - 1) / s;
    for (long r0 = I * bq / s; r0 < r_end; r0 += XROWS) {
        const int nr = (int)min((long)XROWS, r_end - r0);
        long d[XROWS];          /* diagonal of each row's last query row */
        float item_max[XROWS];
        for (int rr = 0; rr < XROWS; rr++) {
            d[rr] = min((r0 + rr) * s + s, Sq) - 1 + Sk - Sq;
            item_max[rr] = -INFINITY;
        }
        for (long slot = t; slot < n * P; slot += L) {
            const long J = slot / P;
            const long c0 = J * cells_per_block + slot % P, c1 = min((J + 1) * cells_per_block, nsk);
            float m[XROWS], e[XROWS];
            for (int rr = 0; rr < XROWS; rr++) {
                m[rr] = -INFINITY;
                e[rr] = 0.0f;
            }
            for (long c = c0; c < c1; c += P) {
                if (causal && c * s > d[nr - 1])
                    break;          /* and for every earlier row of the chunk */
                float a[XROWS];
                for (int rr = 0; rr < XROWS; rr++)
                    a[rr] = 0.0f;
                for (long u = 0; u < s; u++) {
                    const long kj = c * s + u;
                    if (kj >= Sk)
                        break;
                    __global const IN_T *kr = kh + kj * k1;
                    /* query row of each segment row for this u; rows past
                     * Sq (or past the chunk) add nothing */
                    __global const IN_T *qr[XROWS];
                    int live[XROWS];
                    for (int rr = 0; rr < XROWS; rr++) {
                        const long qi = (r0 + rr) * s + s - 1 - u;
                        live[rr] = rr < nr && qi < Sq;
                        qr[rr] = qh + (live[rr] ? qi : 0) * q1;
                    }
                    for (long x = 0; x < D; x++) {
                        const float kv = LOAD_IN(kr, x * k3);
                        for (int rr = 0; rr < XROWS; rr++)
                            if (live[rr])
                                a[rr] += LOAD_IN(qr[rr], x * q3) * kv;
                    }
                }
                for (int rr = 0; rr < nr; rr++) {
                    if (causal && c * s > d[rr])
                        continue;
                    const float v = a[rr] * xs;
                    if (v > m[rr]) {
                        e[rr] = e[rr] * exp(m[rr] - v) + 1.0f;
                        m[rr] = v;
                    } else {
                        e[rr] += exp(v - m[rr]);
                    }
                }
            }
            for (int rr = 0; rr < XROWS; rr++) {
                pm[(slot * XROWS + rr) * 2] = m[rr];
                pm[(slot * XROWS + rr) * 2 + 1] = e[rr];
                item_max[rr] = fmax(item_max[rr], m[rr]);
            }
        }
        /* each row's max, then its sum, over the group: red[rr*L + t] */
        float M[XROWS], S[XROWS];
        for (int rr = 0; rr < XROWS; rr++)
            red[rr * L + t] = item_max[rr];
        barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);   /* part[] too */
        for (int o = L / 2; o > 0; o /= 2) {
            if (t < o)
                for (int rr = 0; rr < XROWS; rr++)
                    red[rr * L + t] = fmax(red[rr * L + t], red[rr * L + t + o]);
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        for (int rr = 0; rr < XROWS; rr++)
            M[rr] = red[rr * L];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int rr = 0; rr < XROWS; rr++) {
            float item_sum = 0.0f;
            if (M[rr] != -INFINITY)
                for (long slot = t; slot < n * P; slot += L) {
                    const float mj = pm[(slot * XROWS + rr) * 2];
                    if (mj != -INFINITY)
                        item_sum += pm[(slot * XROWS + rr) * 2 + 1] * exp(mj - M[rr]);
                }
            red[rr * L + t] = item_sum;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int o = L / 2; o > 0; o /= 2) {
            if (t < o)
                for (int rr = 0; rr < XROWS; rr++)
                    red[rr * L + t] += red[rr * L + t + o];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        for (int rr = 0; rr < XROWS; rr++)
            S[rr] = red[rr * L];
        barrier(CLK_LOCAL_MEM_FENCE);
        /* rows without an allowed cell (M = -inf) add nothing */
        for (long J = t; J < n; J += L)
            for (long slot = J * P; slot < (J + 1) * P; slot++)
                for (int rr = 0; rr < nr; rr++) {
                    const float mj = pm[(slot * XROWS + rr) * 2];
                    if (M[rr] != -INFINITY && mj != -INFINITY)
                        w[J] += pm[(slot * XROWS + rr) * 2 + 1] * exp(mj - M[rr]) / S[rr];
                }
        barrier(CLK_GLOBAL_MEM_FENCE);  /* part[] is rewritten by the next chunk */
    }
}

/* Block J ranks before block K: NaN last, then decreasing share, then the
 * lower index. */
inline int ranks_before(float wj, long j, float wk, long k)
{
    const int nj = isnan(wj), nk = isnan(wk);
    if (nj != nk)
        return nk;
    if (!nj && wj != wk)
        return wj > wk;
    return j < k;
}

/* One work-group per block row: the forced blocks (diagonal; XATTN also
 * block 0), every other allowed block ranked by ranks_before (its rank is
 * the count of blocks before it, O(n^2 / L) per item, no sort), then item 0
 * walks the ranking in order: XATTN while the kept share is below
 * threshold * total, MOBA up to top_k blocks. Writes every mask element. */
__kernel void attn_bs_select(__global const float *shares, __global int *order,
                             __global uchar *mask, long m_off, long m0, long m1, long m2, long m3,
                             long Hq, long nbq, long nbk, long Sq, long Sk, long bq, long bk,
                             int causal, int xattn, float threshold, long top_k,
                             __local float *red, __local long *kept)
{
    const long row = get_group_id(0), I = row % nbq, bh = row / nbq;
    const long h = bh % Hq, b = bh / Hq;
    const int t = (int)get_local_id(0), L = (int)get_local_size(0);
    long diag;
    const long n = allowed_blocks(I, Sq, Sk, bq, bk, nbk, causal, &diag);
    __global const float *w = shares + row * nbk;
    __global int *ord = order + row * nbk;
    __global uchar *out = mask + m_off + b * m0 + h * m1 + I * m2;
    float item_total = 0.0f;
    for (long J = t; J < nbk; J += L) {
        const int forced = J < n && (J == diag || (xattn && J == 0));
        out[J * m3] = (uchar)forced;
        if (J >= n)
            continue;
        item_total += w[J];
        if (forced)
            continue;
        long rank = 0;
        for (long K = 0; K < n; K++)
            if (K != diag && !(xattn && K == 0) && ranks_before(w[K], K, w[J], J))
                rank++;
        ord[rank] = (int)J;
    }
    red[t] = item_total;
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    if (t == 0) {
        /* totals summed in item order: the same value for every item */
        float total = 0.0f;
        for (int u = 0; u < L; u++)
            total += red[u];
        const long forced_n = n == 0 ? 0 : (xattn && diag != 0 ? 2 : 1);
        const long ranked = n - forced_n;
        long take = 0;
        if (n > 0 && xattn) {
            /* threshold 1 keeps everything, whatever the rounding of the sums */
            const float goal = threshold >= 1.0f ? 2.0f * total + 1.0f : threshold * total;
            float mass = w[diag] + (diag != 0 ? w[0] : 0.0f);
            while (take < ranked && mass < goal)
                mass += w[ord[take++]];
        } else if (n > 0) {
            take = min(ranked, top_k - 1);
        }
        *kept = take;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const long take = *kept;
    for (long u = t; u < take; u += L)
        out[ord[u] * m3] = 1;
}
