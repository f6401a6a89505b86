/* What one ISA's exp sweep found (tests/exp_ulp.h, tests/test_exp.c). */
#ifndef ATTN_TEST_EXP_ULP_RESULT_H
#define ATTN_TEST_EXP_ULP_RESULT_H

#include <stdint.h>

typedef struct exp_ulp_result {
    double max_ulp;      /* largest error, in ulps of the rounded exact result */
    float  worst_x;      /* where */
    long   checked;
    int    specials_bad; /* -inf not giving 0, NaN not giving NaN */
} exp_ulp_result;

void attn_test_exp_ulp_avx2(float lo, float hi, uint32_t stride, int nonpos, exp_ulp_result *r);
void attn_test_exp_ulp_avx512(float lo, float hi, uint32_t stride, int nonpos, exp_ulp_result *r);
void attn_test_exp_ulp_neon(float lo, float hi, uint32_t stride, int nonpos, exp_ulp_result *r);

#endif
