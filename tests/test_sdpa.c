/*
 * attn_sdpa against the double-precision reference (tests/ref.c), for every
 * CPU kernel set the machine runs, over a case matrix of sizes, head dims,
 * head sharing, every feature alone and combined, dtypes and layouts.
 *
 * Every case: fresh random inputs; outputs poisoned with NaN and followed by
 * a guard region (and gaps, for padded layouts) that must stay untouched;
 * inputs must be left unchanged; error = max |out - ref| / max |ref|.
 *
 * Environment: see testutil.h (ATTN_TEST_SEED, ATTN_TEST_QUICK,
 * ATTN_TEST_VERBOSE, ATTN_TEST_FILTER, ATTN_TEST_ISA).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"
#include "ref.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Cases                                                                    */
/* ------------------------------------------------------------------------ */

enum { MASK_NONE = 0, MASK_ADD, MASK_ADD_NEGINF, MASK_ADD_NEGINF_ROWS, MASK_BOOL,
       MASK_BOOL_EMPTY_ROWS };

typedef struct tcase {
    char tag[40];              /* what the case is about */
    int B, Sq, Sk, Hq, Hkv, D, Dv;
    int in_dt, out_dt;         /* -1: chosen by tc_add */
    int causal;
    int64_t wl, wr, sink;
    float softcap, scale;
    int alibi, sinklog, sigmoid;
    float sbias;
    int gate, gate_dt;         /* gate_dt -1: rotates */
    int mask, mask_dt, mask_bb, mask_hb;   /* *_bb/_hb: broadcast over B / H */
    int bq, bk, bm_bb, bm_hb;  /* bq > 0: block mask */
    double bm_density;
    int nseq, lq[4], lk[4];    /* nseq > 0: varlen */
    int lse;
    int layout;                /* -1: rotates; q/out use it, k/v/gate/lse shifted */
    double qscale;             /* std-dev of q (sharper softmax when larger) */
    int big;                   /* left out of quick runs */
    double f32tol;             /* f32 tolerance when not 1e-5 (ill-conditioned cases) */
    int stride0;               /* 1: mask [B,H,..] view with stride 0 over B and H;
                                  2: k/v [.., Hkv, ..] views with stride 0 over heads */
    int threads;               /* > 0: on contexts of this many threads (not the
                                  machine's count); skipped with ATTN_TEST_NO_THREADS */
} tcase;

static tcase *cases;
static int ncases, capcases, rot;

static tcase tc_default(void)
{
    tcase c;
    memset(&c, 0, sizeof c);
    strcpy(c.tag, "plain");
    c.B = 1; c.Sq = 65; c.Sk = 65; c.Hq = 4; c.Hkv = 4; c.D = 64; c.Dv = 0;
    c.in_dt = -1; c.out_dt = -1;
    c.wl = -1; c.wr = -1;
    c.gate_dt = -1; c.mask_dt = ATTN_F32;
    c.bm_density = 0.6;
    c.lse = 1;
    c.layout = -1;
    c.qscale = 1.0;
    return c;
}

static void push(const tcase *c)
{
    if (ncases == capcases) {
        capcases = capcases ? 2 * capcases : 256;
        cases = realloc(cases, (size_t)capcases * sizeof *cases);
        if (!cases) { fprintf(stderr, "out of memory\n"); exit(99); }
    }
    cases[ncases++] = *c;
}

/* Adds a case; unspecified dtypes expand into an f32 run and a rotating
 * 16-bit run (f16/bf16 in, f32/f16/bf16 out). */
static void tc_add(tcase c)
{
    if (c.Dv == 0) c.Dv = c.D;
    if (c.sigmoid) c.lse = 0, c.sinklog = 0;
    if (c.layout < 0) c.layout = rot % TU_NLAYOUTS;
    if (c.gate_dt < 0) c.gate_dt = (int)(rot / 2 % 3);
    rot++;
    if (c.in_dt >= 0) {
        if (c.out_dt < 0) c.out_dt = c.in_dt;
        push(&c);
        return;
    }
    tcase a = c;
    a.in_dt = ATTN_F32;
    a.out_dt = c.out_dt >= 0 ? c.out_dt : ATTN_F32;
    push(&a);
    tcase b = c;
    b.in_dt = rot % 2 ? ATTN_F16 : ATTN_BF16;
    b.out_dt = c.out_dt >= 0 ? c.out_dt : (int)((rot / 2) % 3);
    b.layout = (c.layout + 2) % TU_NLAYOUTS;
    push(&b);
}

#define C(...) do { tcase c = tc_default(); __VA_ARGS__; tc_add(c); } while (0)

static const int Ds[] = { 32, 40, 64, 80, 96, 112, 128, 256 };
static const int HH[][2] = { { 1, 1 }, { 4, 4 }, { 8, 2 }, { 6, 1 } };

