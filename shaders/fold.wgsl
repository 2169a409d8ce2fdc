// fold.wgsl — F8Net's folding of batch norm and the PACT scales into the weights, forward and
// backward, for QAT on the GPU (F8NET.md §2.1, §2.3, §2.8, §4.1). Spec: src/reference/fold.rs;
// launcher: src/ops/fold.rs. One Params for all entry points.
//
// Layouts. Per-channel vectors are f32 [k][CP] blocks, CP = 4·ceil(c/4), padding lanes 0:
//   affine [γ | β], raw statistics [μ_r | v_r] (of y0r = conv(x_q, W)), running [mean | var],
//   state [μ | σ | v | b̃] (of y0 = s_in·y0r), terms [dμ | dv | ds_in | ds_out] (conv) or
//   [ds_in | ds_out] (classifier), d_affine [dγ | dβ].
// Weights (f32): layout 0 = channel c's PER values at c·PER (dense OHWI rows [kh][kw][4·C4in],
// classifier rows [4·K4]); layout 1 = value j of channel c at j·CP + c (depthwise [kh][kw][CP]).
// scales f32 [nodes + 1]: s of every network node (the last entry is 1, "no scale").
// table vec4<u32> [nodes + 1]: (kind, α index, bits of 2^F, bits of M); kind 0 → s = 1.
// y0r, e: f32 [P][4·C4] NHWC (vec4 words).
//
//   fold_scales:                 alpha(0) table(1) → scales(2)         s = 2^F·|α|/M
//   fold_conv:                   w(0) affine(1) raw(2) scales(3) → w_eff(4) b_eff(5) state(6),
//                                running(7) (read and written)
//   fold_conv_backward:          w(0) affine(1) state(2) scales(3) dw_eff(4) db_eff(5)
//                                → d_affine(6) terms(7)
//   fold_conv_backward_stats:    y0r(0) state(1) terms(2) scales(3) → e(4)
//                                e = s_in·(dμ/m + dv·2·(s_in·y0r − μ)/m)
//   fold_conv_backward_weight:   dw_eff(0) dw_stats(1) affine(2) state(3) scales(4) → dw(5)
//                                dw = dW̃·(γ/σ)·s_in/s_out + dw_stats
//   fold_linear:                 w_q(0) scales(1) → w_s(2)             w_s = s_fc·ws·W_q
//   fold_linear_backward:        g(0) w_q(1) scales(2) → dw(3) terms(4)
//                                dw = s_fc·ws·G, terms[row] = ws·Σ W_q·G
//   fold_alpha_grad:             terms(0) scales(1) alpha(2) → dalpha(3) (read and written)
//                                dα[a_in] += Σ ds_in·s_in/α, then dα[a_out] += Σ ds_out·s_out/α
// Dispatch: per-channel entries (fold_conv, fold_conv_backward, fold_linear_backward) one
// workgroup per channel (rows reduced by a fixed-order tree, deterministic, no atomics);
// fold_alpha_grad one workgroup; the rest 1-D over ceil(words/WG), folded to 2-D by grid_1d.

const WG: u32 = 64u;
const NONE: u32 = 0xffffffffu;

struct Params {
    c: u32,         // logical output channels (classifier: class rows)
    cp: u32,        // per-channel block stride: 4·ceil(c/4)
    per: u32,       // weights per channel in the layout (padding lanes included)
    arrangement: u32, // weight layout: 0 contiguous rows, 1 depthwise
    node_in: u32,   // scales index of s_in
    node_out: u32,  // scales index of s_out
    alpha_in: u32,  // α of s_in (NONE: no gradient)
    alpha_out: u32, // α of s_out (NONE: no gradient)
    count: u32,     // pixels m of y0
    words: u32,     // element-wise entries: elements (vec4 words for y0r) to process
    c4: u32,        // y0r words per pixel
    off: u32,       // fold_alpha_grad: offset of [ds_in | ds_out] in terms
    eps: f32,
    momentum: f32,
    ws: f32,        // classifier: SAT factor
    nodes: u32,     // fold_scales: table entries
}

