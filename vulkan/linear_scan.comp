#version 450
/* attn_linear, chunk-parallel form, between the two passes of
 * vulkan/linear.comp: walks the chunks of each sequence in order, one
 * invocation per state element (n, h, i, j), and per normaliser element
 * (n, h, i) when normalising:
 *   S = state_in (or 0);  for each chunk: U[chunk] <- S,  S = D[chunk] S + U
 *   state_out = S
 * leaving in U the state each chunk starts from (D = 1 when normalising,
 * PLAIN only: the D slots hold the chunks' sums of phi(k), scanned the same
 * way into the z each chunk starts from). A chunk past the end of its
 * sequence has U = 0, D = 1: the scan need not know sequence lengths. */

layout(local_size_x = 64) in;

layout(std430, binding = 0) buffer Ub { float w[]; } U;     /* [N*nch, H, Dk, Dv] */
layout(std430, binding = 1) buffer DZb { float w[]; } DZ;   /* [N*nch, H, Dk] */
layout(std430, binding = 6) readonly buffer SIb { float w[]; } SIN;
layout(std430, binding = 7) buffer SOb { float w[]; } SOUT;
layout(std430, binding = 8) readonly buffer ZIb { float w[]; } ZIN;
layout(std430, binding = 9) buffer ZOb { float w[]; } ZOUT;
layout(std430, binding = 10) readonly buffer Pb { int w[]; } P;

layout(push_constant) uniform Push { int nch, nseq; } pc;

/* Parameter words and flags of src/vulkan/linear.c (as in linear.comp). */
const int P_SI = 29, P_SO = 34, P_ZI = 39, P_ZO = 43, P_FLAGS = 47, P_H = 49, P_DK = 50,
          P_DV = 51;
const int F_STATE_IN = 2, F_STATE_OUT = 4, F_Z_IN = 8, F_Z_OUT = 16, F_NORMALIZE = 512;

int view4(int at, int a, int b, int c, int d)
{
    return P.w[at] + a * P.w[at + 1] + b * P.w[at + 2] + c * P.w[at + 3] + d * P.w[at + 4];
}

int view3(int at, int a, int b, int c)
{
    return P.w[at] + a * P.w[at + 1] + b * P.w[at + 2] + c * P.w[at + 3];
}

void main()
{
    const int e = int((gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 64u +
                      gl_LocalInvocationID.x);
    const int flags = P.w[P_FLAGS], H = P.w[P_H], Dk = P.w[P_DK], Dv = P.w[P_DV];
    const bool norm = (flags & F_NORMALIZE) != 0;
    const int ns = pc.nseq * H * Dk * Dv;
    if (e < ns) {
        const int j = e % Dv, i = (e / Dv) % Dk, h = (e / (Dv * Dk)) % H, n = e / (Dv * Dk * H);
        float s = (flags & F_STATE_IN) != 0 ? SIN.w[view4(P_SI, n, h, i, j)] : 0.0;
        for (int ch = 0; ch < pc.nch; ch++) {
            const int slot = (n * pc.nch + ch) * H + h;
            const int at = (slot * Dk + i) * Dv + j;
            const float u = U.w[at];
            U.w[at] = s;
            s = (norm ? 1.0 : DZ.w[slot * Dk + i]) * s + u;
        }
        if ((flags & F_STATE_OUT) != 0)
            SOUT.w[view4(P_SO, n, h, i, j)] = s;
    } else if (norm && e < ns + pc.nseq * H * Dk) {
        const int f = e - ns, i = f % Dk, h = (f / Dk) % H, n = f / (Dk * H);
        float z = (flags & F_Z_IN) != 0 ? ZIN.w[view3(P_ZI, n, h, i)] : 0.0;
        for (int ch = 0; ch < pc.nch; ch++) {
            const int at = ((n * pc.nch + ch) * H + h) * Dk + i;
            const float u = DZ.w[at];
            DZ.w[at] = z;
            z += u;
        }
        if ((flags & F_Z_OUT) != 0)
            ZOUT.w[view3(P_ZO, n, h, i)] = z;
    }
}
