/* attn_neighborhood on OpenCL C 1.2 (window rule: include/attn.h).
 *
 * Grids arrive widened to 3 axes (0 outermost). A work-group owns a tile of
 * queries of one head: one axis-0 position, T1 x T2 consecutive positions
 * of one dilation class on axes 1 and 2 (the host's tile table gives each
 * tile's class and first position per axis); row r1*T2 + r2 of the tile is
 * the query at (r1, r2). Neighbouring queries share most of their keys, so
 * the keys are walked as "runs": for each key position j0 of the axis-0
 * window and j1 of the union of the tile's axis-1 windows, the keys of the
 * union of the tile's axis-2 windows (at most T2 + K2 - 1) are staged once
 * in local memory (K and V) and used by every row r1 that sees j1 (a
 * contiguous range [a1, b1): windows are monotone in the position). Each
 * query scores exactly its own K2-wide axis-2 window, so no score is
 * computed for a key it cannot see:
 *   S[r][kk] = q_r . k_(w2s(r2) + kk)   a work-item per (r2, kk) for all rows
 *                                       r1 that see the run (one k row read
 *                                       from local memory serves them all)
 *   online softmax per row (running max m, sum l, rescale alpha), in f32
 *   O[r][c] = alpha O[r][c] + sum_kk P[r][kk] V[w2s(r2) + kk][c]
 * The rows of one column r2 share their axis-2 window, hence their V rows:
 * work-item lid owns the (r2, c) pairs lid + i*WG (i < NP) of the T2 x DV
 * block, for all T1 rows r1, so each V value it reads from local memory
 * serves up to T1 accumulators (kept in registers: TQ * DV / WG of them).
 * Local-memory reads are float4 where they can be: q and k rows are padded
 * with zeros to D4 = ceil(D/4) float4s (plus one, so that the rows of
 * consecutive keys start in different banks), score rows to K2P =
 * 4*ceil(K2/4) (pads score -inf, so P is 0 there), and Vs has K2P zero rows
 * past the staged keys for the padded keys to read.
 * Local arrays (sizes from the host, which fits them in local memory):
 * Qs [TQ][QD4] (scaled q), Ks [U2][QD4] float4; Vs [U2 + K2P][DV];
 * S [TQ][K2P/4] float4; rows [3][TQ] (m, l, alpha).
 *
 * Compile-time: IN_DT, D, DV, T1, T2, WG. */

#define D4 ((D + 3) / 4)
#define QD4 (D4 + 1)
#define TQ (T1 * T2)
#define NP ((T2 * DV + WG - 1) / WG)   /* (r2, c) pairs per work-item */

/* Window [*s, *e) on a class sub-grid of n positions around position p. */
inline void nb_window(long p, long n, long k, int causal, long *s, long *e)
{
    if (causal) {
        *s = max(0L, p - k + 1);
        *e = p + 1;
    } else {
        *s = min(max(p - (k - 1) / 2, 0L), n - k);
        *e = *s + k;
    }
}

