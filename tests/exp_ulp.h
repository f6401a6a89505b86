/* The sweep behind tests/test_exp.c, instantiated once per ISA by
 * tests/exp_ulp_<isa>.c (each compiled with that ISA's flags), which
 * defines before including this:
 *   VL                          floats per vector
 *   EXP_ULP_FN                  the name of the sweep function
 *   exp_block(x, y, nonpos)     y[0..VL) = the ISA's exp of x[0..VL): the
 *                               general one, or with nonpos the softmax's
 *                               one for x <= 0
 * Every float of [lo, hi] (stepping `stride` float bit patterns) goes
 * through the ISA's exp; the error is measured in ulps of a float at the
 * double-precision e^x (2^(e-24) for e^x in [2^(e-1), 2^e)). */
#ifndef ATTN_TEST_EXP_ULP_H
#define ATTN_TEST_EXP_ULP_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "exp_ulp_result.h"

static float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* The float `stride` floats above x (bit patterns walk down below 0, up
 * above it). */
static float step_float(float x, uint32_t stride)
{
    if (x < 0.0f) {
        const uint32_t u = float_to_bits(x);
        return u <= 0x80000000u + stride ? 0.0f : bits_to_float(u - stride);
    }
    return bits_to_float(float_to_bits(x) + stride);
}

void EXP_ULP_FN(float lo, float hi, uint32_t stride, int nonpos, exp_ulp_result *r)
{
    memset(r, 0, sizeof *r);
    float x[VL], y[VL];
    float cur = lo;
    int done = 0;
    while (!done) {
        for (int i = 0; i < VL; i++) {
            x[i] = cur;
            if (cur < hi)
                cur = step_float(cur, stride);
            if (cur > hi)
                cur = hi;
        }
        done = x[VL - 1] >= hi;
        exp_block(x, y, nonpos);
        for (int i = 0; i < VL; i++) {
            const double e = exp((double)x[i]);
            int ex;
            frexp(e, &ex);
            const double err = fabs((double)y[i] - e) / ldexp(1.0, ex - 24);   /* ulps at e */
            r->checked++;
            if (!(err <= r->max_ulp)) {   /* NaN counts as worst */
                r->max_ulp = isnan(err) ? INFINITY : err;
                r->worst_x = x[i];
            }
        }
    }
    /* -inf gives 0, NaN stays NaN */
    for (int i = 0; i < VL; i++)
        x[i] = i % 2 ? -INFINITY : NAN;
    exp_block(x, y, nonpos);
    for (int i = 0; i < VL; i++)
        if (i % 2 ? y[i] != 0.0f : !isnan(y[i]))
            r->specials_bad++;
}

#endif