static void build_cases(void)
{
    /* Sizes: a covering set of (Sq, Sk), every head dim and head sharing. */
    static const int SS[][2] = { { 1, 1 }, { 1, 2 }, { 2, 7 }, { 7, 1 }, { 1, 63 }, { 7, 64 },
                                 { 63, 65 }, { 64, 64 }, { 65, 63 }, { 65, 129 }, { 129, 65 },
                                 { 2, 129 }, { 63, 7 }, { 129, 129 }, { 64, 1 }, { 65, 2 } };
    for (int i = 0; i < (int)(sizeof SS / sizeof SS[0]); i++)
        C(strcpy(c.tag, "size"); c.Sq = SS[i][0]; c.Sk = SS[i][1]; c.D = Ds[i % 8];
          c.Hq = HH[(i + i / 8) % 4][0]; c.Hkv = HH[(i + i / 8) % 4][1]; c.B = 1 + i % 3;
          c.lse = i % 4 != 3);
    /* Every head dim with GQA at one odd size. */
    for (int i = 0; i < 8; i++)
        C(strcpy(c.tag, "headdim"); c.Sq = 7; c.Sk = 129; c.D = Ds[i]; c.Hq = 8; c.Hkv = 2;
          c.B = 2);
    /* Dv != D. */
    static const int DV[][2] = { { 64, 32 }, { 32, 128 }, { 128, 64 }, { 40, 80 }, { 256, 128 },
                                 { 80, 40 }, { 112, 96 } };
    for (int i = 0; i < 7; i++)
        C(strcpy(c.tag, "dv!=d"); c.Sq = i % 2 ? 63 : 65; c.Sk = i % 3 ? 129 : 64;
          c.D = DV[i][0]; c.Dv = DV[i][1]; c.Hq = HH[i % 4][0]; c.Hkv = HH[i % 4][1];
          c.causal = i % 2; c.B = 1 + i % 2);
    /* bf16 tile edges (AMX: dims padded to 32, keys to 16/32, rows to 16):
     * odd head dims, Dv != D, partial row and key tiles, GQA, sigmoid. */
    C(strcpy(c.tag, "bf16 tile edges"); c.in_dt = ATTN_BF16; c.out_dt = ATTN_F32; c.D = 33;
      c.Dv = 17; c.Sq = 47; c.Sk = 97; c.Hq = 6; c.Hkv = 2; c.causal = 1);
    C(strcpy(c.tag, "bf16 tile edges"); c.in_dt = ATTN_BF16; c.out_dt = ATTN_F32; c.D = 8;
      c.Sq = 17; c.Sk = 31; c.Hq = 4; c.Hkv = 1; c.B = 2);
    C(strcpy(c.tag, "bf16 tile edges"); c.in_dt = ATTN_BF16; c.out_dt = ATTN_BF16; c.D = 256;
      c.Dv = 72; c.Sq = 33; c.Sk = 161; c.Hq = 2; c.Hkv = 1);
    C(strcpy(c.tag, "bf16 tile edges sigmoid"); c.in_dt = ATTN_BF16; c.out_dt = ATTN_F32;
      c.D = 50; c.Sq = 31; c.Sk = 65; c.sigmoid = 1);
    /* Long sequences (1000): a few only. */
    C(strcpy(c.tag, "long decode"); c.Sq = 1; c.Sk = 1000; c.Hq = 8; c.Hkv = 2; c.D = 128;
      c.B = 2);
    C(strcpy(c.tag, "long causal"); c.Sq = 1000; c.Sk = 1000; c.Hq = 2; c.Hkv = 1; c.D = 64;
      c.causal = 1; c.big = 1; c.in_dt = ATTN_F32);
    C(strcpy(c.tag, "long causal"); c.Sq = 1000; c.Sk = 1000; c.Hq = 1; c.Hkv = 1; c.D = 80;
      c.causal = 1; c.big = 1; c.in_dt = ATTN_BF16; c.out_dt = ATTN_BF16; c.layout = TU_SWAP12);
    C(strcpy(c.tag, "long Sq>Sk causal"); c.Sq = 1000; c.Sk = 63; c.Hq = 4; c.Hkv = 4; c.D = 32;
      c.causal = 1);
    C(strcpy(c.tag, "long window+sink"); c.Sq = 129; c.Sk = 1000; c.Hq = 6; c.Hkv = 1; c.D = 96;
      c.causal = 1; c.wl = 100; c.sink = 4; c.big = 1);
    C(strcpy(c.tag, "long alibi+softcap"); c.Sq = 64; c.Sk = 1000; c.Hq = 1; c.Hkv = 1; c.D = 256;
      c.alibi = 1; c.softcap = 20; c.big = 1);
    /* An f32 output of 8 MiB, which the driver stores with streaming stores:
     * rows 16-byte aligned (contiguous) and not (padded). Few keys and small
     * heads keep it cheap. */
    C(strcpy(c.tag, "streamed output"); c.Sq = 8192; c.Sk = 4; c.Hq = 16; c.Hkv = 4;
      c.D = 16; c.in_dt = ATTN_F32; c.layout = TU_CONTIG);
    C(strcpy(c.tag, "streamed output padded"); c.Sq = 8192; c.Sk = 4; c.Hq = 16; c.Hkv = 4;
      c.D = 16; c.in_dt = ATTN_F32; c.layout = TU_PADDED);
    /* Enough query blocks (many heads, long Sq, few keys: cheap to check) for
     * the driver to give each task twice the kernel set's query rows on up
     * to 16 threads, with panel slots reused within the call. */
    C(strcpy(c.tag, "many query blocks"); c.Sq = 1600; c.Sk = 9; c.Hq = 32; c.Hkv = 8;
      c.D = 16; c.wl = 3; c.sink = 2);
    C(strcpy(c.tag, "many query blocks varlen"); c.nseq = 3; c.lq[0] = 1200; c.lq[1] = 0;
      c.lq[2] = 400; c.lk[0] = 9; c.lk[1] = 5; c.lk[2] = 12; c.Hq = 32; c.Hkv = 4; c.D = 16;
      c.causal = 1);
    /* The driver's hand-out of tasks with fewer panel groups than threads
     * (threads share a group) and with more (each starts on its own, then
     * takes unstarted groups, then the dearest task left), at thread counts
     * that divide nothing. */
    C(strcpy(c.tag, "5 threads, fewer groups"); c.Sq = 1600; c.Sk = 9; c.Hq = 6; c.Hkv = 2;
      c.D = 16; c.causal = 1; c.threads = 5);
    C(strcpy(c.tag, "3 threads, more groups varlen"); c.nseq = 4; c.lq[0] = 300; c.lq[1] = 0;
      c.lq[2] = 1300; c.lq[3] = 40; c.lk[0] = 9; c.lk[1] = 5; c.lk[2] = 12; c.lk[3] = 3;
      c.Hq = 16; c.Hkv = 8; c.D = 16; c.causal = 1; c.threads = 3);
    /* Scores of magnitude ~100-300: tests the running-max rescaling. Rounding
     * the scores to f32 alone moves each weight by ~|s| * 2^-24 relative, so
     * f32 results are only good to ~1e-5 * |s| / 10 here. */
    C(strcpy(c.tag, "huge scores"); c.scale = 1.0f; c.qscale = 8.0; c.Sq = 65; c.Sk = 129;
      c.D = 64; c.f32tol = 1e-4);
    C(strcpy(c.tag, "huge scores causal"); c.scale = 1.0f; c.qscale = 12.0; c.Sq = 63;
      c.Sk = 64; c.D = 32; c.causal = 1; c.sinklog = 1; c.f32tol = 1e-4);
    C(strcpy(c.tag, "huge scores sigmoid"); c.scale = 1.0f; c.qscale = 8.0; c.Sq = 7; c.Sk = 65;
      c.D = 64; c.sigmoid = 1; c.f32tol = 1e-4);
    C(strcpy(c.tag, "long sharp"); c.Sq = 7; c.Sk = 1000; c.Hq = 4; c.Hkv = 2; c.D = 64;
      c.qscale = 4.0);

    /* Causal: Sq < Sk, Sq = Sk, Sq > Sk (rows with no visible key), decode. */
    static const int CS[][2] = { { 63, 129 }, { 64, 64 }, { 65, 65 }, { 129, 63 }, { 1, 65 },
                                 { 7, 1 }, { 2, 1 }, { 65, 7 }, { 1, 1 } };
    for (int i = 0; i < 9; i++)
        C(strcpy(c.tag, "causal"); c.causal = 1; c.Sq = CS[i][0]; c.Sk = CS[i][1];
          c.D = Ds[(i + 3) % 8]; c.Hq = HH[i % 4][0]; c.Hkv = HH[i % 4][1]; c.B = 1 + i % 3);

    /* Sliding windows. */
    C(strcpy(c.tag, "window left"); c.wl = 0);
    C(strcpy(c.tag, "window left"); c.wl = 5; c.Sq = 63; c.Sk = 129; c.Hq = 8; c.Hkv = 2);
    C(strcpy(c.tag, "window left causal"); c.wl = 16; c.causal = 1; c.Sq = 129; c.Sk = 65;
      c.B = 2);
    C(strcpy(c.tag, "window left causal"); c.wl = 64; c.causal = 1; c.Sq = 129; c.Sk = 129;
      c.D = 128);
    C(strcpy(c.tag, "window right"); c.wr = 0);
    C(strcpy(c.tag, "window right"); c.wr = 3; c.Sq = 64; c.Sk = 129; c.D = 40);
    C(strcpy(c.tag, "window right"); c.wr = 2; c.Sq = 129; c.Sk = 64; c.Hq = 6; c.Hkv = 1);
    C(strcpy(c.tag, "window both"); c.wl = 7; c.wr = 3; c.B = 3);
    C(strcpy(c.tag, "window both"); c.wl = 20; c.wr = 0; c.Sq = 129; c.Sk = 64; c.D = 96);
    C(strcpy(c.tag, "window both causal"); c.wl = 9; c.wr = 4; c.causal = 1; c.Sq = 63;
      c.Sk = 129);
    C(strcpy(c.tag, "window 0/0 diagonal"); c.wl = 0; c.wr = 0; c.Sq = 65; c.Sk = 63);
    C(strcpy(c.tag, "window 0 causal Sq>Sk"); c.wl = 0; c.causal = 1; c.Sq = 129; c.Sk = 7);
    C(strcpy(c.tag, "window beyond keys"); c.wl = 2; c.wr = 1; c.Sq = 7; c.Sk = 129);

    /* Sink tokens (with windows; causality still applies). */
    C(strcpy(c.tag, "sink tokens"); c.causal = 1; c.wl = 8; c.sink = 4; c.Sq = 65; c.Sk = 129);
    C(strcpy(c.tag, "sink tokens"); c.wl = 3; c.wr = 2; c.sink = 5; c.Sq = 64; c.Sk = 64;
      c.Hq = 8; c.Hkv = 2);
    C(strcpy(c.tag, "sink tokens Sq>Sk"); c.causal = 1; c.wl = 0; c.sink = 1; c.Sq = 129;
      c.Sk = 65);
    C(strcpy(c.tag, "sink tokens > Sk"); c.wl = 2; c.sink = 100; c.Sq = 7; c.Sk = 64);
    C(strcpy(c.tag, "sink tokens right"); c.wl = 1; c.wr = 1; c.sink = 3; c.Sq = 129; c.Sk = 63;
      c.D = 80);
    C(strcpy(c.tag, "sink tokens no window"); c.sink = 7; c.causal = 1; c.Sq = 63; c.Sk = 63);

    /* Additive masks: f32 / f16, every broadcast. */
    for (int i = 0; i < 8; i++)
        C(strcpy(c.tag, "mask add"); c.mask = MASK_ADD; c.mask_dt = i < 4 ? ATTN_F32 : ATTN_F16;
          c.mask_bb = i & 1; c.mask_hb = (i >> 1) & 1; c.B = 2; c.Sq = i % 2 ? 63 : 7;
          c.Sk = i % 3 ? 65 : 129; c.Hq = HH[i % 4][0]; c.Hkv = HH[i % 4][1]; c.D = Ds[i]);
    C(strcpy(c.tag, "mask add -inf"); c.mask = MASK_ADD_NEGINF; c.B = 2; c.Sq = 63; c.Sk = 65);
    C(strcpy(c.tag, "mask add -inf"); c.mask = MASK_ADD_NEGINF; c.mask_dt = ATTN_F16;
      c.mask_hb = 1; c.Sq = 129; c.Sk = 64; c.causal = 1);
    C(strcpy(c.tag, "mask add -inf rows"); c.mask = MASK_ADD_NEGINF_ROWS; c.Sq = 65; c.Sk = 63;
      c.Hq = 8; c.Hkv = 2);
    C(strcpy(c.tag, "mask add causal"); c.mask = MASK_ADD; c.causal = 1; c.mask_bb = 1;
      c.B = 3; c.Sq = 64; c.Sk = 129);
    C(strcpy(c.tag, "mask stride-0 broadcast"); c.mask = MASK_ADD; c.mask_bb = 1; c.mask_hb = 1;
      c.stride0 = 1; c.B = 2; c.Sq = 33; c.Sk = 65; c.Hq = 8; c.Hkv = 2);
    C(strcpy(c.tag, "mask stride-0 broadcast"); c.mask = MASK_BOOL; c.mask_dt = ATTN_U8;
      c.mask_bb = 1; c.mask_hb = 1; c.stride0 = 1; c.B = 3; c.Sq = 7; c.Sk = 64);
    C(strcpy(c.tag, "k/v stride-0 heads"); c.stride0 = 2; c.Hq = 8; c.Hkv = 4; c.B = 2; c.Sq = 33;
      c.Sk = 65);
    C(strcpy(c.tag, "k/v stride-0 heads"); c.stride0 = 2; c.Hq = 6; c.Hkv = 6; c.Sq = 1;
      c.Sk = 129; c.causal = 1);
    /* Boolean masks. */
    for (int i = 0; i < 4; i++)
        C(strcpy(c.tag, "mask bool"); c.mask = MASK_BOOL; c.mask_dt = ATTN_U8; c.mask_bb = i & 1;
          c.mask_hb = (i >> 1) & 1; c.B = 2; c.Sq = 63 + i; c.Sk = 65 + 32 * i;
          c.Hq = HH[(i + 1) % 4][0]; c.Hkv = HH[(i + 1) % 4][1]; c.D = Ds[(i + 2) % 8]);
    C(strcpy(c.tag, "mask bool empty rows"); c.mask = MASK_BOOL_EMPTY_ROWS; c.mask_dt = ATTN_U8;
      c.B = 2; c.Sq = 65; c.Sk = 129);
    C(strcpy(c.tag, "mask bool empty rows+sinklog"); c.mask = MASK_BOOL_EMPTY_ROWS;
      c.mask_dt = ATTN_U8; c.sinklog = 1; c.Sq = 63; c.Sk = 64; c.Hq = 6; c.Hkv = 1);
    C(strcpy(c.tag, "mask bool causal window"); c.mask = MASK_BOOL; c.mask_dt = ATTN_U8;
      c.causal = 1; c.wl = 20; c.Sq = 64; c.Sk = 64);

    /* ALiBi. */
    C(strcpy(c.tag, "alibi"); c.alibi = 1; c.Hq = 8; c.Hkv = 2);
    C(strcpy(c.tag, "alibi causal"); c.alibi = 1; c.causal = 1; c.Sq = 63; c.Sk = 129);
    C(strcpy(c.tag, "alibi causal Sq>Sk"); c.alibi = 1; c.causal = 1; c.Sq = 129; c.Sk = 65;
      c.Hq = 6; c.Hkv = 1);
    C(strcpy(c.tag, "alibi+softcap+mask"); c.alibi = 1; c.softcap = 5; c.mask = MASK_ADD;
      c.mask_hb = 1; c.B = 2; c.Sq = 7; c.Sk = 65);

    /* Softcap. */
    C(strcpy(c.tag, "softcap"); c.softcap = 5; c.scale = 1.0f; c.D = 32);
    C(strcpy(c.tag, "softcap"); c.softcap = 30; c.qscale = 3; c.Sq = 63; c.Sk = 129; c.Hq = 8;
      c.Hkv = 2);
    C(strcpy(c.tag, "softcap causal"); c.softcap = 2; c.causal = 1; c.Sq = 64; c.Sk = 64;
      c.qscale = 2);

    /* Explicit scale. */
    C(strcpy(c.tag, "scale"); c.scale = 0.3f; c.Sq = 63; c.Sk = 64; c.D = 112);
    C(strcpy(c.tag, "scale"); c.scale = 0.02f; c.Sq = 7; c.Sk = 129; c.D = 96);

    /* Sink logits. */
    C(strcpy(c.tag, "sink logits"); c.sinklog = 1; c.Hq = 8; c.Hkv = 2);
    C(strcpy(c.tag, "sink logits causal"); c.sinklog = 1; c.causal = 1; c.Sq = 63; c.Sk = 129);
    C(strcpy(c.tag, "sink logits Sq>Sk"); c.sinklog = 1; c.causal = 1; c.Sq = 129; c.Sk = 63);
    C(strcpy(c.tag, "sink logits window"); c.sinklog = 1; c.wl = 4; c.wr = 4; c.Sq = 7;
      c.Sk = 129);

    /* Sigmoid attention. */
    C(strcpy(c.tag, "sigmoid"); c.sigmoid = 1; c.sbias = -2.0f);
    C(strcpy(c.tag, "sigmoid causal"); c.sigmoid = 1; c.sbias = 0.5f; c.causal = 1; c.Sq = 63;
      c.Sk = 129; c.Hq = 8; c.Hkv = 2);
    C(strcpy(c.tag, "sigmoid Sq>Sk"); c.sigmoid = 1; c.sbias = -4.6f; c.causal = 1; c.Sq = 129;
      c.Sk = 64);
    C(strcpy(c.tag, "sigmoid window+sink"); c.sigmoid = 1; c.wl = 5; c.sink = 2; c.Sq = 64;
      c.Sk = 64; c.D = 128);
    C(strcpy(c.tag, "sigmoid gate mask"); c.sigmoid = 1; c.sbias = -1; c.gate = 1;
      c.mask = MASK_ADD; c.B = 2; c.Sq = 7; c.Sk = 65);
    C(strcpy(c.tag, "sigmoid bool alibi softcap"); c.sigmoid = 1; c.mask = MASK_BOOL;
      c.mask_dt = ATTN_U8; c.alibi = 1; c.softcap = 3; c.Sq = 65; c.Sk = 63);

    /* Gate, in every dtype. */
    for (int i = 0; i < 3; i++)
        C(strcpy(c.tag, "gate"); c.gate = 1; c.gate_dt = i; c.Sq = 63 + i; c.Sk = 65;
          c.B = 1 + i; c.Hq = HH[i + 1][0]; c.Hkv = HH[i + 1][1]; c.Dv = 32 * (i + 1));
    C(strcpy(c.tag, "gate causal Sq>Sk"); c.gate = 1; c.causal = 1; c.Sq = 65; c.Sk = 7);

    /* Block-sparse masks. */
    static const int BK[][2] = { { 16, 32 }, { 64, 64 }, { 7, 13 }, { 1, 1 }, { 32, 16 },
                                 { 200, 3 } };
    for (int i = 0; i < 6; i++)
        C(strcpy(c.tag, "block mask"); c.bq = BK[i][0]; c.bk = BK[i][1]; c.bm_bb = i & 1;
          c.bm_hb = (i >> 1) & 1; c.B = 1 + i % 3; c.Sq = i % 2 ? 129 : 65;
          c.Sk = i % 3 ? 129 : 63; c.Hq = HH[i % 4][0]; c.Hkv = HH[i % 4][1];
          c.D = Ds[(i + 5) % 8]; c.bm_density = 0.5);
    C(strcpy(c.tag, "block mask causal"); c.bq = 16; c.bk = 16; c.causal = 1; c.Sq = 129;
      c.Sk = 129; c.bm_density = 0.7);
    C(strcpy(c.tag, "block mask sparse"); c.bq = 64; c.bk = 64; c.bm_density = 0.2; c.Sq = 129;
      c.Sk = 129; c.Hq = 8; c.Hkv = 2);
    C(strcpy(c.tag, "block mask+bool+window"); c.bq = 7; c.bk = 13; c.mask = MASK_BOOL;
      c.mask_dt = ATTN_U8; c.wl = 30; c.wr = 10; c.Sq = 65; c.Sk = 65);
    /* Block-sparse over several kernel tiles: blocks smaller and larger than
     * the tiles and not dividing S, sparse enough that whole tiles and whole
     * query blocks are hidden, with causal, GQA and varlen. */
    C(strcpy(c.tag, "block sparse causal GQA"); c.bq = 64; c.bk = 64; c.bm_density = 0.15;
      c.causal = 1; c.Sq = 190; c.Sk = 190; c.Hq = 4; c.Hkv = 2; c.D = 64);
    C(strcpy(c.tag, "block sparse tile-straddling"); c.bq = 48; c.bk = 200; c.bm_density = 0.3;
      c.Sq = 201; c.Sk = 380; c.Hq = 2; c.Hkv = 1; c.D = 64; c.causal = 1);
    C(strcpy(c.tag, "block sparse empty rows"); c.bq = 100; c.bk = 96; c.bm_density = 0.05;
      c.Sq = 201; c.Sk = 260; c.Hq = 2; c.Hkv = 2);
    C(strcpy(c.tag, "varlen block sparse causal"); c.nseq = 3; c.lq[0] = 180; c.lq[1] = 1;
      c.lq[2] = 97; c.lk[0] = 150; c.lk[1] = 70; c.lk[2] = 97; c.causal = 1; c.bq = 32;
      c.bk = 64; c.bm_density = 0.25; c.Hq = 4; c.Hkv = 2);

    /* Varlen. */
    C(strcpy(c.tag, "varlen"); c.nseq = 3; c.lq[0] = 5; c.lq[1] = 0; c.lq[2] = 1;
      c.lk[0] = 7; c.lk[1] = 3; c.lk[2] = 1);
    C(strcpy(c.tag, "varlen"); c.nseq = 3; c.lq[0] = 65; c.lq[1] = 1; c.lq[2] = 0;
      c.lk[0] = 63; c.lk[1] = 0; c.lk[2] = 129; c.Hq = 8; c.Hkv = 2);
    C(strcpy(c.tag, "varlen causal"); c.nseq = 3; c.lq[0] = 1; c.lq[1] = 64; c.lq[2] = 7;
      c.lk[0] = 1; c.lk[1] = 129; c.lk[2] = 5; c.causal = 1; c.D = 128);
    C(strcpy(c.tag, "varlen causal window sink"); c.nseq = 4; c.lq[0] = 33; c.lq[1] = 0;
      c.lq[2] = 1; c.lq[3] = 65; c.lk[0] = 33; c.lk[1] = 7; c.lk[2] = 1; c.lk[3] = 64;
      c.causal = 1; c.wl = 10; c.sink = 2; c.Hq = 6; c.Hkv = 1);
    C(strcpy(c.tag, "varlen mask+block+alibi"); c.nseq = 3; c.lq[0] = 17; c.lq[1] = 1;
      c.lq[2] = 40; c.lk[0] = 20; c.lk[1] = 65; c.lk[2] = 3; c.mask = MASK_ADD;
      c.mask_dt = ATTN_F16; c.mask_hb = 1; c.bq = 8; c.bk = 16; c.alibi = 1; c.sinklog = 1);
    C(strcpy(c.tag, "varlen bool gate"); c.nseq = 2; c.lq[0] = 64; c.lq[1] = 63; c.lk[0] = 65;
      c.lk[1] = 1; c.mask = MASK_BOOL; c.mask_dt = ATTN_U8; c.mask_bb = 1; c.gate = 1);
    C(strcpy(c.tag, "varlen sigmoid"); c.nseq = 3; c.lq[0] = 9; c.lq[1] = 0; c.lq[2] = 30;
      c.lk[0] = 9; c.lk[1] = 4; c.lk[2] = 0; c.sigmoid = 1; c.sbias = -1; c.causal = 1);

    /* Everything at once. */
    C(strcpy(c.tag, "all features"); c.B = 2; c.Sq = 65; c.Sk = 129; c.Hq = 8; c.Hkv = 2;
      c.D = 80; c.Dv = 64; c.causal = 1; c.wl = 40; c.wr = 0; c.sink = 3; c.softcap = 10;
      c.alibi = 1; c.sinklog = 1; c.gate = 1; c.mask = MASK_ADD; c.mask_bb = 1; c.bq = 16;
      c.bk = 32; c.bm_density = 0.8);
    C(strcpy(c.tag, "all features bool"); c.B = 3; c.Sq = 63; c.Sk = 63; c.Hq = 6; c.Hkv = 1;
      c.D = 40; c.Dv = 96; c.wl = 12; c.wr = 5; c.sink = 1; c.softcap = 4; c.alibi = 1;
      c.sinklog = 1; c.gate = 1; c.mask = MASK_BOOL; c.mask_dt = ATTN_U8; c.mask_hb = 1;
      c.bq = 7; c.bk = 13; c.bm_bb = 1);
    C(strcpy(c.tag, "all features varlen"); c.nseq = 3; c.lq[0] = 20; c.lq[1] = 1; c.lq[2] = 0;
      c.lk[0] = 40; c.lk[1] = 1; c.lk[2] = 6; c.Hq = 4; c.Hkv = 2; c.D = 64; c.Dv = 32;
      c.causal = 1; c.wl = 8; c.wr = 2; c.sink = 2; c.softcap = 6; c.alibi = 1; c.sinklog = 1;
      c.gate = 1; c.mask = MASK_ADD_NEGINF; c.bq = 4; c.bk = 4; c.bm_density = 0.8);

    /* A dtype sweep: every in x out combination on one moderate case. */
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            C(strcpy(c.tag, "dtype sweep"); c.in_dt = a; c.out_dt = b; c.Sq = 33; c.Sk = 65;
              c.Hq = 4; c.Hkv = 2; c.D = 64; c.Dv = 96; c.causal = 1; c.gate = 1;
              c.gate_dt = (a + b) % 3; c.layout = (a * 3 + b) % TU_NLAYOUTS);
}

