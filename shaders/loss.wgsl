// loss.wgsl — fused softmax cross-entropy: the batch loss (as per-workgroup partial sums) and
// dlogits = (softmax − onehot)/n in one pass. Spec: src/reference/loss.rs; launcher:
// src/ops/loss.rs.
//
//   logits   f32 [n][4·K4] (padded rows, K4 = ceil(k/4); padding lanes ignored)
//   labels   u32 [n]
//   dlogits  f32 [n][4·K4] (padding lanes written 0)
//   partials f32 [groups][2]: Σ of the group's row losses, count of its labels ≥ k
//
// Workgroup g handles rows g·rows_per_group.. one after another (so every sum has a fixed order);
// per row the WG invocations stride over its words and the max and Σ e^(z − max) are
// tree-reduced in workgroup memory (numerically stable). Row loss: log Σ − (z_label − max).
// A label ≥ k adds no loss and is counted (the host turns the count into an error).

const WG: u32 = 64u;

struct Params {
    n: u32,
    k: u32,
    k4: u32,              // words per row
    rows_per_group: u32,
    inv_n: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> dlogits: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> red: array<f32, WG>;

// Which lanes of word `w` of a row are real classes.
fn live_lanes(w: u32) -> vec4<bool> {
    let c = w * 4u;
    return vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.k);
}

// Tree reductions over the workgroup (called in uniform control flow by every invocation).
fn reduce_max(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn softmax_cross_entropy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let neg_inf = bitcast<f32>(0xff800000u);
    let first = wid.x * p.rows_per_group;
    let last = min(first + p.rows_per_group, p.n);
    var loss = 0.0;
    var bad = 0.0;
    for (var row = first; row < last; row++) {
        let base = row * p.k4;
        var m = neg_inf;
        for (var w = lid; w < p.k4; w += WG) {
            let v = select(vec4<f32>(neg_inf), logits[base + w], live_lanes(w));
            m = max(m, max(max(v.x, v.y), max(v.z, v.w)));
        }
        m = reduce_max(lid, m);
        var s = 0.0;
        for (var w = lid; w < p.k4; w += WG) {
            let e = select(vec4<f32>(0.0), exp(logits[base + w] - m), live_lanes(w));
            s += (e.x + e.y) + (e.z + e.w);
        }
        s = reduce_sum(lid, s);
        let label = labels[row];
        for (var w = lid; w < p.k4; w += WG) {
            let c = w * 4u;
            let hot = vec4<u32>(c, c + 1u, c + 2u, c + 3u) == vec4<u32>(label);
            let g = (exp(logits[base + w] - m) / s - select(vec4<f32>(0.0), vec4<f32>(1.0), hot)) * p.inv_n;
            dlogits[base + w] = select(vec4<f32>(0.0), g, live_lanes(w));
        }
        if (lid == 0u) {
            if (label < p.k) {
                loss += log(s) - (logits[base + label / 4u][label % 4u] - m);
            } else {
                bad += 1.0;
            }
        }
    }
    if (lid == 0u) {
        partials[2u * wid.x] = loss;
        partials[2u * wid.x + 1u] = bad;
    }
}
