/* The chunkwise-parallel form of attn_linear, for prefill.
 *
 * Tokens are taken C at a time (C = params->chunk_size, 32 by default). In a
 * chunk, with G_i the cumulative log-gate from the chunk start (per channel
 * for GLA/KDA, scalar for DECAY/GATED_DELTA, 0 otherwise), S0 the state at
 * the chunk start and Q already scaled:
 *
 *   A_ij = sum_c q_ic k_jc exp(G_ic - G_jc)          j <= i   (gated Gram)
 *   U    = V                                         (PLAIN, DECAY, GLA)
 *   U    = (I + L)^-1 diag(beta) (V - Khat S0)       (delta kinds: WY / UT form)
 *          L_ij = beta_i sum_c k_ic k_jc exp(G_ic - G_jc), j < i; Khat_i = k_i exp(G_i)
 *   O    = Qhat S0 + A U                             Qhat_i = q_i exp(G_i)
 *   S    = diag(exp(G_last)) S0 + Ktil^T U           Ktil_j = k_j exp(G_last - G_j)
 *
 * The triangular solve is a blocked forward substitution. Every exponent above is
 * a decay ratio exp(G_i - G_j) with i >= j (<= 1 for gates <= 0), so nothing
 * overflows however long the sequence or strong the gate.
 *
 * Per-channel Gram: rows go in blocks of 16. Row i of block I (rows
 * r0..r0+15) is scaled once, xh_i = q_i exp(G_i - Gref_I) <= q_i with
 * Gref_I = G_{r0-1}; the keys of block J once, kt_j = k_j exp(Gend_J - G_j)
 * <= k_j with Gend_J = G at J's last row. Block pair (I, J) multiplies the
 * rows by the one vector exp(Gref_I - Gend_J): <= 1 for I > J (each entry is
 * a product of ratios <= 1, underflowing only where the true entry is
 * negligible; exactly 1 for I = J + 1), >= 1 on the diagonal, where it is used
 * only when every channel decays by less than e^-60 across the block (no
 * overflow); otherwise the diagonal block is computed entry by entry from
 * exp(G_i - G_j). Qhat and Khat come from the same xh_i times exp(Gref_I).
 * GLA chunks that decay by less than e^-60 in every channel skip the blocks:
 * one reference, the chunk's last row, for all rows (gram_one_reference);
 * scalar gates likewise factor exp(G_i - G_j) by rows and keys (scalar_decay). */
#include <limits.h>
#include <math.h>
#include <string.h>
#include "linear.h"

#define SB 16
#define GUARD 60.0f

typedef struct chunk_ctx {
    const attn_linear_task *t;
    const attn_linear_kernels *ks;
    int64_t dk, dv, lk, lv, lc;
    int mode;                /* 0 no gate, 1 scalar, 2 per channel */
    attn_linear_pf pf;       /* the rows of the next work (t->pf_h, t->pf_dc) */
    /* G: cumulative log-gates from the chunk start; AG (per channel only):
     * each token's own gate exp(g); KT: keys transposed (Ktil in
     * gram_one_reference, whose KE holds Ktil times exp(-G_last) by rows) */
    float *Q, *K, *U, *G, *AG, *beta, *O, *A, *L, *X, *XH, *KT, *KE, *QT, *E, *den;
} chunk_ctx;

size_t attn_linear_chunk_ws_floats(const attn_linear_problem *p)
{
    const int64_t C = p->chunk, lk = attn_linear_ld(p->dk);
    const int64_t lv = attn_linear_ld(p->dv), lc = attn_linear_ld(C);
    int64_t le = lk > lv ? lk : lv;
    le = le > lc ? le : lc;
    return (size_t)(6 * C * lk + 2 * C * lv + 2 * C * lc + 2 * p->dk * lc + SB * lk + le + 2 * lc +
                    16 * 8);
}

static float *carve(float **cur, int64_t n)
{
    float *r = *cur;
    *cur += attn_linear_round16(n);
    return r;
}

/* Scalar gates: row i of the Gram A times exp(G_i - G_j), j < i (strict)
 * or j <= i. As exp(G_i - G_last) exp(G_last - G_j), one exponential per row
 * and one per key instead of one per entry, while the chunk's log-gates span
 * at most GUARD (neither factor then exceeds e^GUARD); else entry by entry. */
