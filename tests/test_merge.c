/*
 * attn_merge, for every CPU kernel set the machine runs:
 *  1. split-KV: the keys of a random problem are cut into 1..4 disjoint
 *     ranges; attn_sdpa runs on each (strided views of k/v, and of the mask
 *     when there is one) with lse; attn_merge combines the parts; the result
 *     is compared with the reference over all keys (tests/ref.c), and the
 *     merge alone with ref_merge over the same parts.
 *  2. synthetic parts: random outs with lses that are finite, far apart
 *     (overflow bait), partly -inf and all -inf (-> zeros and -inf).
 * Outputs are poisoned with NaN and guarded; dtypes F32/F16/BF16 for the
 * parts and the result, any layout.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"
#include "ref.h"
#include "testutil.h"

#define NISA 4
#define MAXP 4
static attn_context *ctxs[NISA];
static double err_chain[NISA][3], err_merge[NISA][3], err_lse[NISA];

static double tol_for(attn_dtype a) { return a == ATTN_F32 ? 1e-5 : 1e-2; }

/* ---- 1. split-KV -------------------------------------------------------- */

typedef struct {
    int B, S, Sk, Hq, Hkv, D, Dv, nparts;
    attn_dtype in_dt, part_dt, out_dt;
    int layout, mask, causal_like, want_lse;
} mcase;

