// activation.wgsl — float activations (ReLU, ReLU6, PACT clip) forward and backward, PACT's dα,
// and the f32 add of residuals and gradient accumulation (F8NET.md §4).
// Spec: src/reference/activation.rs; launcher: src/ops/activation.rs. One Params for all.
//
// Tensors are f32 [N][H][W][4·C4] (channels padded to a multiple of 4), read as vec4 words.
//   activation_forward:  x(0) alpha(1) → y(2)                      y = clamp(x, 0, hi)
//   activation_backward: dy(0) x(1) alpha(2) → dx(3), partial(4)   dx = dy·(0 < x < hi)
//   activation_alpha_reduce: partial(0) → dalpha(1)                dα (+)= Σ partial
//   add_f32:             a(0) b(1) → out(2)                        out = a + b
// hi = 6 (ReLU6), f32 max (ReLU) or |alpha[0]| (PACT, kind 2: α lives in a GPU buffer so the
// optimizer can update it without a readback; ReLU binds any read-only buffer there).
// The PACT partials are per-workgroup sign(α)·Σ dy over x ≥ hi (tree reduction in workgroup
// memory), summed in fixed order by activation_alpha_reduce: deterministic, no atomics.
// Padding lanes (channel ≥ c) are written as 0 and never counted. Each invocation handles PER
// words WG apart; 1-D over ceil(words / (WG·PER)) workgroups, folded to 2-D by grid_1d.

const WG: u32 = 256u;
const PER: u32 = 4u;

struct Params {
    words: u32,      // N·H·W·C4
    c4: u32,
    c: u32,          // logical channels
    kind: u32,       // 0 ReLU, 1 ReLU6, 2 PACT
    groups: u32,     // backward: workgroups with work = partial sums
    accumulate: u32, // alpha_reduce: 1 = dα += Σ, 0 = dα = Σ
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src0: array<vec4<f32>>;     // x, dy or a
@group(0) @binding(0) var<storage, read> partial_in: array<f32>;
@group(0) @binding(1) var<storage, read> alpha_fwd: array<f32>;
@group(0) @binding(1) var<storage, read> src1: array<vec4<f32>>;     // x (backward) or b
@group(0) @binding(1) var<storage, read_write> dalpha: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst2: array<vec4<f32>>; // y or out
@group(0) @binding(2) var<storage, read> alpha_bwd: array<f32>;
@group(0) @binding(2) var<uniform> p2: Params;
@group(0) @binding(3) var<uniform> p3: Params;
@group(0) @binding(3) var<storage, read_write> dx: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partial_out: array<f32>;
@group(0) @binding(5) var<uniform> p5: Params;

var<workgroup> red: array<f32, WG>;

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

fn live(i: u32, q: Params) -> vec4<bool> {
    let c = (i % q.c4) * 4u;
    return vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(q.c);
}

fn upper(q: Params, alpha: f32) -> f32 {
    switch q.kind {
        case 0u: { return bitcast<f32>(0x7f7fffffu); } // f32 max
        case 1u: { return 6.0; }
        default: { return abs(alpha); }
    }
}

@compute @workgroup_size(WG)
fn activation_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = p3;
    let hi = upper(q, alpha_fwd[0]);
    let base = group_index(wid, nwg) * WG * PER + lid;
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG;
        if (i >= q.words) {
            return;
        }
        let y = clamp(src0[i], vec4<f32>(0.0), vec4<f32>(hi));
        dst2[i] = select(vec4<f32>(0.0), y, live(i, q));
    }
}

@compute @workgroup_size(WG)
fn activation_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = p5;
    let hi = upper(q, alpha_bwd[0]);
    let g = group_index(wid, nwg);
    let base = g * WG * PER + lid;
    var clipped = 0.0;
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG;
        if (i < q.words) {
            let d = src0[i];
            let v = src1[i];
            let on = live(i, q);
            let keep = (v > vec4<f32>(0.0)) & (v < vec4<f32>(hi)) & on;
            dx[i] = select(vec4<f32>(0.0), d, keep);
            let high = select(vec4<f32>(0.0), d, (v >= vec4<f32>(hi)) & on);
            clipped += (high.x + high.y) + (high.z + high.w);
        }
    }
    red[lid] = clipped;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u && g < q.groups) {
        partial_out[g] = red[0] * sign(alpha_bwd[0]); // exact: sign is −1, 0 or 1
    }
}

// One workgroup: dα = Σ partials (each already carries sign(α), the derivative of |α|).
@compute @workgroup_size(WG)
fn activation_alpha_reduce(@builtin(local_invocation_index) lid: u32) {
    let q = p2;
    var acc = 0.0;
    for (var j = lid; j < q.groups; j += WG) {
        acc += partial_in[j];
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        dalpha[0] = select(red[0], dalpha[0] + red[0], q.accumulate != 0u);
    }
}

@compute @workgroup_size(WG)
fn add_f32(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = p3;
    let base = group_index(wid, nwg) * WG * PER + lid;
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG;
        if (i >= q.words) {
            return;
        }
        dst2[i] = select(vec4<f32>(0.0), src0[i] + src1[i], live(i, q));
    }
}