static double case_cost(const tcase *c)
{
    double sq = c->Sq, sk = c->Sk;
    if (c->nseq) {
        double s = 0;
        for (int i = 0; i < c->nseq; i++)
            s += (double)c->lq[i] * c->lk[i];
        return s * c->Hq * (c->D + c->Dv);
    }
    return (double)c->B * c->Hq * sq * sk * (c->D + c->Dv);
}

/* ------------------------------------------------------------------------ */
/* Running                                                                  */
/* ------------------------------------------------------------------------ */

#define NISA 4
static attn_context *ctxs[NISA];
static attn_context *ctxs_sized[NISA];   /* for cases with a thread count: the last one */
static int ctxs_sized_threads[NISA];
static double isa_time[NISA];
static double err_pair[NISA][3][3], err_lse[NISA][3], err_ill[NISA];
static int ran_pair[NISA][3][3];

static void case_name(const tcase *c, char *buf, size_t n)
{
    char shape[96];
    if (c->nseq)
        snprintf(shape, sizeof shape, "varlen[%d:%d/%d,%d/%d,%d/%d,%d/%d]", c->nseq, c->lq[0],
                 c->lk[0], c->lq[1], c->lk[1], c->lq[2], c->lk[2], c->lq[3], c->lk[3]);
    else
        snprintf(shape, sizeof shape, "B%d Sq%d Sk%d", c->B, c->Sq, c->Sk);
    snprintf(buf, n, "%s: %s H%d/%d D%d/%d %s->%s %s%s", c->tag, shape, c->Hq, c->Hkv, c->D,
             c->Dv, tu_dtype_name(c->in_dt), tu_dtype_name(c->out_dt), tu_layout_name(c->layout),
             c->lse ? " lse" : "");
}