static void split_case(const mcase *c, int idx)
{
    char name[200];
    snprintf(name, sizeof name, "split#%d B%d S%d Sk%d H%d/%d D%d/%d parts %d %s/%s->%s %s%s%s",
             idx, c->B, c->S, c->Sk, c->Hq, c->Hkv, c->D, c->Dv, c->nparts,
             tu_dtype_name(c->in_dt), tu_dtype_name(c->part_dt), tu_dtype_name(c->out_dt),
             tu_layout_name(c->layout), c->mask == 1 ? " mask" : c->mask == 2 ? " boolmask" : "",
             c->want_lse ? " lse" : "");
    int64_t sq_[4] = { c->B, c->S, c->Hq, c->D }, sk_[4] = { c->B, c->Sk, c->Hkv, c->D };
    int64_t sv_[4] = { c->B, c->Sk, c->Hkv, c->Dv }, so_[4] = { c->B, c->S, c->Hq, c->Dv };
    int64_t sl_[3] = { c->B, c->Hq, c->S };
    int64_t sm_[4] = { c->B, c->Hq, c->S, c->Sk };
    tu_tensor q, k, v, mask, outs[MAXP], lses[MAXP], out, lse;
    memset(&mask, 0, sizeof mask);
    memset(&lse, 0, sizeof lse);
    int L = c->layout;
    tu_tensor_alloc(&q, c->in_dt, 4, sq_, L);
    tu_tensor_alloc(&k, c->in_dt, 4, sk_, (L + 1) % TU_NLAYOUTS);
    tu_tensor_alloc(&v, c->in_dt, 4, sv_, (L + 2) % TU_NLAYOUTS);
    tu_fill_normal(&q, 0, 1.5);
    tu_fill_normal(&k, 0, 1);
    tu_fill_normal(&v, 0, 1);
    attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
    if (c->mask) {
        tu_tensor_alloc(&mask, c->mask == 1 ? ATTN_F32 : ATTN_U8, 4, sm_, (L + 3) % TU_NLAYOUTS);
        if (c->mask == 1) {
            tu_fill_uniform(&mask, -3, 3);
        } else {
            int64_t ix[4];
            for (ix[0] = 0; ix[0] < sm_[0]; ix[0]++)
                for (ix[1] = 0; ix[1] < sm_[1]; ix[1]++)
                    for (ix[2] = 0; ix[2] < sm_[2]; ix[2]++)
                        for (ix[3] = 0; ix[3] < sm_[3]; ix[3]++)
                            ref_set(&mask.t, ix, tu_uniform() < 0.4);
        }
        p.mask = &mask.t;
    }
    /* Cuts: nparts non-empty ranges. */
    int64_t cut[MAXP + 1];
    cut[0] = 0;
    cut[c->nparts] = c->Sk;
    for (int i = 1; i < c->nparts; i++) {
        int64_t lo = cut[i - 1] + 1, hi = c->Sk - (c->nparts - i);
        cut[i] = lo + (int64_t)(tu_uniform() * (double)(hi - lo + 1));
    }
    for (int i = 0; i < c->nparts; i++) {
        attn_dtype pd = c->part_dt;
        if (i == 1 && c->part_dt != ATTN_F32) pd = ATTN_F32;   /* mixed part dtypes */
        tu_tensor_alloc(&outs[i], pd, 4, so_, (L + i) % TU_NLAYOUTS);
        tu_tensor_alloc(&lses[i], ATTN_F32, 3, sl_, (L + i + 1) % TU_NLAYOUTS);
    }
    tu_tensor_alloc(&out, c->out_dt, 4, so_, (L + 4) % TU_NLAYOUTS);
    if (c->want_lse)
        tu_tensor_alloc(&lse, ATTN_F32, 3, sl_, (L + 5) % TU_NLAYOUTS);

    size_t no = (size_t)(c->B * c->S * c->Hq * c->Dv), nl = (size_t)(c->B * c->Hq * c->S);
    double *rout = malloc(no * sizeof *rout), *rlse = malloc(nl * sizeof *rlse);
    double *mout = malloc(no * sizeof *mout), *mlse = malloc(nl * sizeof *mlse);
    CHECK(ref_sdpa(&p, &q.t, &k.t, &v.t, rout, rlse) == 0, "%s: reference", name);

    for (int isa = 0; isa < NISA; isa++) {
        if (!ctxs[isa])
            continue;
        const char *in = attn_isa_name((attn_isa)isa);
        attn_tensor ot[MAXP], lt[MAXP];
        int ok = 1;
        for (int i = 0; i < c->nparts; i++) {
            attn_tensor kv = tu_slice(&k, 1, cut[i], cut[i + 1] - cut[i]);
            attn_tensor vv = tu_slice(&v, 1, cut[i], cut[i + 1] - cut[i]);
            attn_tensor mv;
            attn_sdpa_params pp = p;
            if (c->mask) {
                mv = tu_slice(&mask, 3, cut[i], cut[i + 1] - cut[i]);
                pp.mask = &mv;
            }
            tu_poison(&outs[i]);
            tu_poison(&lses[i]);
            attn_status st = attn_sdpa(ctxs[isa], &pp, &q.t, &kv, &vv, &outs[i].t, &lses[i].t);
            CHECK(st == ATTN_OK, "[%s] %s: part %d attn_sdpa: %s: %s", in, name, i,
                  attn_status_string(st), attn_last_error());
            if (st != ATTN_OK)
                ok = 0;
            ot[i] = outs[i].t;
            lt[i] = lses[i].t;
        }
        if (!ok)
            continue;
        tu_poison(&out);
        if (c->want_lse)
            tu_poison(&lse);
        attn_status st = attn_merge(ctxs[isa], ot, lt, c->nparts, &out.t,
                                    c->want_lse ? &lse.t : NULL);
        CHECK(st == ATTN_OK, "[%s] %s: attn_merge: %s: %s", in, name, attn_status_string(st),
              attn_last_error());
        if (st != ATTN_OK)
            continue;
        char msg[256];
        long bad = tu_check_written(&out, msg, sizeof msg);
        CHECK(bad == 0, "[%s] %s: out: %ld problems, first: %s", in, name, bad, msg);
        if (c->want_lse) {
            bad = tu_check_written(&lse, msg, sizeof msg);
            CHECK(bad == 0, "[%s] %s: lse: %ld problems, first: %s", in, name, bad, msg);
        }
        /* The merge alone, against ref_merge of the very same parts. */
        ref_merge(ot, lt, c->nparts, mout, mlse);
        double e1 = tu_rel_err(&out, mout, NULL, NULL);
        double t1 = tol_for(c->out_dt);
        CHECK(e1 <= t1, "[%s] %s: merge vs ref_merge of the parts: error %.3g > %.1g", in, name,
              e1, t1);
        /* The whole chain against the reference over all keys. */
        double e2 = tu_rel_err(&out, rout, NULL, NULL);
        double t2 = (c->in_dt == ATTN_F32 && c->part_dt == ATTN_F32 && c->out_dt == ATTN_F32)
                    ? 1e-5 : 1e-2;
        CHECK(e2 <= t2, "[%s] %s: merged vs full reference: error %.3g > %.1g", in, name, e2, t2);
        if (e1 > err_merge[isa][c->out_dt]) err_merge[isa][c->out_dt] = e1;
        /* chain error by its narrowest intermediate storage (parts or out) */
        const int nar = (c->out_dt == ATTN_BF16 || c->part_dt == ATTN_BF16) ? ATTN_BF16
                        : (c->out_dt == ATTN_F16 || c->part_dt == ATTN_F16) ? ATTN_F16 : ATTN_F32;
        if (e2 > err_chain[isa][nar]) err_chain[isa][nar] = e2;
        if (c->want_lse) {
            double le = tu_lse_err(&lse, rlse, NULL);
            double lt_ = c->in_dt == ATTN_F32 ? 1e-5 : 1e-2;
            CHECK(le <= lt_, "[%s] %s: merged lse vs full reference: error %.3g > %.1g", in, name,
                  le, lt_);
            double le2 = tu_lse_err(&lse, mlse, NULL);
            CHECK(le2 <= 1e-5, "[%s] %s: merged lse vs ref_merge: error %.3g", in, name, le2);
            if (c->in_dt == ATTN_F32 && le > err_lse[isa]) err_lse[isa] = le;
        }
        if (tu_verbose)
            printf("  [%s] %-80s merge %.2e chain %.2e\n", in, name, e1, e2);
    }
    free(rout); free(rlse); free(mout); free(mlse);
    tu_tensor_free(&q); tu_tensor_free(&k); tu_tensor_free(&v); tu_tensor_free(&mask);
    for (int i = 0; i < c->nparts; i++) {
        tu_tensor_free(&outs[i]);
        tu_tensor_free(&lses[i]);
    }
    tu_tensor_free(&out); tu_tensor_free(&lse);
}

