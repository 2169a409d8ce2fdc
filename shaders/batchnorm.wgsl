// batchnorm.wgsl — batch normalization over NHWC per channel: batch statistics (Welford/Chan),
// running-statistics update, the affine apply, and the full backward through the batch stats
// (F8NET.md §2.3). Spec: src/reference/batchnorm.rs; launcher: src/ops/batchnorm.rs.
//
// Tensors x, y, dy, dx: f32 [P = N·H·W][4·C4], read as vec4 words. Per-channel pairs, each half
// 4·C4 values (C4 vec4 words), padding lanes 0: stats = [mean | biased var], running =
// [mean | unbiased var], affine = [γ | β], grads = [dγ | dβ]. Partials: [chunks][2][C4] vec4.
//
// Reductions (deterministic, no atomics): stage 1 gives each workgroup GCW channel words × one
// chunk of pixels; ROWS = WG/GCW invocations per word walk the chunk with stride ROWS, then a
// tree in workgroup memory; stage 2 has one workgroup per GCW words fold the chunks the same way.
//   batchnorm_stats:           x(0) → part(1)                  per-chunk (mean, M2), Welford
//   batchnorm_stats_merge:     part(0) → stats(1), running(2)  Chan merge; running (opt.) =
//                              (1 − m)·running + m·(mean, M2/(P − 1))
//   batchnorm_apply:           x(0) stats(1) affine(2) → y(3)  y = γ·(x − μ)·k + β, k = 1/√(var + eps)
//   batchnorm_backward_reduce: dy(0) x(1) stats(2) → part(3)   per-chunk (Σ dy, Σ dy·(x − μ))
//   batchnorm_backward_merge:  part(0) stats(1) → grads(2)     dβ = Σ dy, dγ = k·Σ dy·(x − μ)
//   batchnorm_backward_apply:  dy(0) x(1) stats(2) affine(3) grads(4) → dx(5)
//                              dx = γ·k·(dy − dβ/P − x̂·dγ/P), x̂ = (x − μ)·k
// Element-wise kernels: PER words per invocation, WG apart; 1-D grid folded by grid_1d.
// Stage-1 grid: (ceil(C4/GCW), chunks); stage 2: (ceil(C4/GCW), 1). GCW ∈ {1, 2, 4, 8}.

const WG: u32 = 256u;
const PER: u32 = 4u;

struct Params {
    pixels: u32,         // P
    c4: u32,
    c: u32,              // logical channels
    gcw: u32,            // channel words per reduction workgroup
    rows: u32,           // WG / gcw
    chunk: u32,          // pixels per stage-1 workgroup
    chunks: u32,
    update_running: u32, // stats_merge: 1 = update the running statistics
    eps: f32,
    momentum: f32,
    words: u32,          // P·C4
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> src0: array<vec4<f32>>;        // x, dy or part
@group(0) @binding(1) var<storage, read> in1: array<vec4<f32>>;         // x or stats
@group(0) @binding(1) var<storage, read_write> out1: array<vec4<f32>>;  // part or stats
@group(0) @binding(2) var<storage, read> in2: array<vec4<f32>>;         // affine or stats
@group(0) @binding(2) var<storage, read_write> out2: array<vec4<f32>>;  // running or grads
@group(0) @binding(2) var<uniform> p2: Params;
@group(0) @binding(3) var<storage, read> in3: array<vec4<f32>>;         // affine
@group(0) @binding(3) var<storage, read_write> out3: array<vec4<f32>>;  // y or part
@group(0) @binding(3) var<uniform> p3: Params;
@group(0) @binding(4) var<storage, read> in4: array<vec4<f32>>;         // grads
@group(0) @binding(4) var<uniform> p4: Params;
@group(0) @binding(5) var<storage, read_write> out5: array<vec4<f32>>;  // dx
@group(0) @binding(6) var<uniform> p6: Params;

// A partial reduction: count n and two lane vectors (mean and M2, or two sums).
struct Acc {
    a: vec4<f32>,
    b: vec4<f32>,
    n: f32,
}

var<workgroup> red: array<Acc, WG>;

fn live(cw: u32, q: Params) -> vec4<bool> {
    let c = cw * 4u;
    return vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(q.c);
}

fn inv_std(var_: vec4<f32>, q: Params) -> vec4<f32> {
    return 1.0 / sqrt(var_ + vec4<f32>(q.eps));
}

// Chan's merge of two (n, mean, M2) partials.
fn chan(x: Acc, y: Acc) -> Acc {
    let n = x.n + y.n;
    if (y.n == 0.0) {
        return x;
    }
    let d = y.a - x.a;
    let f = y.n / n;
    return Acc(x.a + d * f, x.b + y.b + d * d * (x.n * f), n);
}

fn sum(x: Acc, y: Acc) -> Acc {
    return Acc(x.a + y.a, x.b + y.b, x.n + y.n);
}

// Tree over the ROWS partials of each channel word; the result lands in red[lid % gcw].
// The caller has written red[lid].
fn tree(lid: u32, q: Params, welford: bool) {
    workgroupBarrier();
    let r = lid / q.gcw;
    for (var s = q.rows / 2u; s > 0u; s >>= 1u) {
        if (r < s) {
            let o = red[lid + s * q.gcw];
            if (welford) {
                red[lid] = chan(red[lid], o);
            } else {
                red[lid] = sum(red[lid], o);
            }
        }
        workgroupBarrier();
    }
}

fn chunk_count(j: u32, q: Params) -> f32 {
    return f32(min(q.chunk, q.pixels - j * q.chunk));
}

@compute @workgroup_size(WG)
fn batchnorm_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = p2;
    let cw = wid.x * q.gcw + lid % q.gcw;
    let j = wid.y;
    let end = min(j * q.chunk + q.chunk, q.pixels);
    var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), 0.0);
    if (cw < q.c4) {
        for (var px = j * q.chunk + lid / q.gcw; px < end; px += q.rows) {
            let v = src0[px * q.c4 + cw];
            acc.n += 1.0;
            let d = v - acc.a;
            acc.a += d / acc.n;
            acc.b += d * (v - acc.a);
        }
    }
    red[lid] = acc;
    tree(lid, q, true);
    if (lid < q.gcw && cw < q.c4) {
        out1[(j * 2u) * q.c4 + cw] = red[lid].a;
        out1[(j * 2u + 1u) * q.c4 + cw] = red[lid].b;
    }
}

