/* What the attn_sdpa shaders share: bindings, parameter words, the query
 * block a workgroup owns, which key tiles it must visit, the score
 * transform (scale, soft-cap, ALiBi, masks, visibility) and the output
 * epilogue. The including shader defines BQ (query rows per workgroup),
 * BK (keys per tile), NT (invocations) and IN_DT (dtype of q, k, v). */

layout(std430, binding = 0) readonly buffer Qb { uint w[]; } Q;
layout(std430, binding = 1) readonly buffer Kb { uint w[]; } K;
layout(std430, binding = 2) readonly buffer Vb { uint w[]; } V;
layout(std430, binding = 3) buffer Ob { uint w[]; } O;
layout(std430, binding = 4) buffer Lb { float w[]; } L;
layout(std430, binding = 5) readonly buffer Mb { uint w[]; } MASK;
layout(std430, binding = 6) readonly buffer Gb { uint w[]; } GATE;
layout(std430, binding = 7) readonly buffer Bb { uint w[]; } BMASK;
layout(std430, binding = 9) readonly buffer Pb { int w[]; } P;

/* Parameter words (src/vulkan/sdpa.c writes them in this order). */
const int P_Q = 0, P_K = 5, P_V = 10, P_O = 15, P_OUT_DT = 20, P_L = 21, P_M = 25,
          P_MASK_DT = 30, P_G = 31, P_GATE_DT = 36, P_B = 37, P_FLAGS = 42, P_HQ = 43,
          P_GROUP = 44, P_SQ = 45, P_SK = 46, P_NSEQ = 47, P_SCALE = 48, P_SOFTCAP = 49,
          P_SIGBIAS = 50, P_WL = 51, P_WR = 52, P_SINKS = 53, P_BQ = 54, P_BK = 55, P_AUX = 64;

const int F_CAUSAL = 1, F_SIGMOID = 2, F_ALIBI = 4, F_SINKS = 8, F_VARLEN = 16, F_LSE = 32,
          F_MASK = 64, F_GATE = 128, F_BMASK = 256, F_SOFTCAP = 512;

ATTN_LOAD_FIXED(load_q, Q, IN_DT)
ATTN_LOAD_FIXED(load_k, K, IN_DT)
ATTN_LOAD_FIXED(load_v, V, IN_DT)
ATTN_LOAD_ANY(load_mask, MASK)
ATTN_LOAD_ANY(load_gate, GATE)
ATTN_LOAD_ANY(load_bmask, BMASK)
ATTN_STORE_ANY(store_out, O)

float pf(int i) { return intBitsToFloat(P.w[i]); }

shared int bm_any, bm_all;

/* The query block of one workgroup: rows i0.. of head h of sequence b. */
struct Block {
    int flags, h, b, bt, q0, i0, nq, ilast, skb, doff;
    int qrow, krow, vrow;        /* element offsets of the first row / key */
    bool causal, sigmoid;
    float scale, softcap, slope;
    int wl, wr, sink_tokens;
    int lo_last, hi_first, klo, khi, ns;   /* visible key range, see block_init */
    int nsink_t, range_t0, ntiles;         /* visible tiles, see tile_start */
    int mbase, bbase, bq, bk;
};

/* A shader may define FEATS_MASK as the flags its pipeline was made for
 * (a specialisation constant): the code of every other feature then folds
 * away. */
#ifndef FEATS_MASK
#define FEATS_MASK (-1)
#endif

/* Fills k for block qb. A block past the end of its sequence (varlen
 * padding) gets nq = 0 and no tile: it walks the same barriers as the
 * others and stores nothing, rather than returning early. */