static void snapshot(const tu_tensor *t, unsigned char **copy)
{
    *copy = NULL;
    if (!t->mem)
        return;
    *copy = malloc(t->total);
    memcpy(*copy, t->mem, t->total);
}

static int same(const tu_tensor *t, const unsigned char *copy)
{
    return !t->mem || memcmp(t->mem, copy, t->total) == 0;
}

/* The context of kernel set `isa` for case c: the machine's thread count,
 * or a context of c->threads threads (kept until a case asks for another
 * count). NULL when that could not be created (reported). */
static attn_context *ctx_for(int isa, const tcase *c)
{
    if (!c->threads)
        return ctxs[isa];
    if (ctxs_sized[isa] && ctxs_sized_threads[isa] != c->threads) {
        attn_context_destroy(ctxs_sized[isa]);
        ctxs_sized[isa] = NULL;
    }
    if (!ctxs_sized[isa]) {
        attn_options o = ATTN_OPTIONS_INIT;
        o.max_isa = isa;
        o.device = 0;
        o.num_threads = c->threads;
        attn_status st = attn_context_create(&o, &ctxs_sized[isa]);
        CHECK(st == ATTN_OK, "attn_context_create(max_isa=%s, %d threads): %s",
              attn_isa_name((attn_isa)isa), c->threads, attn_last_error());
        ctxs_sized_threads[isa] = c->threads;
    }
    return ctxs_sized[isa];
}

