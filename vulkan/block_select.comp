#version 450
/* attn_block_select (rules: include/attn.h), the modes of one shader, as
 * opencl/block_select.cl:
 *   0 pool q / 4 pool k   MOBA: mean of the rows of each block, one
 *                         invocation per element -> qbar / kbar
 *   1 moba scores         one invocation per (block row, key block J < n):
 *                         qbar_I . kbar_J -> shares
 *   2 xattn shares        one workgroup per block row, invocation t owning
 *                         key blocks t, t + WG, ...: antidiagonal scores,
 *                         softmax per segment row (per-block running max
 *                         and exp-sum in part[], reduced over the group),
 *                         summed into key blocks -> shares; a dispatch
 *                         scores segment rows [seg_first, +seg_count) of
 *                         each block row (the host splits long rows)
 *   3 select xattn / 5 select moba
 *                         one workgroup per block row: forced blocks, rank
 *                         of every other allowed block (count of blocks
 *                         before it: NaN last, larger share, lower index),
 *                         then invocation 0 walks the ranking; writes every
 *                         mask element
 * Block rows are row = (b*Hq + h)*nbq + I; shares, order: [rows * nbk],
 * part: [rows * nbk * P * 2 * XROWS]. Indices are 32-bit (the host checks). */
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const int WG = 64;       /* a power of two */
layout(constant_id = 1) const int IN_DT = 0;     /* dtype of q and k */

#include "common.glsl"

layout(std430, binding = 0) readonly buffer Qb { uint w[]; } Q;
layout(std430, binding = 1) readonly buffer Kb { uint w[]; } K;
layout(std430, binding = 2) buffer Mb { uint w[]; } MASK;
layout(std430, binding = 3) buffer Sb { float w[]; } SHARES;
layout(std430, binding = 4) buffer Ob { int w[]; } ORDER;
layout(std430, binding = 5) buffer Pb { float w[]; } PART;
layout(std430, binding = 6) buffer QBb { float w[]; } QBAR;
layout(std430, binding = 7) buffer KBb { float w[]; } KBAR;

layout(push_constant) uniform Push {
    int mode_causal;        /* mode | causal << 8 | P << 16 (128 bytes hold no
                               more words) */
    int q_off, q0, q1, q2, q3;
    int k_off, k0, k1, k2, k3;
    int m_off, m0, m1, m2, m3;
    int Hq, group, Sq, Sk, D, bq, bk, nbq, nbk, s, top_k;
    int count;              /* elements (modes 0, 1, 4) or block rows */
    float scale, threshold;
    int seg_first, seg_count;   /* mode 2: the segment rows of each block row
                                   this dispatch scores (first 0 clears) */
} pc;

int mode;                   /* from mode_causal, set first in main */
bool causal;
int P;                      /* mode 2: slices of each key block's cells */

ATTN_LOAD_FIXED(load_q, Q, IN_DT)
ATTN_LOAD_FIXED(load_k, K, IN_DT)

#define XROWS 8             /* segment rows scored together (mode 2) */

shared float red[XROWS * WG];

/* The running max of a block without an allowed cell yet. Finite: the
 * shader compilers may assume no infinities (and fold tests against them),
 * so "no cell" is told by an exp-sum of 0 instead. */
const float NO_CELL = -3.0e38;
shared int kept_n;

/* One byte of the mask; the word is shared with other rows' invocations. */
void store_mask(int i, uint v)
{
    const uint sh = (uint(i) & 3u) * 8u;
    atomicAnd(MASK.w[uint(i) >> 2], ~(0xffu << sh));
    if (v != 0u)
        atomicOr(MASK.w[uint(i) >> 2], v << sh);
}

/* Allowed key blocks of block row I are a prefix [0, n): returns n. */
int allowed_blocks(int I, out int diag)
{
    const int last = min((I + 1) * pc.bq, pc.Sq) - 1, d = last + pc.Sk - pc.Sq;
    diag = max(d, 0) / pc.bk;
    if (!causal)
        return pc.nbk;
    return d < 0 ? 0 : d / pc.bk + 1;
}

void pool(uint e, bool of_k)
{
    const int H = of_k ? pc.Hq / pc.group : pc.Hq, S = of_k ? pc.Sk : pc.Sq;
    const int blen = of_k ? pc.bk : pc.bq, nb = of_k ? pc.nbk : pc.nbq;
    const int c = int(e) % pc.D, row = int(e) / pc.D, blk = row % nb, bh = row / nb;
    const int h = bh % H, b = bh / H;
    const int r0 = blk * blen, r1 = min(r0 + blen, S);
    float acc = 0.0;
    if (of_k) {
        const int base = pc.k_off + b * pc.k0 + h * pc.k2 + c * pc.k3;
        for (int r = r0; r < r1; r++)
            acc += load_k(base + r * pc.k1);
        KBAR.w[e] = acc * (1.0 / float(r1 - r0));
    } else {
        const int base = pc.q_off + b * pc.q0 + h * pc.q2 + c * pc.q3;
        for (int r = r0; r < r1; r++)
            acc += load_q(base + r * pc.q1);
        QBAR.w[e] = acc * (1.0 / float(r1 - r0));
    }
}