/* ---- 2. synthetic parts with -inf and extreme lses ---------------------- */

static void synthetic_case(int n, int B, int S, int H, int Dv, attn_dtype part_dt,
                           attn_dtype out_dt, int layout, int idx)
{
    char name[160];
    snprintf(name, sizeof name, "synthetic#%d n%d B%d S%d H%d Dv%d %s->%s %s", idx, n, B, S, H,
             Dv, tu_dtype_name(part_dt), tu_dtype_name(out_dt), tu_layout_name(layout));
    int64_t so_[4] = { B, S, H, Dv }, sl_[3] = { B, H, S };
    tu_tensor outs[MAXP], lses[MAXP], out, lse;
    attn_tensor ot[MAXP], lt[MAXP];
    for (int i = 0; i < n; i++) {
        tu_tensor_alloc(&outs[i], i % 2 ? ATTN_F32 : part_dt, 4, so_, (layout + i) % TU_NLAYOUTS);
        tu_tensor_alloc(&lses[i], ATTN_F32, 3, sl_, (layout + 2 * i + 1) % TU_NLAYOUTS);
        tu_fill_normal(&outs[i], 0, 1);
        ot[i] = outs[i].t;
        lt[i] = lses[i].t;
    }
    /* Row kinds: 0 all -inf, 1 some -inf, 2 finite ordinary, 3 finite huge
     * (|lse| ~ 100-1000: exp overflows without the max trick), 4 one part. */
    int64_t ix[3];
    int nallinf = 0;
    for (ix[0] = 0; ix[0] < B; ix[0]++)
        for (ix[1] = 0; ix[1] < H; ix[1]++)
            for (ix[2] = 0; ix[2] < S; ix[2]++) {
                int kind = (int)((ix[2] + ix[1] + ix[0]) % 5);
                int keep = tu_randint(0, n - 1);
                nallinf += kind == 0;
                for (int i = 0; i < n; i++) {
                    double l;
                    switch (kind) {
                    case 0: l = -INFINITY; break;
                    case 1: l = tu_uniform() < 0.5 && i != keep ? -INFINITY : 3 * tu_normal(); break;
                    case 2: l = 3 * tu_normal(); break;
                    case 3: l = (tu_uniform() < 0.5 ? -1 : 1) * (100 + 900 * tu_uniform()) + tu_normal(); break;
                    default: l = i == keep ? tu_normal() : -INFINITY; break;
                    }
                    ref_set(&lses[i].t, ix, l);
                }
            }
    int64_t nout = (int64_t)B * S * H * Dv, nlse = (int64_t)B * H * S;
    double *rout = malloc((size_t)nout * sizeof *rout), *rlse = malloc((size_t)nlse * sizeof *rlse);
    ref_merge(ot, lt, n, rout, rlse);
    tu_tensor_alloc(&out, out_dt, 4, so_, (layout + 3) % TU_NLAYOUTS);
    tu_tensor_alloc(&lse, ATTN_F32, 3, sl_, (layout + 4) % TU_NLAYOUTS);
    for (int isa = 0; isa < NISA; isa++) {
        if (!ctxs[isa])
            continue;
        const char *in = attn_isa_name((attn_isa)isa);
        for (int with_lse = 0; with_lse < 2; with_lse++) {
            tu_poison(&out);
            tu_poison(&lse);
            attn_status st = attn_merge(ctxs[isa], ot, lt, n, &out.t, with_lse ? &lse.t : NULL);
            CHECK(st == ATTN_OK, "[%s] %s: attn_merge: %s: %s", in, name, attn_status_string(st),
                  attn_last_error());
            if (st != ATTN_OK)
                continue;
            char msg[256];
            long bad = tu_check_written(&out, msg, sizeof msg);
            CHECK(bad == 0, "[%s] %s: out: %ld problems, first: %s", in, name, bad, msg);
            if (with_lse) {
                bad = tu_check_written(&lse, msg, sizeof msg);
                CHECK(bad == 0, "[%s] %s: lse: %ld problems, first: %s", in, name, bad, msg);
                double le = tu_lse_err(&lse, rlse, NULL);
                CHECK(le <= 1e-6, "[%s] %s: lse error %.3g (-inf rows must give -inf)", in, name,
                      le);
            } else {
                CHECK(tu_check_untouched(&lse) == 0, "[%s] %s: lse written though NULL was passed",
                      in, name);
            }
            double e = tu_rel_err(&out, rout, NULL, NULL);
            double t = tol_for(out_dt);
            CHECK(e <= t, "[%s] %s: out error %.3g > %.1g", in, name, e, t);
            /* All -inf rows: exactly zero. */
            long nz = 0;
            for (ix[0] = 0; ix[0] < B; ix[0]++)
                for (ix[1] = 0; ix[1] < H; ix[1]++)
                    for (ix[2] = 0; ix[2] < S; ix[2]++) {
                        if ((ix[2] + ix[1] + ix[0]) % 5)
                            continue;
                        for (int64_t cc = 0; cc < Dv; cc++) {
                            int64_t io[4] = { ix[0], ix[2], ix[1], cc };
                            nz += ref_get(&out.t, io) != 0.0;
                        }
                    }
            CHECK(nz == 0, "[%s] %s: %ld elements of all -inf rows are not 0", in, name, nz);
            if (e > err_merge[isa][out_dt]) err_merge[isa][out_dt] = e;
        }
    }
    (void)nallinf;
    free(rout); free(rlse);
    for (int i = 0; i < n; i++) {
        tu_tensor_free(&outs[i]);
        tu_tensor_free(&lses[i]);
    }
    tu_tensor_free(&out); tu_tensor_free(&lse);
}

