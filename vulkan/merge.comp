#version 450
/* attn_merge: out = sum_i exp(lse_i - L) out_i / sum_i exp(lse_i - L) over
 * n partial results, L = max_i lse_i, in three kinds of dispatches over f32
 * scratch (M: row max, W: row weight sum, A: weighted sum of rows), chosen
 * by the push constant `mode`:
 *   0 max     once per partial, one invocation per row
 *   1 acc     once per partial, one invocation per element
 *   2 finish  once, one invocation per element
 * Rows are (b, s, h) with r = (b*S + s)*H + h. Binding 0 is the partial
 * (mode 0, 1) or the output (mode 2), binding 1 its lse. */
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 64) in;

#include "common.glsl"

layout(std430, binding = 0) buffer Tb { uint w[]; } T;
layout(std430, binding = 1) buffer Lb { float w[]; } LSE;
layout(std430, binding = 2) buffer Mb { float w[]; } M;
layout(std430, binding = 3) buffer Wb { float w[]; } W;
layout(std430, binding = 4) buffer Ab { float w[]; } A;

layout(push_constant) uniform Push {
    int mode, first, dt, has_lse;
    int o_off, o0, o1, o2, o3;
    int l_off, l0, l1, l2;
    int S, H, DV, rows;
} pc;

ATTN_LOAD_ANY(load_t, T)
ATTN_STORE_ANY(store_t, T)

int lse_index(int r)
{
    const int h = r % pc.H, s = (r / pc.H) % pc.S, b = r / (pc.H * pc.S);
    return pc.l_off + b * pc.l0 + h * pc.l1 + s * pc.l2;
}

void main()
{
    const int e = int((gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 64u +
                      gl_LocalInvocationID.x);
    const int DVe = pc.DV > 0 ? pc.DV : 1;       /* DV = 0: one invocation per row */
    if (pc.mode == 0) {
        if (e >= pc.rows)
            return;
        const float x = LSE.w[lse_index(e)];
        M.w[e] = pc.first != 0 ? x : max(M.w[e], x);
        return;
    }
    if (e >= pc.rows * DVe)
        return;
    const int r = e / DVe, c = e % DVe;
    const int h = r % pc.H, s = (r / pc.H) % pc.S, b = r / (pc.H * pc.S);
    const int oi = pc.o_off + b * pc.o0 + s * pc.o1 + h * pc.o2 + c * pc.o3;
    if (pc.mode == 1) {
        const float mx = M.w[r];
        const float x = LSE.w[lse_index(r)];
        const float wt = mx == NEG_INF ? 0.0 : exp(x - mx);   /* -inf parts weigh 0 */
        if (pc.DV > 0) {
            float acc = pc.first != 0 ? 0.0 : A.w[e];
            if (wt != 0.0)
                acc += wt * load_t(pc.dt, oi);
            A.w[e] = acc;
        }
        if (c == 0)
            W.w[r] = (pc.first != 0 ? 0.0 : W.w[r]) + wt;
        return;
    }
    const float sum = W.w[r];
    if (pc.DV > 0)
        store_t(pc.dt, oi, sum > 0.0 ? A.w[e] / sum : 0.0);
    if (pc.has_lse != 0 && c == 0)
        LSE.w[lse_index(r)] = sum > 0.0 ? M.w[r] + log(sum) : NEG_INF;
}