void moba_score(uint e)
{
    const int J = int(e) % pc.nbk, row = int(e) / pc.nbk, I = row % pc.nbq, bh = row / pc.nbq;
    const int h = bh % pc.Hq, b = bh / pc.Hq;
    int diag;
    if (J >= allowed_blocks(I, diag))
        return;
    const int qv = row * pc.D, kv = ((b * (pc.Hq / pc.group) + h / pc.group) * pc.nbk + J) * pc.D;
    float s = 0.0;
    for (int c = 0; c < pc.D; c++)
        s += QBAR.w[qv + c] * KBAR.w[kv + c];
    SHARES.w[e] = s;
}

/* Segment rows go XROWS at a time: each key element loaded serves XROWS
 * antidiagonal sums. The cells of key block J are split into P slices
 * (cells c0 + p, c0 + p + P, ...); invocation t owns the slots (J, p) =
 * t, t + WG, ... (slot J*P + p), so that rows of few blocks still fill the
 * group. part[] holds XROWS (max, exp-sum) pairs per slot; invocation
 * J % WG adds block J's shares up over its P slots. */
void xattn_shares(int row, int t)
{
    const int I = row % pc.nbq, bh = row / pc.nbq, h = bh % pc.Hq, b = bh / pc.Hq;
    int diag;
    const int n = allowed_blocks(I, diag);
    const int w0 = row * pc.nbk, p0 = 2 * XROWS * row * pc.nbk * P;
    if (pc.seg_first == 0)
        for (int J = t; J < n; J += WG)
            SHARES.w[w0 + J] = 0.0;
    const int qh = pc.q_off + b * pc.q0 + h * pc.q2;
    const int kh = pc.k_off + b * pc.k0 + (h / pc.group) * pc.k2;
    const int s = pc.s, nsk = (pc.Sk + s - 1) / s, cells_per_block = pc.bk / s;
    const float xs = pc.scale / float(s);
    const int i1 = min((I + 1) * pc.bq, pc.Sq), r_first = I * pc.bq / s + pc.seg_first;
    const int r_stop = min(r_first + pc.seg_count, (i1 + s - 1) / s);
    for (int r0 = r_first; r0 < r_stop; r0 += XROWS) {
        const int nr = min(XROWS, r_stop - r0);
        int d[XROWS];           /* diagonal of each row's last query row */
        float item_max[XROWS];
        for (int rr = 0; rr < XROWS; rr++) {
            d[rr] = min((r0 + rr) * s + s, pc.Sq) - 1 + pc.Sk - pc.Sq;
            item_max[rr] = NO_CELL;
        }
        for (int slot = t; slot < n * P; slot += WG) {
            const int J = slot / P;
            const int c0 = J * cells_per_block + slot % P, c1 = min((J + 1) * cells_per_block, nsk);
            float m[XROWS], e[XROWS];
            for (int rr = 0; rr < XROWS; rr++) {
                m[rr] = NO_CELL;
                e[rr] = 0.0;
            }
            for (int c = c0; c < c1; c += P) {
                if (causal && c * s > d[nr - 1])
                    break;          /* and for every earlier row of the chunk */
                float a[XROWS];
                for (int rr = 0; rr < XROWS; rr++)
                    a[rr] = 0.0;
                for (int u = 0; u < s; u++) {
                    const int kj = c * s + u;
                    if (kj >= pc.Sk)
                        break;
                    const int kr = kh + kj * pc.k1;
                    /* query row of each segment row for this u; rows past
                     * Sq (or past the chunk) add nothing */
                    int qr[XROWS];
                    bool live[XROWS];
                    for (int rr = 0; rr < XROWS; rr++) {
                        const int qi = (r0 + rr) * s + s - 1 - u;
                        live[rr] = rr < nr && qi < pc.Sq;
                        qr[rr] = qh + (live[rr] ? qi : 0) * pc.q1;
                    }
                    for (int x = 0; x < pc.D; x++) {
                        const float kv = load_k(kr + x * pc.k3);
                        for (int rr = 0; rr < XROWS; rr++)
                            if (live[rr])
                                a[rr] += load_q(qr[rr] + x * pc.q3) * kv;
                    }
                }
                for (int rr = 0; rr < nr; rr++) {
                    if (causal && c * s > d[rr])
                        continue;
                    const float v = a[rr] * xs;
                    if (v > m[rr]) {
                        e[rr] = (e[rr] > 0.0 ? e[rr] * exp(m[rr] - v) : 0.0) + 1.0;
                        m[rr] = v;
                    } else {
                        e[rr] += exp(v - m[rr]);
                    }
                }
            }
            for (int rr = 0; rr < XROWS; rr++) {
                PART.w[p0 + 2 * (slot * XROWS + rr)] = m[rr];
                PART.w[p0 + 2 * (slot * XROWS + rr) + 1] = e[rr];
                item_max[rr] = max(item_max[rr], m[rr]);
            }
        }
        /* each row's max, then its sum, over the group: red[rr*WG + t] */
        float M[XROWS], S[XROWS];
        for (int rr = 0; rr < XROWS; rr++)
            red[rr * WG + t] = item_max[rr];
        memoryBarrierBuffer();      /* part[] too */
        barrier();
        for (int o = WG / 2; o > 0; o /= 2) {
            if (t < o)
                for (int rr = 0; rr < XROWS; rr++)
                    red[rr * WG + t] = max(red[rr * WG + t], red[rr * WG + t + o]);
            barrier();
        }
        for (int rr = 0; rr < XROWS; rr++)
            M[rr] = red[rr * WG];
        barrier();
        for (int rr = 0; rr < XROWS; rr++) {
            float item_sum = 0.0;
            for (int slot = t; slot < n * P; slot += WG) {
                const int at = p0 + 2 * (slot * XROWS + rr);
                if (PART.w[at + 1] > 0.0)
                    item_sum += PART.w[at + 1] * exp(PART.w[at] - M[rr]);
            }
            red[rr * WG + t] = item_sum;
        }
        barrier();
        for (int o = WG / 2; o > 0; o /= 2) {
            if (t < o)
                for (int rr = 0; rr < XROWS; rr++)
                    red[rr * WG + t] += red[rr * WG + t + o];
            barrier();
        }
        for (int rr = 0; rr < XROWS; rr++)
            S[rr] = red[rr * WG];
        barrier();
        /* rows without an allowed cell (S = 0) add nothing */
        for (int J = t; J < n; J += WG)
            for (int slot = J * P; slot < (J + 1) * P; slot++)
                for (int rr = 0; rr < nr; rr++) {
                    const int at = p0 + 2 * (slot * XROWS + rr);
                    if (S[rr] > 0.0 && PART.w[at + 1] > 0.0)
                        SHARES.w[w0 + J] += PART.w[at + 1] * exp(PART.w[at] - M[rr]) / S[rr];
                }
        memoryBarrierBuffer();      /* part[] is rewritten by the next chunk */
        barrier();
    }
}