int main(void)
{
    tu_init("test_merge");
    double t0 = tu_now();
    const char *only = getenv("ATTN_TEST_ISA");
    for (int isa = ATTN_ISA_SCALAR; isa <= ATTN_ISA_NEON; isa++) {
        if (only && *only && strcmp(only, attn_isa_name((attn_isa)isa)) != 0)
            continue;
        attn_options o = ATTN_OPTIONS_INIT;
        o.max_isa = isa;
        o.device = 0;
        attn_context *ctx = NULL;
        attn_status st = attn_context_create(&o, &ctx);
        CHECK(st == ATTN_OK, "attn_context_create: %s", attn_last_error());
        if (st != ATTN_OK)
            continue;
        attn_device_info info = ATTN_DEVICE_INFO_INIT;
        if (attn_device_get_info(ctx, 0, &info) != ATTN_OK || (int)info.isa != isa) {
            printf("isa %-7s: not available here, skipped\n", attn_isa_name((attn_isa)isa));
            attn_context_destroy(ctx);
            continue;
        }
        printf("isa %-7s: testing\n", attn_isa_name((attn_isa)isa));
        ctxs[isa] = ctx;
    }

    static const int HH[][2] = { { 1, 1 }, { 4, 4 }, { 8, 2 }, { 6, 1 } };
    static const int Ds[] = { 32, 40, 64, 80, 96, 112, 128, 256 };
    const int ncases = tu_quick ? 16 : 48;
    for (int i = 0; i < ncases; i++) {
        mcase c;
        memset(&c, 0, sizeof c);
        c.B = 1 + i % 3;
        c.S = (int[]){ 1, 7, 63, 65, 2, 64 }[i % 6];
        c.Sk = (int[]){ 4, 65, 129, 33, 200, 7, 64 }[i % 7];
        c.Hq = HH[i % 4][0];
        c.Hkv = HH[i % 4][1];
        c.D = Ds[i % 8];
        c.Dv = i % 5 == 0 ? Ds[(i + 3) % 8] : c.D;
        c.nparts = 1 + i % 4;
        if (c.nparts > c.Sk) c.nparts = c.Sk;
        c.in_dt = (attn_dtype)(i / 4 % 3);
        c.part_dt = i % 3 == 0 ? c.in_dt : ATTN_F32;
        c.out_dt = (attn_dtype)((i / 2) % 3);
        if (i < 6) c.in_dt = c.part_dt = c.out_dt = ATTN_F32;
        c.layout = i % TU_NLAYOUTS;
        c.mask = i % 5 == 3 ? 1 : i % 5 == 4 ? 2 : 0;
        c.want_lse = i % 4 != 2;
        split_case(&c, i);
    }
    int nsyn = tu_quick ? 8 : 24;
    for (int i = 0; i < nsyn; i++)
        synthetic_case(1 + i % 4, 1 + i % 2, (int[]){ 1, 5, 17, 64 }[i % 4], 1 + i % 3,
                       Ds[i % 8], (attn_dtype)(i / 3 % 3), (attn_dtype)(i % 3), i % TU_NLAYOUTS, i);

    printf("max error (relative to max|ref|): merge vs ref_merge of the same parts, by out "
           "dtype | split-KV chain vs the full reference, by the narrowest of part/out dtype | "
           "lse (f32 inputs)\n");
    for (int isa = 0; isa < NISA; isa++) {
        if (!ctxs[isa])
            continue;
        printf("  %-7s merge: f32 %.2e f16 %.2e bf16 %.2e | chain: f32 %.2e f16 %.2e bf16 %.2e"
               " | lse %.2e\n", attn_isa_name((attn_isa)isa), err_merge[isa][0],
               err_merge[isa][1], err_merge[isa][2], err_chain[isa][0], err_chain[isa][1],
               err_chain[isa][2], err_lse[isa]);
        attn_context_destroy(ctxs[isa]);
    }
    printf("time: %.1fs\n", tu_now() - t0);
    return tu_finish();
}
