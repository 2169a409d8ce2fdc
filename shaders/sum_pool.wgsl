// sum_pool.wgsl — F8Net's global average pool in training (F8NET.md §2.9): the sum over the
// h×w pixels divided by 2^shift, shift = round(log2(h·w)) (in the integer model a pure FL
// change; the 2^shift/(h·w) factor is learned by the classifier), forward and backward.
// Spec: src/reference/sum_pool.rs; launcher: src/ops/sum_pool.rs.
//
//   x, dx f32 [N][HW][4·C4]      y, dy f32 [N][4·C4]   (vec4 words, padding lanes written 0)
//   sum_pool:           x(0) → y(1)    y[n] = Σ_p x[n][p]·2^−shift, pixels in ascending order
//   sum_pool_backward:  dy(0) → dx(1)  dx[n][p] = dy[n]·2^−shift
// One invocation per output word; 1-D over ceil(words/WG) workgroups, folded by grid_1d.

const WG: u32 = 64u;

struct Params {
    n: u32,
    hw: u32,      // pixels per image
    c4: u32,
    c: u32,       // logical channels
    words: u32,   // output words: N·C4 forward, N·HW·C4 backward
    inv: f32,     // 2^−shift (exact)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: Params;

fn live(cw: u32) -> vec4<bool> {
    let c = vec4<u32>(4u * cw) + vec4<u32>(0u, 1u, 2u, 3u);
    return c < vec4<u32>(p.c);
}

fn word_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn sum_pool(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = word_index(wid, nwg, lid);
    if (i >= p.words) {
        return;
    }
    let n = i / p.c4;
    let cw = i % p.c4;
    var acc = vec4<f32>(0.0);
    for (var px = 0u; px < p.hw; px++) {
        acc += src[(n * p.hw + px) * p.c4 + cw] * p.inv;
    }
    dst[i] = select(vec4<f32>(0.0), acc, live(cw));
}

@compute @workgroup_size(WG)
fn sum_pool_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = word_index(wid, nwg, lid);
    if (i >= p.words) {
        return;
    }
    let cw = i % p.c4;
    let n = i / (p.hw * p.c4);
    dst[i] = select(vec4<f32>(0.0), src[n * p.c4 + cw] * p.inv, live(cw));
}