static void run_case(const tcase *c)
{
    char name[256];
    case_name(c, name, sizeof name);
    const int varlen = c->nseq > 0;
    int32_t cuq[5] = { 0 }, cuk[5] = { 0 };
    int64_t Bt = c->B, Tq = c->Sq, Tk = c->Sk, nb = c->B, msq = c->Sq, msk = c->Sk;
    if (varlen) {
        msq = msk = 0;
        for (int i = 0; i < c->nseq; i++) {
            cuq[i + 1] = cuq[i] + c->lq[i];
            cuk[i + 1] = cuk[i] + c->lk[i];
            if (c->lq[i] > msq) msq = c->lq[i];
            if (c->lk[i] > msk) msk = c->lk[i];
        }
        Bt = 1; Tq = cuq[c->nseq]; Tk = cuk[c->nseq]; nb = c->nseq;
    }
    const int L = c->layout;
    tu_tensor q, k, v, out, lse, gate, mask, bmask;
    memset(&gate, 0, sizeof gate); memset(&mask, 0, sizeof mask);
    memset(&bmask, 0, sizeof bmask); memset(&lse, 0, sizeof lse);
    int64_t sq_[4] = { Bt, Tq, c->Hq, c->D }, sk_[4] = { Bt, Tk, c->Hkv, c->D };
    int64_t sv_[4] = { Bt, Tk, c->Hkv, c->Dv }, so_[4] = { Bt, Tq, c->Hq, c->Dv };
    int64_t sl_[3] = { Bt, c->Hq, Tq };
    int fail = 0;
    fail |= tu_tensor_alloc(&q, c->in_dt, 4, sq_, L);
    if (c->stride0 == 2)
        sk_[2] = sv_[2] = 1;
    fail |= tu_tensor_alloc(&k, c->in_dt, 4, sk_, (L + 1) % TU_NLAYOUTS);
    fail |= tu_tensor_alloc(&v, c->in_dt, 4, sv_, (L + 3) % TU_NLAYOUTS);
    fail |= tu_tensor_alloc(&out, c->out_dt, 4, so_, L);
    if (c->lse)
        fail |= tu_tensor_alloc(&lse, ATTN_F32, 3, sl_, (L + 2) % TU_NLAYOUTS);
    tu_fill_normal(&q, 0.0, c->qscale);
    tu_fill_normal(&k, 0.0, 1.0);
    tu_fill_normal(&v, 0.0, 1.0);
    if (c->stride0 == 2 && !fail) {
        tu_broadcast_dim(&k, 2, c->Hkv);
        tu_broadcast_dim(&v, 2, c->Hkv);
    }

    attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
    p.scale = c->scale;
    p.causal = c->causal;
    p.window_left = c->wl;
    p.window_right = c->wr;
    p.sink_tokens = c->sink;
    p.softcap = c->softcap;
    if (c->sigmoid) {
        p.score = ATTN_SCORE_SIGMOID;
        p.sigmoid_bias = c->sbias;
    }
    float *alibi = NULL, *sinkl = NULL;
    if (c->alibi) {
        alibi = malloc(sizeof(float) * (size_t)c->Hq);
        for (int h = 0; h < c->Hq; h++)   /* the usual geometric slopes, and a zero one */
            alibi[h] = h == c->Hq - 1 && c->Hq > 1 ? 0.0f
                       : (float)pow(2.0, -8.0 * (h + 1) / c->Hq) * (float)(0.5 + tu_uniform());
        p.alibi_slopes = alibi;
    }
    if (c->sinklog) {
        sinkl = malloc(sizeof(float) * (size_t)c->Hq);
        for (int h = 0; h < c->Hq; h++)
            sinkl[h] = (float)(1.5 * tu_normal() + 1.0);
        p.sink_logits = sinkl;
    }
    if (c->gate) {
        fail |= tu_tensor_alloc(&gate, c->gate_dt, 4, so_, (L + 4) % TU_NLAYOUTS);
        tu_fill_normal(&gate, 0.0, 2.0);
        p.gate = &gate.t;
    }
    if (c->mask) {
        int64_t sm[4] = { c->mask_bb ? 1 : nb, c->mask_hb ? 1 : c->Hq, msq, msk };
        fail |= tu_tensor_alloc(&mask, c->mask_dt, 4, sm, (L + 5) % TU_NLAYOUTS);
        int64_t idx[4];
        for (idx[0] = 0; idx[0] < sm[0]; idx[0]++)
            for (idx[1] = 0; idx[1] < sm[1]; idx[1]++)
                for (idx[2] = 0; idx[2] < sm[2]; idx[2]++) {
                    int empty = tu_uniform() < 0.2;
                    for (idx[3] = 0; idx[3] < sm[3]; idx[3]++) {
                        double x;
                        switch (c->mask) {
                        case MASK_ADD: x = 4.0 * tu_uniform() - 2.0; break;
                        case MASK_ADD_NEGINF:
                            x = tu_uniform() < 0.3 || idx[3] == 0 ? -INFINITY : 4.0 * tu_uniform() - 2.0;
                            if (idx[3] == sm[3] - 1) x = 1.0;   /* keep one finite per row */
                            break;
                        case MASK_ADD_NEGINF_ROWS:
                            x = empty || tu_uniform() < 0.3 ? -INFINITY : 4.0 * tu_uniform() - 2.0;
                            break;
                        case MASK_BOOL: x = tu_uniform() < 0.7 ? tu_randint(1, 255) : 0; break;
                        default: x = !empty && tu_uniform() < 0.7 ? tu_randint(1, 255) : 0; break;
                        }
                        ref_set(&mask.t, idx, x);
                    }
                }
        if (c->stride0 == 1 && !fail) {
            tu_broadcast_dim(&mask, 0, nb);
            tu_broadcast_dim(&mask, 1, c->Hq);
        }
        p.mask = &mask.t;
    }
    if (c->bq) {
        int64_t sb[4] = { c->bm_bb ? 1 : nb, c->bm_hb ? 1 : c->Hq, (msq + c->bq - 1) / c->bq,
                          (msk + c->bk - 1) / c->bk };
        fail |= tu_tensor_alloc(&bmask, ATTN_U8, 4, sb, (L + 1) % TU_NLAYOUTS);
        int64_t idx[4];
        for (idx[0] = 0; idx[0] < sb[0]; idx[0]++)
            for (idx[1] = 0; idx[1] < sb[1]; idx[1]++)
                for (idx[2] = 0; idx[2] < sb[2]; idx[2]++)
                    for (idx[3] = 0; idx[3] < sb[3]; idx[3]++)
                        ref_set(&bmask.t, idx, tu_uniform() < c->bm_density ? tu_randint(1, 3) : 0);
        p.block_mask = &bmask.t;
        p.block_q = c->bq;
        p.block_k = c->bk;
    }
    if (varlen) {
        p.cu_seqlens_q = cuq;
        p.cu_seqlens_k = cuk;
        p.num_seqs = c->nseq;
    }
    if (fail) {
        CHECK(0, "%s: test allocation failed", name);
        goto done;
    }

    /* Reference. */
    size_t nout = (size_t)(Bt * Tq * c->Hq * c->Dv), nlse = (size_t)(Bt * c->Hq * Tq);
    double *rout = malloc((nout + 1) * sizeof *rout), *rlse = malloc((nlse + 1) * sizeof *rlse);
    if (ref_sdpa(&p, &q.t, &k.t, &v.t, rout, rlse)) {
        CHECK(0, "%s: reference failed", name);
        free(rout); free(rlse);
        goto done;
    }
    unsigned char *cq, *ck, *cv, *cg, *cm, *cb;
    snapshot(&q, &cq); snapshot(&k, &ck); snapshot(&v, &cv);
    snapshot(&gate, &cg); snapshot(&mask, &cm); snapshot(&bmask, &cb);

    const int wide = c->in_dt != ATTN_F32 || c->out_dt != ATTN_F32;
    const double tol = wide ? 1e-2 : c->f32tol > 0 ? c->f32tol : 1e-5;
    const double ltol = c->in_dt != ATTN_F32 ? 1e-2 : 1e-5;
    for (int isa = 0; isa < NISA; isa++) {
        if (!ctxs[isa])
            continue;
        tu_poison(&out);
        if (c->lse)
            tu_poison(&lse);
        attn_context *ctx = ctx_for(isa, c);
        if (!ctx)
            continue;
        double t0 = tu_now();
        attn_status st = attn_sdpa(ctx, &p, &q.t, &k.t, &v.t, &out.t, c->lse ? &lse.t : NULL);
        isa_time[isa] += tu_now() - t0;
        const char *in = attn_isa_name((attn_isa)isa);
        CHECK(st == ATTN_OK, "[%s] %s: attn_sdpa returned %s: %s", in, name,
              attn_status_string(st), attn_last_error());
        if (st != ATTN_OK)
            continue;
        char msg[256];
        long bad = tu_check_written(&out, msg, sizeof msg);
        CHECK(bad == 0, "[%s] %s: out: %ld problems, first: %s", in, name, bad, msg);
        if (c->lse) {
            bad = tu_check_written(&lse, msg, sizeof msg);
            CHECK(bad == 0, "[%s] %s: lse: %ld problems, first: %s", in, name, bad, msg);
        }
        CHECK(same(&q, cq) && same(&k, ck) && same(&v, cv) && same(&gate, cg) &&
              same(&mask, cm) && same(&bmask, cb), "[%s] %s: an input was modified", in, name);
        /* Rows with no visible key (the only places the reference is exactly
         * 0) must be exactly 0. */
        long nz = 0;
        {
            int64_t ix[4], pos = 0;
            for (ix[0] = 0; ix[0] < Bt; ix[0]++)
                for (ix[1] = 0; ix[1] < Tq; ix[1]++)
                    for (ix[2] = 0; ix[2] < c->Hq; ix[2]++)
                        for (ix[3] = 0; ix[3] < c->Dv; ix[3]++, pos++)
                            if (rout[pos] == 0.0 && ref_get(&out.t, ix) != 0.0)
                                nz++;
        }
        CHECK(nz == 0, "[%s] %s: %ld elements of rows with no visible key are not 0", in, name, nz);
        double rmax;
        int64_t w;
        double e = tu_rel_err(&out, rout, &rmax, &w);
        if (e > tol) {
            int64_t dv = c->Dv, hq = c->Hq;
            int64_t ci = w % dv, hi = w / dv % hq, ri = w / dv / hq % Tq, bi = w / dv / hq / Tq;
            int64_t ix[4] = { bi, ri, hi, ci };
            CHECK(0, "[%s] %s: out error %.3g > %.1g at [b%lld,row%lld,h%lld,c%lld]: got %.8g, "
                  "expected %.8g (max|ref| %.4g)", in, name, e, tol, (long long)bi, (long long)ri,
                  (long long)hi, (long long)ci, ref_get(&out.t, ix), rout[w], rmax);
        } else {
            tu_passed++;
        }
        if (c->f32tol > 0 && !wide) {
            if (e > err_ill[isa]) err_ill[isa] = e;     /* reported apart */
        } else if (e > err_pair[isa][c->in_dt][c->out_dt]) {
            err_pair[isa][c->in_dt][c->out_dt] = e;
        }
        ran_pair[isa][c->in_dt][c->out_dt]++;
        double le = 0.0;
        if (c->lse) {
            le = tu_lse_err(&lse, rlse, &w);
            if (le > ltol) {
                int64_t si = w % Tq, hi = w / Tq % c->Hq, bi = w / Tq / c->Hq;
                int64_t ix[3] = { bi, hi, si };
                CHECK(0, "[%s] %s: lse error %.3g > %.1g at [b%lld,h%lld,row%lld]: got %.8g, "
                      "expected %.8g", in, name, le, ltol, (long long)bi, (long long)hi,
                      (long long)si, ref_get(&lse.t, ix), rlse[w]);
            } else {
                tu_passed++;
            }
            if (le > err_lse[isa][c->in_dt]) err_lse[isa][c->in_dt] = le;
        }
        if (tu_verbose)
            printf("  [%s] %-90s err %.2e lse %.2e\n", in, name, e, le);
    }
    free(cq); free(ck); free(cv); free(cg); free(cm); free(cb);
    free(rout); free(rlse);
done:
    free(alibi); free(sinkl);
    tu_tensor_free(&q); tu_tensor_free(&k); tu_tensor_free(&v); tu_tensor_free(&out);
    tu_tensor_free(&lse); tu_tensor_free(&gate); tu_tensor_free(&mask); tu_tensor_free(&bmask);
}

