#version 450
/* attn_linear, chunk-parallel form of the delta kinds, between the two
 * passes of vulkan/linear.comp: a chunk maps the state S to A S + U, and
 * this walks the chunks of each sequence in order:
 *   S = state_in (or 0);  for each chunk: U[chunk] <- S,  S = A[chunk] S + U
 *   state_out = S
 * Columns of S are independent (A acts on rows), so a workgroup owns CW
 * columns of one (sequence, head), kept in shared memory; its invocations
 * split the rows (RG row groups). A chunk past the end of its sequence has
 * A = I, U = 0. */

layout(local_size_x = 64) in;
layout(constant_id = 0) const int DK = 64;    /* Dk */
layout(constant_id = 1) const int CW = 16;    /* columns per workgroup, dividing 64 */

const int RG = 64 / CW;                       /* row groups */
const int NQ = (DK + RG - 1) / RG;            /* rows per invocation */

layout(std430, binding = 0) buffer Ub { float w[]; } U;               /* [N*nch, H, Dk, Dv] */
layout(std430, binding = 1) readonly buffer Ab { float w[]; } A;      /* [N*nch, H, Dk, Dk] */
layout(std430, binding = 6) readonly buffer SIb { float w[]; } SIN;
layout(std430, binding = 7) buffer SOb { float w[]; } SOUT;
layout(std430, binding = 10) readonly buffer Pb { int w[]; } P;

layout(push_constant) uniform Push { int nch; } pc;

/* Parameter words and flags of src/vulkan/linear.c (as in linear.comp). */
const int P_SI = 29, P_SO = 34, P_FLAGS = 47, P_H = 49, P_DV = 51;
const int F_STATE_IN = 2, F_STATE_OUT = 4;

shared float S[DK * CW];

int view4(int at, int a, int b, int c, int d)
{
    return P.w[at] + a * P.w[at + 1] + b * P.w[at + 2] + c * P.w[at + 3] + d * P.w[at + 4];
}

void main()
{
    const int t = int(gl_LocalInvocationID.x), jc = t % CW, rg = t / CW;
    const int h = int(gl_WorkGroupID.y), n = int(gl_WorkGroupID.z);
    const int flags = P.w[P_FLAGS], H = P.w[P_H], Dv = P.w[P_DV];
    const int j = int(gl_WorkGroupID.x) * CW + jc;
    const bool live = j < Dv;

    for (int q = 0; q < NQ; q++) {
        const int i = rg + RG * q;
        if (i < DK)
            S[i * CW + jc] = live && (flags & F_STATE_IN) != 0 ? SIN.w[view4(P_SI, n, h, i, j)]
                                                               : 0.0;
    }
    float next[NQ];
    for (int ch = 0; ch < pc.nch; ch++) {
        barrier();
        const int slot = (n * pc.nch + ch) * H + h;
        for (int q = 0; q < NQ; q++) {
            const int i = rg + RG * q;
            next[q] = 0.0;
            if (i >= DK || !live)
                continue;
            const int ua = (slot * DK + i) * Dv + j, aa = (slot * DK + i) * DK;
            float acc = U.w[ua];
            for (int l = 0; l < DK; l++)
                acc += A.w[aa + l] * S[l * CW + jc];
            U.w[ua] = S[i * CW + jc];
            next[q] = acc;
        }
        barrier();
        for (int q = 0; q < NQ; q++) {
            const int i = rg + RG * q;
            if (i < DK)
                S[i * CW + jc] = next[q];
        }
    }
    barrier();
    for (int q = 0; q < NQ; q++) {
        const int i = rg + RG * q;
        if (i < DK && live && (flags & F_STATE_OUT) != 0)
            SOUT.w[view4(P_SO, n, h, i, j)] = S[i * CW + jc];
    }
}
