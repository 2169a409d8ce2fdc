// fold_common.wgsl — what fold.wgsl (conv + BN) and fold_linear.wgsl (scales, classifier, dα)
// share: the one Params of every fold entry point (src/ops/fold), the workgroup size, and the
// fixed-order reductions. Appended to both files (src/gpu/kernels.rs); no entry points.

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

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

var<workgroup> red: array<f32, WG>;

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