static void scalar_decay(const chunk_ctx *c, float *A, int n, int strict)
{
    const attn_linear_kernels *ks = c->ks;
    const int64_t lc = c->lc;
    const float *G = c->G, glast = G[n - 1];
    float *E = c->E, gmin = glast, gmax = glast;
    for (int i = 0; i < n; i++) {
        gmin = G[i] < gmin ? G[i] : gmin;
        gmax = G[i] > gmax ? G[i] : gmax;
    }
    if (gmax - gmin <= GUARD) {          /* NaN fails too: a NaN gate makes glast NaN */
        for (int j = 0; j < n; j++)
            E[j] = glast - G[j];
        ks->vexp(E, n);
        for (int i = 0; i < n; i++) {
            const int jn = strict ? i : i + 1;
            ks->vmul(A + i * lc, A + i * lc, E, jn);
            ks->scal(A + i * lc, expf(G[i] - glast), jn);
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        const int jn = strict ? i : i + 1;
        for (int j = 0; j < jn; j++)
            E[j] = G[i] - G[j];
        ks->vexp(E, jn);
        ks->vmul(A + i * lc, A + i * lc, E, jn);
    }
}

/* A (n x n, ld lc) = gated Gram of rows X, Y, lower triangle (strict or
 * inclusive), zeros above. keys_ready: KT (and, per channel, the kt rows in
 * c->X) already hold these keys Y from the previous call (the delta kinds'
 * K K^T after Q K^T), so they are not built again. */
static void gram(chunk_ctx *c, const float *X, const float *Y, int n, int strict, float *A,
                 int keys_ready)
{
    const attn_linear_kernels *ks = c->ks;
    const int64_t dk = c->dk, lk = c->lk, lc = c->lc;
    float *KT = c->KT, *E = c->E;
    if (c->mode != 2) {
        if (!keys_ready)
            ks->transpose(KT, lc, Y, lk, n, (int)dk);
        for (int r0 = 0; r0 < n; r0 += SB) {
            const int rn = n - r0 < SB ? n - r0 : SB;
            ks->gemm(rn, r0 + rn, (int)dk, X + r0 * lk, lk, 1, KT, lc, A + r0 * lc, lc, 0,
                     &c->pf);
        }
        if (c->mode == 1)
            scalar_decay(c, A, n, strict);
    } else {
        /* Row side once per row: xh_i = x_i exp(G_i - Gref_I), Gref_I = G at
         * the last row before block I (0 for the first block), so xh_i <= x_i.
         * Key block J (rows j0..j0+jb) uses the reference G_end = G at its
         * last row: kt_j = k_j exp(G_end - G_j) <= 1, shared by every row
         * block I >= J. Row block I against key block J takes
         * qt_i = xh_i exp(Gref_I - G_end): a product of two ratios <= 1 for
         * I > J (no exponent at all for I = J + 1, where Gref_I = G_end), and
         * on the diagonal a factor >= 1, used while it stays below e^GUARD,
         * else the diagonal block is computed entry by entry.
         * Both sides are running products of the token gates a_r = exp(g_r)
         * inside a block (one exponential per token instead of one per row
         * side, every factor <= 1). */
        const float *G = c->G;
        for (int i0 = 0; i0 < n; i0 += SB)
            ks->gate_scan(c->XH + i0 * lk, lk, X + i0 * lk, lk, c->AG + i0 * lk, lk,
                          n - i0 < SB ? n - i0 : SB, dk, 0, 1.0f);
        for (int j0 = 0; j0 < n; j0 += SB) {
            const int jb = n - j0 < SB ? n - j0 : SB;
            const float *gend = G + (j0 + jb - 1) * lk;
            if (!keys_ready) {
                ks->gate_scan(c->X + j0 * lk, lk, Y + j0 * lk, lk, c->AG + j0 * lk, lk, jb, dk,
                              1, 1.0f);
                ks->transpose(KT + j0, lc, c->X + j0 * lk, lk, jb, (int)dk);
            }
            for (int i0 = j0; i0 < n; i0 += SB) {
                const int rn = n - i0 < SB ? n - i0 : SB;
                const float *qt = c->XH + i0 * lk;
                if (i0 != j0 + SB) {
                    const float *gref = i0 ? G + (i0 - 1) * lk : NULL;
                    int ok = 1;
                    for (int64_t cc = 0; cc < dk; cc++) {
                        E[cc] = (gref ? gref[cc] : 0.0f) - gend[cc];
                        ok &= E[cc] <= GUARD;         /* NaN fails too */
                    }
                    if (!ok) {
                        for (int i = i0; i < i0 + rn; i++)
                            for (int j = j0; j < (strict ? i : i + 1); j++) {
                                ks->mul_exp(E, X + i * lk, G + i * lk, G + j * lk, dk);
                                const float *y = Y + j * lk;
                                float acc = 0.0f;
                                for (int64_t cc = 0; cc < dk; cc++)
                                    acc += E[cc] * y[cc];
                                A[i * lc + j] = acc;
                            }
                        continue;
                    }
                    ks->vexp(E, dk);
                    for (int i = 0; i < rn; i++)
                        ks->vmul(c->QT + i * lk, qt + i * lk, E, dk);
                    qt = c->QT;
                }
                ks->gemm(rn, jb, (int)dk, qt, lk, 1, KT + j0, lc, A + i0 * lc + j0, lc, 0,
                         &c->pf);
            }
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = strict ? i : i + 1; j < n; j++)
            A[i * lc + j] = 0.0f;
}

/* Per-channel gates, a chunk whose every channel decays by less than
 * e^-GUARD from its start to its last row (G_last >= -GUARD): the whole chunk
 * shares one reference, its last row. With running products of the token
 * gates (gate_scan; every factor <= 1)
 *   Qhat_i = q_i exp(G_i)            (for Qhat S0, into Q)
 *   Ktil_j = k_j exp(G_last - G_j)   (for the state update, into KT)
 * A_ij = sum_c Qhat_ic exp(-G_last,c) Ktil_jc: one GEMM per row block
 * against all the keys before it (KE: the factor on Ktil, stored by the
 * same scan), instead of a scaled copy of the rows per block pair. The
 * delta kinds' L (strict) likewise from Khat_i = k_i exp(G_i) (into K,
 * which is not read raw again: normalize has no gate). The channel
 * factor exp(-G_last) <= e^GUARD keeps every product finite (each is
 * q k exp(G_i - G_j), <= q k below the diagonal); the entries above it, where
 * the ratio exceeds 1, are overwritten with zeros. */
static int one_reference_fits(const chunk_ctx *c, int n)
{
    const float *glast = c->G + (n - 1) * c->lk;
    int ok = 1;
    for (int64_t cc = 0; cc < c->dk; cc++)
        ok &= glast[cc] >= -GUARD;                /* NaN fails too */
    return ok;
}

/* A = lower triangle (strict or inclusive, zeros above) of rows KE,
 * KE = diag(exp(-G_last)) KT. */
static void lower_products(chunk_ctx *c, const float *rows, float *A, int n, int strict)
{
    const attn_linear_kernels *ks = c->ks;
    const int64_t dk = c->dk, lk = c->lk, lc = c->lc;
    for (int r0 = 0; r0 < n; r0 += SB) {
        const int rn = n - r0 < SB ? n - r0 : SB;
        ks->gemm(rn, r0 + rn, (int)dk, rows + r0 * lk, lk, 1, c->KE, lc, A + r0 * lc, lc, 0,
                 &c->pf);
    }
    for (int i = 0; i < n; i++)
        for (int j = strict ? i : i + 1; j < n; j++)
            A[i * lc + j] = 0.0f;
}

/* q, k: the chunk's query and key rows (ld ldq, ldk), either the
 * workspace copies or the caller's tensors read in place; q NULL: Q already
 * holds Qhat (gate_load made it). Ktil goes straight to KT, transposed (the
 * Gram's right side and, row-major, the state update's left one). */
static void gram_one_reference(chunk_ctx *c, int n, int delta, const float *q, int64_t ldq,
                               const float *k, int64_t ldk)
{
    const attn_linear_kernels *ks = c->ks;
    const int64_t dk = c->dk, lk = c->lk, lc = c->lc;
    if (q)
        ks->gate_scan(c->Q, lk, q, ldq, c->AG, lk, n, dk, 0, 1.0f);
    for (int64_t cc = 0; cc < dk; cc++)
        c->E[cc] = -c->G[(n - 1) * lk + cc];
    ks->vexp(c->E, dk);
    ks->gate_scan_t(c->KT, c->KE, c->E, lc, k, ldk, c->AG, lk, n, dk, 1, 1.0f);
    lower_products(c, c->Q, c->A, n, 0);
    if (delta) {
        ks->gate_scan(c->K, lk, k, ldk, c->AG, lk, n, dk, 0, 1.0f);
        lower_products(c, c->K, c->L, n, 1);
    }
}

/* Per-channel gates, after gram(): dst_i = x_i exp(G_i) from its row side
 * xh_i = x_i exp(G_i - Gref_I) as xh_i exp(Gref_I), both factors <= 1. */
static void hat_from_rowside(const chunk_ctx *c, float *dst, int n)
{
    const int64_t dk = c->dk, lk = c->lk;
    float *E = c->E;
    for (int i0 = 0; i0 < n; i0 += SB) {
        const int rn = n - i0 < SB ? n - i0 : SB;
        if (i0 == 0) {
            if (dst != c->XH)
                memcpy(dst, c->XH, (size_t)((rn - 1) * lk + dk) * sizeof *dst);
            continue;
        }
        memcpy(E, c->G + (i0 - 1) * lk, (size_t)dk * sizeof *E);
        c->ks->vexp(E, dk);
        for (int i = i0; i < i0 + rn; i++)
            c->ks->vmul(dst + i * lk, c->XH + i * lk, E, dk);
    }
}

/* Per-channel gates, after gram() of these keys: Ktil_j = k_j exp(G_last -
 * G_j) in place of kt_j = k_j exp(Gend_J - G_j) (c->X) as kt_j times
 * exp(G_last - Gend_J), both factors <= 1: one vector of exponents per key
 * block instead of one per row. */
static void ktil_from_keys(const chunk_ctx *c, int n)
{
    const int64_t dk = c->dk, lk = c->lk;
    const float *glast = c->G + (n - 1) * lk;
    float *E = c->E;
    for (int j0 = 0; j0 + SB < n; j0 += SB) {
        const float *gend = c->G + (j0 + SB - 1) * lk;
        for (int64_t cc = 0; cc < dk; cc++)
            E[cc] = glast[cc] - gend[cc];
        c->ks->vexp(E, dk);
        for (int j = j0; j < j0 + SB; j++)
            c->ks->vmul(c->X + j * lk, c->X + j * lk, E, dk);
    }
}

/* dst_r = src_r * exp(G_r - off) for r < n, off = 0 or the last row's G
 * (reversed: exp(G_last - G_r)). */
static void scale_rows(const chunk_ctx *c, float *dst, const float *src, int n, int from_last)
{
    const int64_t dk = c->dk, lk = c->lk;
    if (c->mode == 2) {
        const float *gl = c->G + (n - 1) * lk;
        for (int r = 0; r < n; r++)
            c->ks->mul_exp(dst + r * lk, src + r * lk, from_last ? gl : c->G + r * lk,
                           from_last ? c->G + r * lk : NULL, dk);
    } else {
        float *E = c->E;
        for (int r = 0; r < n; r++)
            E[r] = from_last ? c->G[n - 1] - c->G[r] : c->G[r];
        c->ks->vexp(E, n);
        for (int r = 0; r < n; r++) {
            if (dst != src)
                memcpy(dst + r * lk, src + r * lk, (size_t)dk * sizeof *dst);
            c->ks->scal(dst + r * lk, E[r], dk);
        }
    }
}

void attn_linear_chunkwise(const attn_linear_task *t, int64_t c_begin, int64_t c_end)
{
    const attn_linear_problem *p = t->p;
    chunk_ctx c;
    c.t = t;
    c.ks = t->ks;
    c.dk = p->dk;
    c.dv = p->dv;
    c.lk = attn_linear_ld(p->dk);
    c.lv = attn_linear_ld(p->dv);
    c.lc = attn_linear_ld(p->chunk);
    c.mode = (p->has_g || p->decay) ? (p->g_per_channel ? 2 : 1) : 0;
    const int64_t C = p->chunk, dk = c.dk, dv = c.dv, lk = c.lk, lv = c.lv, lc = c.lc;
    float *cur = t->ws;
    c.Q = carve(&cur, C * lk);
    c.K = carve(&cur, C * lk);
    c.G = carve(&cur, C * lk);
    c.AG = carve(&cur, C * lk);
    c.X = carve(&cur, C * lk);
    c.XH = carve(&cur, C * lk);
    c.U = carve(&cur, C * lv);
    c.O = carve(&cur, C * lv);
    c.A = carve(&cur, C * lc);
    c.L = carve(&cur, C * lc);
    c.KT = carve(&cur, dk * lc);
    c.KE = carve(&cur, dk * lc);
    c.QT = carve(&cur, SB * lk);
    c.E = carve(&cur, lk > lv ? (lk > lc ? lk : lc) : (lv > lc ? lv : lc));
    c.beta = carve(&cur, lc);
    c.den = carve(&cur, lc);
    const attn_linear_kernels *ks = c.ks;
    const int delta = attn_linear_is_delta(p->kind);
    float *S = t->S;
    const int64_t lds = t->lds;
    const int out = !t->state_only;

    /* Per-channel gates, queries and keys that need no conversion: while a
     * chunk fits one reference, its gate scans read them from the caller's
     * tensors (the scale folded in), with no workspace copy. */
    const int may_read_in_place = out && c.mode == 2 && !p->normalize;
    for (int64_t c0 = c_begin; c0 < c_end && c0 < t->len; c0 += C) {
        const int n = (int)(t->len - c0 < C ? t->len - c0 : C);
        int64_t ldq = lk, ldk = lk;
        const float *qin = may_read_in_place ? attn_linear_rows_in_place(t, &p->q, c0, &ldq) : NULL;
        const float *kin = may_read_in_place ? attn_linear_rows_in_place(t, &p->k, c0, &ldk) : NULL;
        int copied = !(qin && kin);
        /* f32 values and per-channel gates: row addresses by stride, no
         * per-row view lookups. */
        int64_t ldv = 0, ldg = 0;
        const float *vin = attn_linear_f32_rows(t, &p->v, c0, &ldv);
        const float *gin = c.mode == 2 ? attn_linear_f32_rows(t, &p->g, c0, &ldg) : NULL;
        /* Load the chunk; cumulative log-gates. */
        for (int r = 0; r < n; r++) {
            if (out && copied)
                attn_linear_load_qk(t, &p->q, c0 + r, c.Q + r * lk, p->scale);
            if (copied)
                attn_linear_load_qk(t, &p->k, c0 + r, c.K + r * lk, 1.0f);
            if (vin)
                memcpy(c.U + r * lv, vin + r * ldv, (size_t)dv * sizeof *c.U);
            else
                attn_linear_load_v(t, c0 + r, c.U + r * lv);
            if (delta)
                c.beta[r] = attn_linear_load_beta(t, c0 + r);
            if (c.mode == 2 && !gin) {
                attn_linear_load_g(t, c0 + r, c.G + r * lk);
            } else if (c.mode == 1) {
                float g;
                attn_linear_load_g(t, c0 + r, &g);
                c.G[r] = r ? c.G[r - 1] + g : g;
            }
        }

        /* Per-channel gates: their running sums and, queries read in place,
         * Qhat_i = q_i exp(G_i) with them (gram_one_reference's, reloaded
         * raw below where the chunk does not fit one reference). The next
         * work's page walks go out with its rows, the rest just after. */
        attn_linear_pf_init(&c.pf, t, t->pf_h, c0 + t->pf_dc, C);
        if (c.mode == 2)
            ks->gate_load(c.G, c.AG, lk, gin ? gin : c.G, gin ? ldg : lk, n, dk,
                          ATTN_LINEAR_G_FLOOR, c.Q, lk, copied ? NULL : qin, ldq, p->scale,
                          &c.pf);
        attn_linear_pf_walk(&c.pf, INT_MAX);

        /* Intra-chunk scores, then Qhat (in place: Q is not needed again
         * unless normalize, which has no gate). */
        const int one_ref = out && c.mode == 2 && one_reference_fits(&c, n);
        if (!one_ref && !copied) {
            for (int r = 0; r < n; r++) {
                attn_linear_load_qk(t, &p->q, c0 + r, c.Q + r * lk, p->scale);
                attn_linear_load_qk(t, &p->k, c0 + r, c.K + r * lk, 1.0f);
            }
            copied = 1;
        }
        if (one_ref && copied) {
            gram_one_reference(&c, n, delta, c.Q, lk, c.K, lk);
        } else if (one_ref) {
            gram_one_reference(&c, n, delta, NULL, 0, kin, ldk);
        } else if (out) {
            gram(&c, c.Q, c.K, n, 0, c.A, 0);
            if (c.mode == 2)
                hat_from_rowside(&c, c.Q, n);
            else if (c.mode)
                scale_rows(&c, c.Q, c.Q, n, 0);
        }
        if (out && !one_ref)
            ks->gemm(n, (int)dv, (int)dk, c.Q, lk, 1, S, lds, c.O, lv, 0, &c.pf);

        if (delta) {
            const float *Kh = c.K;               /* one reference: Khat, L made */
            if (!one_ref)
                gram(&c, c.K, c.K, n, 1, c.L, out);
            /* Khat: per channel into XH (X keeps the keys' kt rows). */
            if (one_ref) {
                ;
            } else if (c.mode == 2) {
                hat_from_rowside(&c, c.XH, n);
                Kh = c.XH;
            } else if (c.mode) {
                scale_rows(&c, c.X, c.K, n, 0);
                Kh = c.X;
            }
            ks->gemm(n, (int)dv, (int)dk, Kh, lk, 1, S, lds, c.U, lv, -1, &c.pf);
            for (int j = 0; j < n; j++) {
                const float b = c.beta[j];
                ks->scal(c.U + j * lv, b, dv);
                ks->scal(c.L + j * lc, b, j);
            }
            /* (I + L) U = rhs, a block of SB rows at a time: the rows solved in
             * earlier blocks enter through one GEMM, then forward substitution
             * inside the block. */
            for (int j0 = 0; j0 < n; j0 += SB) {
                const int jb = n - j0 < SB ? n - j0 : SB;
                if (j0)
                    ks->gemm(jb, (int)dv, j0, c.L + j0 * lc, lc, 1, c.U, lv, c.U + j0 * lv, lv, -1,
                             &c.pf);
                for (int j = j0 + 1; j < j0 + jb; j++) {
                    float *u = c.U + j * lv;
                    const float *l = c.L + j * lc;
                    for (int i = j0; i < j; i++)
                        if (l[i] != 0.0f)
                            ks->axpy(u, -l[i], c.U + i * lv, dv);
                }
            }
        }

        /* O += A U, lower triangle only (one reference: in chunk_products). */
        for (int r0 = 0; out && !one_ref && r0 < n; r0 += SB) {
            const int rn = n - r0 < SB ? n - r0 : SB;
            ks->gemm(rn, (int)dv, r0 + rn, c.A + r0 * lc, lc, 1, c.U, lv, c.O + r0 * lv, lv, 1,
                     &c.pf);
        }

        if (p->normalize && out) {
            for (int i = 0; i < n; i++) {
                float d = 0.0f;
                for (int64_t cc = 0; cc < dk; cc++)
                    d += c.Q[i * lk + cc] * t->z[cc];
                for (int j = 0; j <= i; j++)
                    d += c.A[i * lc + j];
                c.den[i] = d;
            }
            for (int j = 0; j < n; j++)
                for (int64_t cc = 0; cc < dk; cc++)
                    t->z[cc] += c.K[j * lk + cc];
            for (int i = 0; i < n; i++) {
                const float inv = 1.0f / (c.den[i] + p->norm_eps);
                for (int64_t x = 0; x < dv; x++)
                    c.O[i * lv + x] *= inv;
            }
        }

        /* State: S = diag(exp(G_last)) S + Ktil^T U. */
        const float *Kt = c.K;
        int o_written = 0;
        if (c.mode) {
            float *E = c.E;
            if (t->gsum)
                ks->axpy(t->gsum, 1.0f, c.mode == 2 ? c.G + (n - 1) * lk : c.G + n - 1,
                         c.mode == 2 ? dk : 1);
            if (c.mode == 2) {
                for (int64_t cc = 0; cc < dk; cc++)
                    E[cc] = c.G[(n - 1) * lk + cc];
                ks->vexp(E, dk);
            } else {
                E[0] = expf(c.G[n - 1]);
            }
            for (int64_t cc = 0; !one_ref && cc < dk; cc++)
                ks->scal(S + cc * lds, c.mode == 2 ? E[cc] : E[0], dv);
            if (c.mode == 2 && out && !one_ref)
                ktil_from_keys(&c, n);
            else if (!one_ref)
                scale_rows(&c, c.X, c.K, n, 1);
            Kt = c.X;
        }
        /* One reference: KT holds Ktil, transposed; O and the decayed update
         * in one pass, O straight to the caller's rows where it can stream. */
        if (one_ref) {
            int64_t lo = lv;
            float *o = attn_linear_out_rows_streamed(t, c0, &lo);
            ks->chunk_products(n, (int)dk, (int)dv, c.Q, lk, c.A, lc, c.U, lv, c.KT, lc, c.E, S,
                               lds, o ? o : c.O, lo, o != NULL, &c.pf);
            o_written = o != NULL;
        } else
            ks->gemm((int)dk, (int)dv, n, Kt, 1, lk, c.U, lv, S, lds, 1, &c.pf);

        attn_linear_pf_issue(&c.pf, INT_MAX);          /* what the products left */
        if (out && !o_written)
            attn_linear_store_o_rows(t, c0, n, c.O, lv);
    }
}
