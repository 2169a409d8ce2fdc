// fold_linear.wgsl — the network's scales, the classifier's SAT-rescaled weights and the PACT
// clipping levels' gradients, for QAT on the GPU (F8NET.md §2.8, §4.1, §4.3). Spec:
// src/reference/fold.rs; launcher: src/ops/fold/mod.rs. Params and the reductions are in
// fold_common.wgsl (appended); the conv unit's fold is fold.wgsl.
//
// Layouts. scales f32 [nodes + 1]: s of every network node (the last entry is 1, "no scale").
// table vec4<u32> [nodes + 1]: (kind, α index, bits of 2^F, bits of M); kind 0 → s = 1.
// Classifier weights f32 rows [classes][4·K4]; terms [ds_in | ds_out] per-channel blocks of CP =
// 4·ceil(c/4) (a conv unit's terms hold them at `off`).
//
//   fold_scales:                 alpha(0) table(1) → scales(2)         s = 2^F·|α|/M
//   fold_linear:                 w_q(0) scales(1) → w_s(2)             w_s = s_fc·ws·W_q
//   fold_linear_backward:        g(0) w_q(1) scales(2) → dw(3) terms(4)
//                                dw = s_fc·ws·G, terms[row] = ws·Σ W_q·G
//   fold_alpha_grad:             terms(0) scales(1) alpha(2) → dalpha(3) (read and written)
//                                dα[a_in] += Σ ds_in·s_in/α, then dα[a_out] += Σ ds_out·s_out/α
// Dispatch: fold_linear_backward one workgroup per class row (fixed-order tree); fold_alpha_grad
// one workgroup; the rest 1-D over ceil(words/WG), folded to 2-D by grid_1d.

@group(0) @binding(0) var<storage, read> alpha: array<f32>;
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(0) var<storage, read> terms_in: array<f32>;
@group(0) @binding(0) var<storage, read> g_in: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> w_q1: array<f32>;
@group(0) @binding(1) var<storage, read> scales1: array<f32>;
@group(0) @binding(2) var<storage, read_write> scales_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> w_s: array<f32>;
@group(0) @binding(2) var<storage, read> alpha2: array<f32>;
@group(0) @binding(2) var<storage, read> scales2: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw3: array<f32>;
@group(0) @binding(3) var<storage, read_write> dalpha: array<f32>;
@group(0) @binding(4) var<storage, read_write> terms4: array<f32>;
@group(0) @binding(3) var<uniform> p3: Params;
@group(0) @binding(4) var<uniform> p4: Params;
@group(0) @binding(5) var<uniform> p5: Params;

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
