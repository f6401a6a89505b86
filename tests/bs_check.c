/* attn_block_select case table and check (see bs_check.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bs_check.h"
#include "ref.h"
#include "ref_block_select.h"

int bs_ncases(void) { return (tu_quick ? 10 : 28) + 1; }

void bs_table_case(int i, bs_case *c)
{
    static const int BQK[][3] = { { 16, 16, 4 }, { 64, 32, 8 }, { 32, 64, 16 }, { 8, 24, 8 },
                                  { 128, 128, 16 }, { 12, 6, 3 }, { 5, 7, 1 } };
    static const float TAU[] = { 0.9f, 0.5f, 1.0f, 0.99f };
    static const int HH[][2] = { { 1, 1 }, { 4, 2 }, { 6, 1 }, { 2, 2 } };
    memset(c, 0, sizeof *c);
    c->p = (attn_block_select_params)ATTN_BLOCK_SELECT_PARAMS_INIT;
    if (i == bs_ncases() - 1) {
        /* query blocks of more segment rows than an implementation may score
         * at once (stride 1, 200-row blocks), causal with Sq > Sk */
        c->p.block_q = 200; c->p.block_k = 50; c->p.stride = 1; c->p.threshold = 0.8f;
        c->p.causal = 1;
        c->B = 1; c->Hq = 2; c->Hkv = 1; c->D = 8; c->Sq = 260; c->Sk = 210; c->dt = ATTN_F32;
        return;
    }
    const int *bqk = BQK[i % 7];
    c->p.method = (i / 7) % 2 ? ATTN_BLOCK_SELECT_MOBA : ATTN_BLOCK_SELECT_XATTN;
    c->p.block_q = bqk[0];
    c->p.block_k = bqk[1];
    c->p.stride = bqk[2];
    c->p.threshold = TAU[i % 4];
    c->p.top_k = 1 + i % 4;
    c->p.causal = (i / 2) % 2;
    c->B = 1 + i % 2;
    c->Hq = HH[i % 4][0];
    c->Hkv = HH[i % 4][1];
    c->D = (int[]){ 16, 64, 33, 128 }[i % 4];
    c->Sq = tu_randint(1, tu_quick ? 150 : 300);
    c->Sk = (i % 3 == 0) ? c->Sq : tu_randint(1, tu_quick ? 150 : 300);
    c->dt = (attn_dtype)(i % 3);
    c->layout = i % TU_NLAYOUTS;
}

int bs_make_inputs(const bs_case *c, double qscale, tu_tensor *q, tu_tensor *k, tu_tensor *m)
{
    int64_t qs[4] = { c->B, c->Sq, c->Hq, c->D }, ks[4] = { c->B, c->Sk, c->Hkv, c->D };
    int64_t ms[4] = { c->B, c->Hq, cdiv(c->Sq, c->p.block_q), cdiv(c->Sk, c->p.block_k) };
    if (tu_tensor_alloc(q, c->dt, 4, qs, c->layout) || tu_tensor_alloc(k, c->dt, 4, ks, c->layout) ||
        tu_tensor_alloc(m, ATTN_U8, 4, ms, (c->layout + 1) % TU_NLAYOUTS))
        return -1;
    tu_fill_normal(q, 0.0, qscale);
    tu_fill_normal(k, 0.0, 1.0);
    tu_poison(m);
    return 0;
}

void bs_case_name(const bs_case *c, const char *prefix, char *buf, size_t n)
{
    snprintf(buf, n, "%s %s B%d Sq%d Sk%d H%d/%d D%d bq%lld bk%lld s%lld tau%.2f top%lld%s %s %s",
             prefix, c->p.method == ATTN_BLOCK_SELECT_XATTN ? "xattn" : "moba", c->B, c->Sq,
             c->Sk, c->Hq, c->Hkv, c->D, (long long)c->p.block_q, (long long)c->p.block_k,
             (long long)c->p.stride, (double)c->p.threshold, (long long)c->p.top_k,
             c->p.causal ? " causal" : "", tu_dtype_name(c->dt), tu_layout_name(c->layout));
}