int main(void)
{
    tu_init("test_sdpa");
    const double t_start = tu_now();
    int rf = ref_selfcheck(tu_uniform);
    CHECK(rf == 0, "reference self-check: %d failures", rf);

    const char *only = getenv("ATTN_TEST_ISA");
    int nctx = 0;
    for (int isa = ATTN_ISA_SCALAR; isa <= ATTN_ISA_NEON; isa++) {
        if (only && *only && strcmp(only, attn_isa_name((attn_isa)isa)) != 0)
            continue;
        attn_options o = ATTN_OPTIONS_INIT;
        o.max_isa = isa;
        o.device = 0;
        attn_context *ctx = NULL;
        attn_status st = attn_context_create(&o, &ctx);
        CHECK(st == ATTN_OK, "attn_context_create(max_isa=%s): %s: %s",
              attn_isa_name((attn_isa)isa), attn_status_string(st), attn_last_error());
        if (st != ATTN_OK)
            continue;
        attn_device_info info = ATTN_DEVICE_INFO_INIT;
        st = attn_device_get_info(ctx, 0, &info);
        CHECK(st == ATTN_OK, "attn_device_get_info: %s", attn_last_error());
        if (st != ATTN_OK || (int)info.isa != isa) {
            printf("isa %-7s: not available here (context uses %s), skipped\n",
                   attn_isa_name((attn_isa)isa), attn_isa_name(info.isa));
            attn_context_destroy(ctx);
            continue;
        }
        printf("isa %-7s: testing (%d threads)\n", attn_isa_name((attn_isa)isa), info.compute_units);
        ctxs[isa] = ctx;
        nctx++;
    }
    CHECK(nctx > 0, "no kernel set could be tested");

    build_cases();
    const char *filter = getenv("ATTN_TEST_FILTER");
    int run = 0;
    double t_ref = tu_now();
    /* Quick runs: the cheap cases, plus the cheapest case of every tag (so
     * every feature is still covered), never the long ones. */
    char *pick = calloc((size_t)ncases, 1);
    for (int i = 0; i < ncases; i++) {
        double ci = case_cost(&cases[i]);
        int cheapest = 1;
        for (int j = 0; j < ncases && cheapest; j++) {
            if (j == i || strcmp(cases[j].tag, cases[i].tag) != 0)
                continue;
            double cj = case_cost(&cases[j]);
            if (cj < ci || (cj == ci && j < i))
                cheapest = 0;
        }
        pick[i] = !cases[i].big && ci <= 2e7 &&
                  (ci <= 4e5 || cheapest || strcmp(cases[i].tag, "dtype sweep") == 0);
    }
    const char *nothreads = getenv("ATTN_TEST_NO_THREADS");
    const int threads_ok = !(nothreads && *nothreads && strcmp(nothreads, "0"));
    for (int i = 0; i < ncases; i++) {
        const tcase *c = &cases[i];
        if (tu_quick && !pick[i])
            continue;
        if (c->threads && !threads_ok)
            continue;
        if (filter && *filter && !strstr(c->tag, filter))
            continue;
        run_case(c);
        run++;
    }
    t_ref = tu_now() - t_ref;
    free(pick);
    double t_lib = 0;
    for (int isa = 0; isa < NISA; isa++)
        t_lib += isa_time[isa];

    printf("%d cases (of %d) per kernel set\n", run, ncases);
    printf("max error of out relative to max|ref| (cases run), and of lse (|d|/max(1,|L|)),\n"
           "by input dtype (rows) and output dtype (columns):\n");
    for (int isa = 0; isa < NISA; isa++) {
        if (!ctxs[isa])
            continue;
        printf("  %-7s (%.2fs in attn_sdpa)        out f32          out f16          out bf16"
               "         lse\n", attn_isa_name((attn_isa)isa), isa_time[isa]);
        for (int a = 0; a < 3; a++) {
            printf("    in %-4s                     ", tu_dtype_name((attn_dtype)a));
            for (int b = 0; b < 3; b++)
                printf(" %.2e (%3d)   ", err_pair[isa][a][b], ran_pair[isa][a][b]);
            printf(" %.2e\n", err_lse[isa][a]);
        }
        printf("    f32 with huge scores (|s| ~ 100s, tolerance 1e-4): %.2e\n", err_ill[isa]);
    }
    printf("time: %.1fs total, %.1fs in the library, %.1fs reference + checks\n",
           tu_now() - t_start, t_lib, t_ref - t_lib);
    free(cases);
    for (int isa = 0; isa < NISA; isa++) {
        attn_context_destroy(ctxs[isa]);
        attn_context_destroy(ctxs_sized[isa]);
    }
    return tu_finish();
}