@group(0) @binding(0) var<storage, read> alpha: array<f32>;
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(0) var<storage, read> y0r: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read> dw_eff0: array<f32>;
@group(0) @binding(0) var<storage, read> terms_in: array<f32>;
@group(0) @binding(0) var<storage, read> g_in: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> affine: array<f32>;
@group(0) @binding(1) var<storage, read> state_v: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> dw_stats: array<f32>;
@group(0) @binding(1) var<storage, read> w_q1: array<f32>;
@group(0) @binding(1) var<storage, read> scales1: array<f32>;
@group(0) @binding(2) var<storage, read_write> scales_out: array<f32>;
@group(0) @binding(2) var<storage, read> stats_in: array<f32>;   // raw (forward) or state
@group(0) @binding(2) var<storage, read> terms_v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> affine2: array<f32>;
@group(0) @binding(2) var<storage, read_write> w_s: array<f32>;
@group(0) @binding(2) var<storage, read> alpha2: array<f32>;
@group(0) @binding(2) var<storage, read> scales2: array<f32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> state3: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw3: array<f32>;
@group(0) @binding(3) var<storage, read_write> dalpha: array<f32>;
@group(0) @binding(4) var<storage, read_write> w_eff: array<f32>;
@group(0) @binding(4) var<storage, read> dw_eff: array<f32>;
@group(0) @binding(4) var<storage, read_write> e_out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> scales4: array<f32>;
@group(0) @binding(4) var<storage, read_write> terms4: array<f32>;
@group(0) @binding(5) var<storage, read_write> b_eff: array<f32>;
@group(0) @binding(5) var<storage, read> db_eff: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw5: array<f32>;
@group(0) @binding(6) var<storage, read_write> state_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_affine: array<f32>;
@group(0) @binding(7) var<storage, read_write> running: array<f32>;
@group(0) @binding(7) var<storage, read_write> terms_out: array<f32>;
@group(0) @binding(3) var<uniform> p3: Params;
@group(0) @binding(4) var<uniform> p4: Params;
@group(0) @binding(5) var<uniform> p5: Params;
@group(0) @binding(6) var<uniform> p6: Params;
@group(0) @binding(8) var<uniform> p8: Params;

var<workgroup> red: array<f32, WG>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Offset of value j of channel c in the weight layout.
fn weight_at(q: Params, c: u32, j: u32) -> u32 {
    if (q.arrangement == 0u) {
        return c * q.per + j;
    }
    return j * q.cp + c;
}

// The channel of weight element i (padded channels ≥ c included).
fn channel_of(q: Params, i: u32) -> u32 {
    if (q.arrangement == 0u) {
        return i / q.per;
    }
    return i % q.cp;
}

// Fixed-order tree over the workgroup; the total lands in red[0] (every invocation calls it).
fn reduce(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    return red[0];
}

@compute @workgroup_size(WG)
fn fold_scales(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = p3;
    let i = gid.x;
    if (i >= q.nodes) {
        return;
    }
    let t = table[i];
    var s = 1.0;
    if (t.x != 0u) {
        s = bitcast<f32>(t.z) * abs(alpha[t.y]) / bitcast<f32>(t.w);
    }
    scales_out[i] = s;
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

@compute @workgroup_size(WG)
fn fold_linear(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = p3;
    let i = flat_index(wid, nwg, lid);
    if (i >= q.words) {
        return;
    }
    w_s[i] = (scales1[q.node_in] * q.ws) * w[i];
}

@compute @workgroup_size(WG)
fn fold_linear_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = p5;
    let r = wid.x;
    let a = scales2[q.node_in] * q.ws;
    var acc = 0.0;
    for (var j = lid; j < q.per; j += WG) {
        let k = r * q.per + j;
        let g = g_in[k];
        dw3[k] = a * g;
        acc += w_q1[k] * g;
    }
    let dot = reduce(lid, acc);
    if (lid == 0u) {
        terms4[r] = q.ws * dot;
    }
}

@compute @workgroup_size(WG)
fn fold_alpha_grad(@builtin(local_invocation_index) lid: u32) {
    let q = p4;
    var a = 0.0;
    var b = 0.0;
    for (var c = lid; c < q.c; c += WG) {
        a += terms_in[q.off + c];
        b += terms_in[q.off + q.cp + c];
    }
    let sum_in = reduce(lid, a);
    workgroupBarrier();
    let sum_out = reduce(lid, b);
    if (lid == 0u) {
        if (q.alpha_in != NONE) {
            dalpha[q.alpha_in] += sum_in * (scales1[q.node_in] / alpha2[q.alpha_in]);
        }
        if (q.alpha_out != NONE) {
            dalpha[q.alpha_out] += sum_out * (scales1[q.node_out] / alpha2[q.alpha_out]);
        }
    }
}
