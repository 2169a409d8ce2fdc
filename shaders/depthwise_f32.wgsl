// depthwise_f32.wgsl — f32 depthwise convolution, direct: out = clamp(dw(x, w) + bias, lo, hi).
//
//   x    [B][H][W][C4]    vec4<f32>: NHWC input, channels padded to 4 with zeros
//   w    [KH][KW][C4]     vec4<f32>: one filter tap per channel (padding lanes 0)
//   bias [C4]             vec4<f32>
//   out  [B][OH][OW][C4]  vec4<f32>
//
// Tiling: a workgroup of 64 invocations owns an output tile of up to 16×16 pixels (tile_h ×
// tile_w, chosen by the launcher) of one image and one vec4 of channels. It stages the input tile
// plus halo ((tile_h − 1)·stride_h + KH rows × (tile_w − 1)·stride_w + KW columns, zero outside the
// image) in workgroup memory, then each invocation computes 4 outputs (one column, 4 consecutive
// rows), reusing each weight vec4 for its 4 outputs. Reads for slots outside the tile are clamped
// into the tile and their results dropped.
// Dispatch (ceil(OW/tile_w), ceil(OH/tile_h), B·C4). The launcher keeps the staged tile ≤ CAP.

const TO: u32 = 16u;     // output tile side (slots)
const ROWS: u32 = 4u;    // output rows per invocation
const WG: u32 = 64u;     // TO · TO / ROWS
const CAP: u32 = 1296u;  // staged input tile capacity in vec4 (36 × 36, 20.25 KiB)

struct Params {
    c4: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    tile_h: u32,
    tile_w: u32,
    _pad0: u32,
    lo: f32, // activation clamp
    hi: f32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> tile: array<vec4<f32>, CAP>;

@compute @workgroup_size(WG)
fn depthwise_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let cg = wid.z % p.c4;
    let b = wid.z / p.c4;
    let oy0 = wid.y * p.tile_h;
    let ox0 = wid.x * p.tile_w;
    let in_th = (p.tile_h - 1u) * p.stride_h + p.kh;
    let in_tw = (p.tile_w - 1u) * p.stride_w + p.kw;
    let iy0 = i32(oy0 * p.stride_h) - i32(p.pad_top);
    let ix0 = i32(ox0 * p.stride_w) - i32(p.pad_left);
    for (var i = lid; i < in_th * in_tw; i += WG) {
        let gy = iy0 + i32(i / in_tw);
        let gx = ix0 + i32(i % in_tw);
        var v = vec4<f32>(0.0); // zero padding
        if (gy >= 0 && gy < i32(p.in_h) && gx >= 0 && gx < i32(p.in_w)) {
            v = x[((b * p.in_h + u32(gy)) * p.in_w + u32(gx)) * p.c4 + cg];
        }
        tile[i] = v;
    }
    workgroupBarrier();

    let lx = lid % TO;
    let ly0 = (lid / TO) * ROWS;
    // Tile-local input offsets of this invocation's outputs (clamped into the tile).
    let col = min(lx, p.tile_w - 1u) * p.stride_w;
    var rowoff: array<u32, ROWS>;
    var acc: array<vec4<f32>, ROWS>;
    for (var a = 0u; a < ROWS; a++) {
        rowoff[a] = min(ly0 + a, p.tile_h - 1u) * p.stride_h * in_tw + col;
        acc[a] = vec4<f32>(0.0);
    }
    var wi = cg;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let wv = w[wi];
            wi += p.c4;
            let t = ky * in_tw + kx;
            for (var a = 0u; a < ROWS; a++) {
                acc[a] += tile[rowoff[a] + t] * wv;
            }
        }
    }

    let ox = ox0 + lx;
    if (lx >= p.tile_w || ox >= p.out_w) {
        return;
    }
    let bv = bias[cg];
    for (var a = 0u; a < ROWS; a++) {
        let oy = oy0 + ly0 + a;
        if (ly0 + a < p.tile_h && oy < p.out_h) {
            out[((b * p.out_h + oy) * p.out_w + ox) * p.c4 + cg] =
                clamp(acc[a] + bv, vec4<f32>(p.lo), vec4<f32>(p.hi));
        }
    }
}

// Training entry points, placeholders until written (issue 4).
@compute @workgroup_size(1)
fn depthwise_f32_backward_input() {}
@compute @workgroup_size(1)
fn depthwise_f32_backward_weight() {}
