// fold.wgsl — F8Net's folding of batch norm and the PACT scales into a conv unit's weights,
// forward and backward, for QAT on the GPU (F8NET.md §2.1, §2.3, §4.1). Spec:
// src/reference/fold.rs; launcher: src/ops/fold/conv.rs. The scales, the classifier and dα are in
// fold_linear.wgsl; Params and the reductions in fold_common.wgsl, the weight layouts in
// weight_layout.wgsl (both appended).
//
// Layouts. Per-channel vectors are f32 [k][CP] blocks, CP = 4·ceil(c/4), padding lanes 0:
//   affine [γ | β], raw statistics [μ_r | v_r] (of y0r = conv(x_q, W)), running [mean | var],
//   state [μ | σ | v | b̃] (of y0 = s_in·y0r), terms [dμ | dv | ds_in | ds_out], d_affine [dγ | dβ].
// Weights (f32): layout 0 = channel c's PER values at c·PER (dense OHWI rows [kh][kw][4·C4in]);
// layout 1 = value j of channel c at j·CP + c (depthwise [kh][kw][CP]).
// scales f32 [nodes + 1]: s of every network node (the last entry is 1, "no scale").
// y0r, e: f32 [P][4·C4] NHWC (vec4 words).
//
//   fold_conv:                   w(0) affine(1) raw(2) scales(3) → w_eff(4) b_eff(5) state(6),
//                                running(7) (read and written)
//   fold_conv_backward:          w(0) affine(1) state(2) scales(3) dw_eff(4) db_eff(5)
//                                → d_affine(6) terms(7)
//   fold_conv_backward_stats:    y0r(0) state(1) terms(2) scales(3) → e(4)
//                                e = s_in·(dμ/m + dv·2·(s_in·y0r − μ)/m)
//   fold_conv_backward_weight:   dw_eff(0) dw_stats(1) affine(2) state(3) scales(4) → dw(5)
//                                dw = dW̃·(γ/σ)·s_in/s_out + dw_stats
// Dispatch: fold_conv and fold_conv_backward one workgroup per channel (rows reduced by a
// fixed-order tree, deterministic, no atomics); the other two 1-D over ceil(words/WG), folded to
// 2-D by grid_1d.

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(0) var<storage, read> y0r: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read> dw_eff0: array<f32>;
@group(0) @binding(1) var<storage, read> affine: array<f32>;
@group(0) @binding(1) var<storage, read> state_v: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> dw_stats: array<f32>;
@group(0) @binding(2) var<storage, read> stats_in: array<f32>;   // raw (forward) or state
@group(0) @binding(2) var<storage, read> terms_v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> affine2: array<f32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> state3: array<f32>;
@group(0) @binding(4) var<storage, read_write> w_eff: array<f32>;
@group(0) @binding(4) var<storage, read> dw_eff: array<f32>;
@group(0) @binding(4) var<storage, read_write> e_out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> scales4: array<f32>;
@group(0) @binding(5) var<storage, read_write> b_eff: array<f32>;
@group(0) @binding(5) var<storage, read> db_eff: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw5: array<f32>;
@group(0) @binding(6) var<storage, read_write> state_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_affine: array<f32>;
@group(0) @binding(7) var<storage, read_write> running: array<f32>;
@group(0) @binding(7) var<storage, read_write> terms_out: array<f32>;
@group(0) @binding(5) var<uniform> p5: Params;
@group(0) @binding(6) var<uniform> p6: Params;
@group(0) @binding(8) var<uniform> p8: Params;

// Offset of value j of channel c, and the channel of weight element i (weight_layout.wgsl).
fn weight_at(q: Params, c: u32, j: u32) -> u32 {
    return layout_offset(q.arrangement, q.per, q.cp, c, j);
}

fn channel_of(q: Params, i: u32) -> u32 {
    return layout_channel(q.arrangement, q.per, q.cp, i);
}

@compute @workgroup_size(WG)
fn fold_conv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = p8;
    let c = wid.x;
    let s_in = scales[q.node_in];
    let s_out = scales[q.node_out];
    let mean = s_in * stats_in[c];
    let var_ = s_in * s_in * stats_in[q.cp + c];
    let sigma = sqrt(var_ + q.eps);
    let gain = affine[c] / sigma;
    let rho = s_in / s_out;
    for (var j = lid; j < q.per; j += WG) {
        let k = weight_at(q, c, j);
        w_eff[k] = gain * w[k] * rho;
    }
    if (lid == 0u) {
        let b = (affine[q.cp + c] - affine[c] * mean / sigma) / s_out;
        b_eff[c] = b;
        state_out[c] = mean;
        state_out[q.cp + c] = sigma;
        state_out[2u * q.cp + c] = var_;
        state_out[3u * q.cp + c] = b;
        var unbiased = 1.0;
        if (q.count > 1u) {
            unbiased = f32(q.count) / f32(q.count - 1u);
        }
        let keep = 1.0 - q.momentum;
        running[c] = keep * running[c] + q.momentum * mean;
        running[q.cp + c] = keep * running[q.cp + c] + q.momentum * (var_ * unbiased);
    }
}

@compute @workgroup_size(WG)
fn fold_conv_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = p8;
    let c = wid.x;
    let s_in = scales[q.node_in];
    let s_out = scales[q.node_out];
    let rho = s_in / s_out;
    var acc = 0.0;
    for (var j = lid; j < q.per; j += WG) {
        let k = weight_at(q, c, j);
        acc += dw_eff[k] * w[k];
    }
    let dg = reduce(lid, acc) * rho;
    if (lid == 0u) {
        let mu = stats_in[c];
        let sg = stats_in[q.cp + c];
        let v = stats_in[2u * q.cp + c];
        let b = stats_in[3u * q.cp + c];
        let ga = affine[c];
        let db = db_eff[c];
        let dmean = -db * ga / (sg * s_out);
        let dsigma = db * ga * mu / (sg * sg * s_out) - dg * ga / (sg * sg);
        let dvar = dsigma / (2.0 * sg);
        let dg_g = dg * ga / sg;
        d_affine[c] = -db * mu / (sg * s_out) + dg / sg;
        d_affine[q.cp + c] = db / s_out;
        terms_out[c] = dmean;
        terms_out[q.cp + c] = dvar;
        terms_out[2u * q.cp + c] = (dmean * mu + 2.0 * dvar * v + dg_g) / s_in;
        terms_out[3u * q.cp + c] = -(db * b + dg_g) / s_out;
    }
}

@compute @workgroup_size(WG)
fn fold_conv_backward_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = p5;
    let i = flat_index(wid, nwg, lid);
    if (i >= q.words) {
        return;
    }
    let cw = i % q.c4;
    let s_in = scales[q.node_in];
    let m = f32(q.count);
    let d = s_in * y0r[i] - state_v[cw];
    let e = s_in * (terms_v[cw] / m + terms_v[q.c4 + cw] * 2.0 * d / m);
    let ch = vec4<u32>(4u * cw) + vec4<u32>(0u, 1u, 2u, 3u);
    e_out[i] = select(vec4<f32>(0.0), e, ch < vec4<u32>(q.c));
}

@compute @workgroup_size(WG)
fn fold_conv_backward_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = p6;
    let i = flat_index(wid, nwg, lid);
    if (i >= q.words) {
        return;
    }
    let c = channel_of(q, i);
    var d = 0.0;
    if (c < q.c) {
        let rho = scales4[q.node_in] / scales4[q.node_out];
        let gain = affine2[c] / state3[q.cp + c];
        d = dw_eff0[i] * gain * rho + dw_stats[i];
    }
    dw5[i] = d;
}