int bs_mask_at(const tu_tensor *m, int64_t b, int64_t h, int64_t i, int64_t j)
{
    int64_t idx[4] = { b, h, i, j };
    return ref_get(&m->t, idx) != 0.0;
}

/* Allowed prefix of block row I and its diagonal block (per the header). */
static int64_t allowed(const bs_case *c, int64_t I, int64_t *diag)
{
    int64_t last = (I + 1) * c->p.block_q - 1;
    if (last > c->Sq - 1) last = c->Sq - 1;
    const int64_t d = last + c->Sk - c->Sq;
    *diag = (d < 0 ? 0 : d) / c->p.block_k;
    if (!c->p.causal) return cdiv(c->Sk, c->p.block_k);
    return d < 0 ? 0 : d / c->p.block_k + 1;
}

void bs_check(const bs_case *c, const tu_tensor *q, const tu_tensor *k, const tu_tensor *m,
              const char *name)
{
    char msg[200];
    CHECK(tu_check_written(m, msg, sizeof msg) == 0, "%s: %s", name, msg);
    const int64_t nbq = cdiv(c->Sq, c->p.block_q), nbk = cdiv(c->Sk, c->p.block_k);
    const size_t rows = (size_t)(c->B * c->Hq * nbq);
    uint8_t *want = malloc(rows * (size_t)nbk + 1), *close = malloc(rows + 1);
    CHECK(want && close && ref_block_select(&c->p, &q->t, &k->t, want, close, CLOSE_EPS) == 0,
          "%s: reference failed", name);
    long mismatches = 0, invariant = 0, skipped = 0;
    for (int64_t b = 0; b < c->B && want && close; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t I = 0; I < nbq; I++) {
                int64_t diag;
                const int64_t r = (b * c->Hq + h) * nbq + I, n = allowed(c, I, &diag);
                int64_t kept = 0;
                for (int64_t J = 0; J < nbk; J++) {
                    const int got = bs_mask_at(m, b, h, I, J);
                    kept += got;
                    if (got && J >= n) invariant++;              /* never a future block */
                    if (!close[r] && got != want[r * nbk + J]) mismatches++;
                }
                skipped += close[r];
                if (n > 0 && c->p.method == ATTN_BLOCK_SELECT_XATTN && c->p.threshold >= 1.0f &&
                    kept != n)
                    invariant++;                                 /* tau = 1 keeps all */
                if (n > 0 && !bs_mask_at(m, b, h, I, 0) && c->p.method == ATTN_BLOCK_SELECT_XATTN)
                    invariant++;                                 /* first block */
                if (n > 0 && !bs_mask_at(m, b, h, I, diag))
                    invariant++;                                 /* diagonal block */
                if (c->p.method == ATTN_BLOCK_SELECT_MOBA &&
                    kept != (n < c->p.top_k ? n : c->p.top_k))
                    invariant++;                                 /* exactly top_k */
            }
    CHECK(mismatches == 0, "%s: %ld mask elements differ from the reference", name, mismatches);
    CHECK(invariant == 0, "%s: %ld invariant violations", name, invariant);
    if (tu_verbose)
        printf("  %s: ok (%ld close rows skipped)\n", name, skipped);
    free(want);
    free(close);
}

static bs_case small_case(int method)
{
    bs_case c;
    memset(&c, 0, sizeof c);
    c.p = (attn_block_select_params)ATTN_BLOCK_SELECT_PARAMS_INIT;
    c.p.method = method ? ATTN_BLOCK_SELECT_MOBA : ATTN_BLOCK_SELECT_XATTN;
    c.p.block_q = c.p.block_k = 16;
    c.p.stride = 4;
    c.B = 1;
    c.Hq = c.Hkv = 1;
    c.dt = ATTN_F32;
    return c;
}

bs_case bs_ties_case(int method)
{
    bs_case c = small_case(method);
    c.p.threshold = 0.5f;
    c.p.top_k = 3;
    c.D = 32; c.Sq = 64; c.Sk = 128;
    return c;
}

bs_case bs_nan_case(int method)
{
    bs_case c = small_case(method);
    c.D = 16; c.Sq = 40; c.Sk = 80;
    return c;
}