/* Positions of class c on an axis of length len with dilation dil. */
inline long nb_class_len(long len, long c, long dil)
{
    return (len - c + dil - 1) / dil;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_neighborhood(__global const IN_T *q, long q_off, long qs0, long qs1, long qs2,
                       long qs3, long qs4, long qs5,
                       __global const IN_T *k, long k_off, long ks0, long ks1, long ks2,
                       long ks3, long ks4, long ks5,
                       __global const IN_T *v, long v_off, long vs0, long vs1, long vs2,
                       long vs3, long vs4, long vs5,
                       __global uchar *out, long o_off, long os0, long os1, long os2,
                       long os3, long os4, long os5, int out_dt,
                       __global float *lse, long l_off, long ls0, long ls1, long ls2,
                       long ls3, long ls4, int has_lse,
                       __global const int *tiles, int nt0, int nt1, int nt2,
                       long len0, long len1, long len2, long k0, long k1, long k2,
                       long dil0, long dil1, long dil2, int causal0, int causal1, int causal2,
                       int group, float scale,
                       __local float4 *Qs, __local float4 *Ks, __local float *Vs,
                       __local float4 *S4, __local float *rows)
{
    const int lid = get_local_id(0);
    const int tile = get_group_id(0);
    const int i2 = tile % nt2, i1 = tile / nt2 % nt1, i0 = tile / nt2 / nt1;
    const long h = get_group_id(1), b = get_group_id(2), hk = h / group;
    const long c0 = tiles[2 * i0], p0 = tiles[2 * i0 + 1];
    const long c1 = tiles[2 * (nt0 + i1)], p1 = tiles[2 * (nt0 + i1) + 1];
    const long c2 = tiles[2 * (nt0 + nt1 + i2)], p2 = tiles[2 * (nt0 + nt1 + i2) + 1];
    const long n0 = nb_class_len(len0, c0, dil0), n1 = nb_class_len(len1, c1, dil1);
    const long n2 = nb_class_len(len2, c2, dil2);
    const int m1 = (int)min((long)T1, n1 - p1), m2 = (int)min((long)T2, n2 - p2);
    const long g0 = c0 + dil0 * p0;
    __local float *M = rows, *L = rows + TQ, *A = rows + 2 * TQ;

    long s0, e0, u1s, u1e, u2s, u2e, tmp;
    nb_window(p0, n0, k0, causal0, &s0, &e0);
    nb_window(p1, n1, k1, causal1, &u1s, &tmp);
    nb_window(p1 + m1 - 1, n1, k1, causal1, &tmp, &u1e);
    nb_window(p2, n2, k2, causal2, &u2s, &tmp);
    nb_window(p2 + m2 - 1, n2, k2, causal2, &tmp, &u2e);
    const int U2 = (int)(u2e - u2s);
    const int K2P = ((int)k2 + 3) / 4 * 4;
    __local float *S = (__local float *)S4;

    for (int e = lid; e < TQ * 4 * D4; e += WG) {
        const int r = e / (4 * D4), dd = e % (4 * D4), r1 = r / T2, r2 = r % T2;
        const long g1 = c1 + dil1 * (p1 + r1), g2 = c2 + dil2 * (p2 + r2);
        ((__local float *)(Qs + r * QD4))[dd] = dd < D && r1 < m1 && r2 < m2 ?
            scale * LOAD_IN(q, q_off + b * qs0 + g0 * qs1 + g1 * qs2 + g2 * qs3 + h * qs4 +
                            dd * qs5) : 0.0f;
    }
    for (int e = U2 * DV + lid; e < (U2 + K2P) * DV; e += WG)
        Vs[e] = 0.0f;
    for (int r = lid; r < TQ; r += WG) {
        M[r] = -INFINITY;
        L[r] = 0.0f;
    }
    float acc[NP * T1];
#pragma unroll
    for (int i = 0; i < NP * T1; i++)
        acc[i] = 0.0f;

    for (long j0 = s0; j0 < e0; j0++)
        for (long j1 = u1s; j1 < u1e; j1++) {
            /* The rows that see j1: [a1, b1) of the tile's axis-1 rows. */
            int a1 = m1, b1 = m1;
            for (int r1 = 0; r1 < m1; r1++) {
                long ws, we;
                nb_window(p1 + r1, n1, k1, causal1, &ws, &we);
                if (ws <= j1 && j1 < we) {
                    if (a1 == m1)
                        a1 = r1;
                    b1 = r1 + 1;
                }
            }
            const int rlo = a1 * T2, rhi = b1 * T2;
            const long gk0 = c0 + dil0 * j0, gk1 = c1 + dil1 * j1;

            barrier(CLK_LOCAL_MEM_FENCE);   /* the previous run's Ks, Vs, S are used */
            for (int e = lid; e < U2 * 4 * D4; e += WG) {
                const int u = e / (4 * D4), dd = e % (4 * D4);
                const long g2 = c2 + dil2 * (u2s + u);
                ((__local float *)(Ks + u * QD4))[dd] =
                    dd < D ? LOAD_IN(k, k_off + b * ks0 + gk0 * ks1 + gk1 * ks2 + g2 * ks3 +
                                     hk * ks4 + dd * ks5) : 0.0f;
            }
            for (int e = lid; e < U2 * DV; e += WG) {
                const int u = e / DV, c = e % DV;
                const long g2 = c2 + dil2 * (u2s + u);
                Vs[u * DV + c] = LOAD_IN(v, v_off + b * vs0 + gk0 * vs1 + gk1 * vs2 +
                                         g2 * vs3 + hk * vs4 + c * vs5);
            }
            barrier(CLK_LOCAL_MEM_FENCE);

            for (int e = lid; e < T2 * K2P; e += WG) {
                const int r2 = e / K2P, kk = e % K2P;
                if (r2 >= m2)
                    continue;
                long ws, we;
                nb_window(p2 + r2, n2, k2, causal2, &ws, &we);
                const int seen = ws + kk < we;
                float4 a[T1];
#pragma unroll
                for (int r1 = 0; r1 < T1; r1++)
                    a[r1] = (float4)(0.0f);
                if (seen) {
                    __local const float4 *kr = Ks + (ws - u2s + kk) * QD4, *qr = Qs + r2 * QD4;
                    for (int j = 0; j < D4; j++) {
                        const float4 kj = kr[j];
#pragma unroll
                        for (int r1 = 0; r1 < T1; r1++)
                            if (r1 >= a1 && r1 < b1)
                                a[r1] = mad(qr[r1 * T2 * QD4 + j], kj, a[r1]);
                    }
                }
#pragma unroll
                for (int r1 = 0; r1 < T1; r1++)
                    if (r1 >= a1 && r1 < b1)
                        S[(r1 * T2 + r2) * K2P + kk] =
                            seen ? (a[r1].s0 + a[r1].s1) + (a[r1].s2 + a[r1].s3) : -INFINITY;
            }
            barrier(CLK_LOCAL_MEM_FENCE);

            for (int r = rlo + lid; r < rhi; r += WG) {
                if (r % T2 >= m2)
                    continue;
                __local float *sr = S + r * K2P;
                float mx = -INFINITY;
                for (int kk = 0; kk < K2P; kk++)
                    mx = fmax(mx, sr[kk]);
                const float mn = fmax(M[r], mx);   /* finite: every row sees a key here */
                float sum = 0.0f;
                for (int kk = 0; kk < K2P; kk++) {
                    const float pk = exp(sr[kk] - mn);
                    sr[kk] = pk;
                    sum += pk;
                }
                A[r] = exp(M[r] - mn);
                L[r] = L[r] * A[r] + sum;
                M[r] = mn;
            }
            barrier(CLK_LOCAL_MEM_FENCE);

#pragma unroll
            for (int i = 0; i < NP; i++) {
                const int e = lid + i * WG, r2 = e / DV, c = e % DV;
                if (r2 >= m2)
                    continue;
#pragma unroll
                for (int r1 = 0; r1 < T1; r1++)
                    if (r1 >= a1 && r1 < b1)
                        acc[i * T1 + r1] *= A[r1 * T2 + r2];
                long ws, we;
                nb_window(p2 + r2, n2, k2, causal2, &ws, &we);
                __local const float *vc = Vs + (ws - u2s) * DV + c;
                for (int j = 0; j < K2P / 4; j++) {
                    const float v0 = vc[(4 * j) * DV], v1 = vc[(4 * j + 1) * DV];
                    const float v2 = vc[(4 * j + 2) * DV], v3 = vc[(4 * j + 3) * DV];
#pragma unroll
                    for (int r1 = 0; r1 < T1; r1++)
                        if (r1 >= a1 && r1 < b1) {
                            const float4 pj = S4[(r1 * T2 + r2) * (K2P / 4) + j];
                            float o = acc[i * T1 + r1];
                            o = mad(pj.s0, v0, o);
                            o = mad(pj.s1, v1, o);
                            o = mad(pj.s2, v2, o);
                            acc[i * T1 + r1] = mad(pj.s3, v3, o);
                        }
                }
            }
        }

#pragma unroll
    for (int i = 0; i < NP; i++) {
        const int e = lid + i * WG, r2 = e / DV, c = e % DV;
        if (r2 >= m2)
            continue;
        const long g2 = c2 + dil2 * (p2 + r2);
#pragma unroll
        for (int r1 = 0; r1 < T1; r1++)
            if (r1 < m1) {
                const long g1 = c1 + dil1 * (p1 + r1);
                attn_store(out, out_dt, o_off + b * os0 + g0 * os1 + g1 * os2 + g2 * os3 +
                           h * os4 + c * os5, acc[i * T1 + r1] / L[r1 * T2 + r2]);
            }
    }
    if (has_lse)
        for (int r = lid; r < TQ; r += WG) {
            const int r1 = r / T2, r2 = r % T2;
            if (r1 >= m1 || r2 >= m2)
                continue;
            const long g1 = c1 + dil1 * (p1 + r1), g2 = c2 + dil2 * (p2 + r2);
            lse[l_off + b * ls0 + g0 * ls1 + g1 * ls2 + g2 * ls3 + h * ls4] = M[r] + log(L[r]);
        }
}