bool ranks_before(float wj, int j, float wk, int k)
{
    const bool nj = isnan(wj), nk = isnan(wk);
    if (nj != nk)
        return nk;
    if (!nj && wj != wk)
        return wj > wk;
    return j < k;
}

void select_blocks(int row, int t, bool xattn)
{
    const int I = row % pc.nbq, bh = row / pc.nbq, h = bh % pc.Hq, b = bh / pc.Hq;
    int diag;
    const int n = allowed_blocks(I, diag);
    const int w0 = row * pc.nbk;
    const int mrow = pc.m_off + b * pc.m0 + h * pc.m1 + I * pc.m2;
    float item_total = 0.0;
    for (int J = t; J < pc.nbk; J += WG) {
        const bool forced = J < n && (J == diag || (xattn && J == 0));
        store_mask(mrow + J * pc.m3, forced ? 1u : 0u);
        if (J >= n)
            continue;
        const float wj = SHARES.w[w0 + J];
        item_total += wj;
        if (forced)
            continue;
        int rank = 0;
        for (int K = 0; K < n; K++)
            if (K != diag && !(xattn && K == 0) && ranks_before(SHARES.w[w0 + K], K, wj, J))
                rank++;
        ORDER.w[w0 + rank] = J;
    }
    red[t] = item_total;
    memoryBarrierBuffer();
    barrier();
    if (t == 0) {
        /* totals summed in invocation order, as on OpenCL */
        float total = 0.0;
        for (int u = 0; u < WG; u++)
            total += red[u];
        const int forced_n = n == 0 ? 0 : (xattn && diag != 0 ? 2 : 1);
        const int ranked = n - forced_n;
        int take = 0;
        if (n > 0 && xattn) {
            /* threshold 1 keeps everything, whatever the rounding of the sums */
            const float goal = pc.threshold >= 1.0 ? 2.0 * total + 1.0 : pc.threshold * total;
            float mass = SHARES.w[w0 + diag] + (diag != 0 ? SHARES.w[w0] : 0.0);
            while (take < ranked && mass < goal)
                mass += SHARES.w[w0 + ORDER.w[w0 + take++]];
        } else if (n > 0) {
            take = min(ranked, pc.top_k - 1);
        }
        kept_n = take;
    }
    barrier();
    for (int u = t; u < kept_n; u += WG)
        store_mask(mrow + ORDER.w[w0 + u] * pc.m3, 1u);
}

void main()
{
    const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    const int t = int(gl_LocalInvocationID.x);
    mode = pc.mode_causal & 255;
    causal = ((pc.mode_causal >> 8) & 255) != 0;
    P = pc.mode_causal >> 16;
    if (mode == 0 || mode == 1 || mode == 4) {
        const uint e = group * uint(WG) + uint(t);
        if (e >= uint(pc.count))
            return;
        if (mode == 1)
            moba_score(e);
        else
            pool(e, mode == 4);
        return;
    }
    if (group >= uint(pc.count))
        return;     /* the whole workgroup: no barrier is skipped by some only */
    if (mode == 2)
        xattn_shares(int(group), t);
    else
        select_blocks(int(group), t, mode == 3);
}