@compute @workgroup_size(WG)
fn batchnorm_stats_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = p3;
    let cw = wid.x * q.gcw + lid % q.gcw;
    var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), 0.0);
    if (cw < q.c4) {
        for (var j = lid / q.gcw; j < q.chunks; j += q.rows) {
            let part = Acc(src0[(j * 2u) * q.c4 + cw], src0[(j * 2u + 1u) * q.c4 + cw], chunk_count(j, q));
            acc = chan(acc, part);
        }
    }
    red[lid] = acc;
    tree(lid, q, true);
    if (lid < q.gcw && cw < q.c4) {
        let t = red[lid];
        let on = live(cw, q);
        let mean = select(vec4<f32>(0.0), t.a, on);
        out1[cw] = mean;
        out1[q.c4 + cw] = select(vec4<f32>(0.0), t.b / t.n, on);
        if (q.update_running != 0u) {
            let keep = 1.0 - q.momentum;
            let unbiased = select(vec4<f32>(0.0), t.b / (t.n - 1.0), on);
            let rm = keep * out2[cw] + q.momentum * mean;
            let rv = keep * out2[q.c4 + cw] + q.momentum * unbiased;
            out2[cw] = select(vec4<f32>(0.0), rm, on);
            out2[q.c4 + cw] = select(vec4<f32>(0.0), rv, on);
        }
    }
}

fn word_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * PER + lid;
}

@compute @workgroup_size(WG)
fn batchnorm_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = p4;
    let base = word_index(wid, nwg, lid);
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG;
        if (i >= q.words) {
            return;
        }
        let cw = i % q.c4;
        let xh = (src0[i] - in1[cw]) * inv_std(in1[q.c4 + cw], q);
        let y = in2[cw] * xh + in2[q.c4 + cw];
        out3[i] = select(vec4<f32>(0.0), y, live(cw, q));
    }
}

@compute @workgroup_size(WG)
fn batchnorm_backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = p4;
    let cw = wid.x * q.gcw + lid % q.gcw;
    let j = wid.y;
    let end = min(j * q.chunk + q.chunk, q.pixels);
    var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), 0.0);
    if (cw < q.c4) {
        let mean = in2[cw];
        for (var px = j * q.chunk + lid / q.gcw; px < end; px += q.rows) {
            let e = px * q.c4 + cw;
            let d = src0[e];
            acc.a += d;
            acc.b += d * (in1[e] - mean);
        }
    }
    red[lid] = acc;
    tree(lid, q, false);
    if (lid < q.gcw && cw < q.c4) {
        out3[(j * 2u) * q.c4 + cw] = red[lid].a;
        out3[(j * 2u + 1u) * q.c4 + cw] = red[lid].b;
    }
}

@compute @workgroup_size(WG)
fn batchnorm_backward_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = p3;
    let cw = wid.x * q.gcw + lid % q.gcw;
    var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), 0.0);
    if (cw < q.c4) {
        for (var j = lid / q.gcw; j < q.chunks; j += q.rows) {
            acc = sum(acc, Acc(src0[(j * 2u) * q.c4 + cw], src0[(j * 2u + 1u) * q.c4 + cw], 0.0));
        }
    }
    red[lid] = acc;
    tree(lid, q, false);
    if (lid < q.gcw && cw < q.c4) {
        let on = live(cw, q);
        let k = inv_std(in1[q.c4 + cw], q);
        out2[cw] = select(vec4<f32>(0.0), red[lid].b * k, on);
        out2[q.c4 + cw] = select(vec4<f32>(0.0), red[lid].a, on);
    }
}

@compute @workgroup_size(WG)
fn batchnorm_backward_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = p6;
    let inv_m = 1.0 / f32(q.pixels);
    let base = word_index(wid, nwg, lid);
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG;
        if (i >= q.words) {
            return;
        }
        let cw = i % q.c4;
        let s = inv_std(in2[q.c4 + cw], q);
        let xh = (in1[i] - in2[cw]) * s;
        let g = src0[i] - (in4[q.c4 + cw] + xh * in4[cw]) * inv_m;
        out5[i] = select(vec4<f32>(0.0), in3[cw] * s * g, live(cw, q));
    }
}
