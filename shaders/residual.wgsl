// residual.wgsl — residual addition of two int32 streams with different FLs (F8NET.md §2.5).
// Spec: src/reference/residual.rs (fixed::align_add); launcher: src/ops/residual.rs.
//
//   a   [N][H][W][4·C4] i32 at fl_a (channels padded to a multiple of 4, read as vec4 words)
//   b   [N][H][W][4·C4] i32 at fl_b
//   out [N][H][W][4·C4] i32 at max(fl_a, fl_b)
//
// out = act(sat_add(shift_round(a, shift_a), shift_round(b, shift_b))) with shift_x = fl_x − fl ≤ 0
// (a saturating left shift; 0 for the addend already at the output FL), act = identity or ReLU.
// Padding lanes (channel ≥ c) are written as 0. Each invocation handles PER vec4 words, WG apart
// (coalesced); a workgroup covers WG·PER words. 1-D over ceil(words / (WG·PER)) workgroups,
// folded to 2-D by grid_1d.

const WG: u32 = 64u;
const PER: u32 = 4u;

struct Params {
    words: u32,  // N·H·W·C4
    c4: u32,
    c: u32,      // logical channels
    relu: u32,   // 1 = ReLU after the add
    shift_a: i32,
    shift_b: i32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<i32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<i32>>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn residual_add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = (wid.x + wid.y * nwg.x) * WG * PER + lid;
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG;
        if (i >= p.words) {
            return;
        }
        let va = a[i];
        let vb = b[i];
        let c = (i % p.c4) * 4u;
        var r: vec4<i32>;
        for (var l = 0u; l < 4u; l++) {
            r[l] = sat_add(shift_round(va[l], p.shift_a), shift_round(vb[l], p.shift_b));
        }
        if (p.relu != 0u) {
            r = max(r, vec4<i32>(0));
        }
        let live = vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.c);
        out[i] = select(vec4<i32>(0), r, live);
    }
}