void block_init(out Block k, int qb, int h, int b)
{
    const int flags = P.w[P_FLAGS] & FEATS_MASK, hq = P.w[P_HQ], nseq = P.w[P_NSEQ];
    const int hk = h / P.w[P_GROUP];
    k.flags = flags;
    k.h = h;
    k.b = b;
    k.bt = b;
    k.q0 = 0;
    int k0 = 0, sqb = P.w[P_SQ];
    k.skb = P.w[P_SK];
    if ((flags & F_VARLEN) != 0) {
        const int cu = P_AUX + 2 * hq;            /* after alibi and sinks */
        k.bt = 0;
        k.q0 = P.w[cu + b];
        sqb = P.w[cu + b + 1] - k.q0;
        k0 = P.w[cu + nseq + 1 + b];
        k.skb = P.w[cu + nseq + 2 + b] - k0;
    }
    k.i0 = qb * BQ;
    k.nq = clamp(sqb - k.i0, 0, BQ);
    k.ilast = k.i0 + k.nq - 1;
    k.doff = k.skb - sqb;                         /* diag(i) = i + doff */
    k.qrow = P.w[P_Q] + k.bt * P.w[P_Q + 1] + (k.q0 + k.i0) * P.w[P_Q + 2] + h * P.w[P_Q + 3];
    k.krow = P.w[P_K] + k.bt * P.w[P_K + 1] + k0 * P.w[P_K + 2] + hk * P.w[P_K + 3];
    k.vrow = P.w[P_V] + k.bt * P.w[P_V + 1] + k0 * P.w[P_V + 2] + hk * P.w[P_V + 3];
    k.causal = (flags & F_CAUSAL) != 0;
    k.sigmoid = (flags & F_SIGMOID) != 0;
    k.scale = pf(P_SCALE);
    k.softcap = pf(P_SOFTCAP);
    k.slope = (flags & F_ALIBI) != 0 ? pf(P_AUX + h) : 0.0;
    k.wl = P.w[P_WL];
    k.wr = P.w[P_WR];
    k.sink_tokens = P.w[P_SINKS];

    /* Keys by position: row i sees [lo(i), hi(i)] plus sinks [0, ns). */
    const int lo_first = k.wl >= 0 ? k.i0 + k.doff - k.wl : 0;
    k.lo_last = k.wl >= 0 ? k.ilast + k.doff - k.wl : 0;
    k.hi_first = k.skb - 1;
    int hi_last = k.skb - 1;
    if (k.wr >= 0) {
        k.hi_first = min(k.hi_first, k.i0 + k.doff + k.wr);
        hi_last = min(hi_last, k.ilast + k.doff + k.wr);
    }
    if (k.causal) {
        k.hi_first = min(k.hi_first, k.i0 + k.doff);
        hi_last = min(hi_last, k.ilast + k.doff);
    }
    k.klo = max(lo_first, 0);
    k.khi = hi_last;
    k.ns = min(k.sink_tokens, k.skb);
    if (k.causal)
        k.ns = min(k.ns, k.ilast + k.doff + 1);
    k.mbase = P.w[P_M] + b * P.w[P_M + 1] + h * P.w[P_M + 2];
    k.bbase = P.w[P_B] + b * P.w[P_B + 1] + h * P.w[P_B + 2];
    k.bq = P.w[P_BQ];
    k.bk = P.w[P_BK];

    /* Visible tiles in key order: the sink tiles [0, nsink_t), then the
     * window tiles [range_t0, range_t1) not among them. */
    k.nsink_t = k.nq > 0 && k.ns > 0 ? (k.ns + BK - 1) / BK : 0;
    k.range_t0 = max(k.klo / BK, k.nsink_t);
    const int range_t1 = k.nq > 0 && k.khi >= k.klo ? k.khi / BK + 1 : 0;
    k.ntiles = k.nsink_t + max(range_t1 - k.range_t0, 0);
}

/* First key of visible tile it (0 <= it < ntiles). */
int tile_start(Block k, int it)
{
    return (it < k.nsink_t ? it : k.range_t0 + (it - k.nsink_t)) * BK;
}

/* Whether every row sees every key of [j0, j1) (no per-element test). */
bool tile_full(Block k, int j0, int j1)
{
    if (j1 <= k.ns)
        return !k.causal || j1 - 1 <= k.i0 + k.doff;
    return j0 >= k.lo_last && j1 - 1 <= k.hi_first;
}

/* Block-mask verdict for keys [j0, j1): 0 none visible, 1 all, 2 mixed.
 * Called by the whole workgroup (barriers). */
