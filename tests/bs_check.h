/* attn_block_select test cases and their check against the reference,
 * shared by the CPU test (test_block_select.c) and the GPU one
 * (test_block_select_gpu.c). */
#ifndef ATTN_TEST_BS_CHECK_H
#define ATTN_TEST_BS_CHECK_H

#include "attn.h"
#include "testutil.h"

/* Shares or scores closer than this may be ordered either way by f32 math. */
#define CLOSE_EPS 1e-4

typedef struct bs_case {
    int B, Sq, Sk, Hq, Hkv, D;
    attn_dtype dt;
    int layout;
    attn_block_select_params p;
} bs_case;

static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Case i of the random table (both methods, every option, odd sizes, GQA,
 * every dtype and layout); bs_ncases() of them, fewer in quick mode. The
 * last one has query blocks of 200 segment rows, causal with Sq > Sk. */
int bs_ncases(void);
void bs_table_case(int i, bs_case *c);

/* Allocates q, k (random normal, sd qscale for q) and a poisoned mask. */
int bs_make_inputs(const bs_case *c, double qscale, tu_tensor *q, tu_tensor *k, tu_tensor *m);

/* "xattn B1 Sq.. " naming a case, for messages. */
void bs_case_name(const bs_case *c, const char *prefix, char *buf, size_t n);

/* Mask element of a (possibly strided) U8 tensor. */
int bs_mask_at(const tu_tensor *m, int64_t b, int64_t h, int64_t i, int64_t j);

/* Compares the mask that q, k gave with the reference (rows whose outcome
 * is within rounding skipped) and checks the invariants: every element
 * written, no future block, forced blocks, threshold 1 keeps all, exactly
 * top_k. Reports through CHECK with `name`. */
void bs_check(const bs_case *c, const tu_tensor *q, const tu_tensor *k, const tu_tensor *m,
              const char *name);

/* The small f32 case of the tie test (method 0 XAttention, 1 MoBA): the
 * caller makes every key identical so all scores and shares are equal. */
bs_case bs_ties_case(int method);
/* The small f32 case of the NaN-input test. */
bs_case bs_nan_case(int method);

#endif