int tile_bmode(Block k, int j0, int j1, int lid)
{
    int mode = 1;
    if ((k.flags & F_BMASK) != 0) {
        barrier();
        if (lid == 0) { bm_any = 0; bm_all = 1; }
        barrier();
        const int bi0 = k.i0 / k.bq, bj0 = j0 / k.bk;
        const int nbi = k.ilast / k.bq - bi0 + 1, nbj = (j1 - 1) / k.bk - bj0 + 1;
        bool any = false, all = true;
        for (int t = lid; t < nbi * nbj; t += NT) {
            const bool on = load_bmask_u8(k.bbase + (bi0 + t / nbj) * P.w[P_B + 3] +
                                          (bj0 + t % nbj) * P.w[P_B + 4]) != 0u;
            any = any || on;
            all = all && on;
        }
        if (any) atomicOr(bm_any, 1);
        if (!all) atomicAnd(bm_all, 0);
        barrier();
        mode = bm_all != 0 ? 1 : bm_any != 0 ? 2 : 0;
    }
    return mode;
}

/* Score of row ii (in its sequence) and key jj from the dot product q.k:
 * scale, soft-cap, ALiBi, masks, visibility; -inf where not visible and for
 * keys past the tile end j1. */
float score(Block k, float dot, int ii, int jj, int j1, bool full, int bmode)
{
    const bool row_ok = ii <= k.ilast;
    float x = dot * k.scale;
    if ((k.flags & F_SOFTCAP) != 0)
        x = k.softcap * attn_tanh(x / k.softcap);
    if ((k.flags & F_ALIBI) != 0)
        x -= k.slope * float(abs(ii + k.doff - jj));
    if ((k.flags & F_MASK) != 0 && row_ok && jj < j1) {
        const int mi = k.mbase + ii * P.w[P_M + 3] + jj * P.w[P_M + 4];
        const int mask_dt = P.w[P_MASK_DT];
        if (mask_dt == DT_U8) {
            if (load_mask_u8(mi) == 0u)
                x = NEG_INF;
        } else {
            x += load_mask(mask_dt, mi);
        }
    }
    if (!full) {
        const int dg = ii + k.doff;
        bool vis = !(k.causal && jj > dg);
        if (vis && jj >= k.sink_tokens) {
            if (k.wl >= 0 && jj < dg - k.wl) vis = false;
            if (k.wr >= 0 && jj > dg + k.wr) vis = false;
        }
        if (!vis)
            x = NEG_INF;
    }
    if (bmode == 2 && row_ok && jj < j1 &&
        load_bmask_u8(k.bbase + (ii / k.bq) * P.w[P_B + 3] + (jj / k.bk) * P.w[P_B + 4]) == 0u)
        x = NEG_INF;
    if (jj >= j1)
        x = NEG_INF;
    return x;
}

/* The sigmoid score's probability: sigmoid(x + bias), stable for any x. */
float sigmoid_p(float x)
{
    x += pf(P_SIGBIAS);
    const float e = exp(-abs(x));
    return (x >= 0.0 ? 1.0 : e) / (1.0 + e);
}

/* Column col of row ii's output: o (already normalised), gated, stored. */
void store_o(Block k, int ii, int col, float x)
{
    const int row = k.q0 + ii;
    if ((k.flags & F_GATE) != 0) {
        const int gi = P.w[P_G] + k.bt * P.w[P_G + 1] + row * P.w[P_G + 2] + k.h * P.w[P_G + 3] +
                       col * P.w[P_G + 4];
        x *= 1.0 / (1.0 + exp(-load_gate(P.w[P_GATE_DT], gi)));
    }
    store_out(P.w[P_OUT_DT], P.w[P_O] + k.bt * P.w[P_O + 1] + row * P.w[P_O + 2] +
              k.h * P.w[P_O + 3] + col * P.w[P_O + 4], x);
}

/* Row ii's log-sum-exp from its max m and sum lsum (when requested). */
void store_lse(Block k, int ii, float m, float lsum)
{
    if ((k.flags & F_LSE) != 0)
        L.w[P.w[P_L] + k.bt * P.w[P_L + 1] + k.h * P.w[P_L + 2] + (k.q0 + ii) * P.w[P_L + 3]] =
            lsum > 0.0 ? m + log(lsum) : NEG_INF;
}

/* The sink logit of the block's head (as a running max), -inf without. */
float sink_logit(Block k)
{
    return (k.flags & F_SINKS) != 0 ? pf(P_AUX + P.w[P_HQ] + k.h) : NEG_INF;
}
