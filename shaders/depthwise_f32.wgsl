// depthwise_f32.wgsl — f32 depthwise convolution, direct: out = clamp(dw(x, w) + bias, lo, hi),
// and its backward passes.
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
//
// depthwise_f32_backward_input (bindings dy, w, dx, p3): one invocation per dx word, gathering
// only the taps ky ≡ (iy + pad_top) mod stride_h whose output row (iy + pad_top − ky)/stride_h
// exists (same for x); grid_1d over B·H·W·C4, 64 per workgroup.
// depthwise_f32_backward_weight (bindings x, dy, part_w, part_b, p): dw[tap][c4] and db[c4]
// partials of the rows split_rows·z .. of split z. A workgroup owns 16 channel words of one tap
// (16 lanes × 16 row lanes; consecutive invocations read consecutive words), row lanes stride
// over the split, then a fixed tree sums the row lanes. Dispatch (ceil(C4/16), KH·KW, splits);
// the launcher sums the partials with gemm_f32_sum_partials.

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
    batch: u32,
    splits: u32,
    split_rows: u32, // backward weight: output pixels per split
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> out2: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out3: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p3: Params;

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

@compute @workgroup_size(64)
fn depthwise_f32_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p3.batch * p3.in_h * p3.in_w * p3.c4) {
        return;
    }
    let cg = i % p3.c4;
    let t = i / p3.c4;
    let qx = t % p3.in_w + p3.pad_left;
    let qy = (t / p3.in_w) % p3.in_h + p3.pad_top;
    let b = t / (p3.in_w * p3.in_h);
    var acc = vec4<f32>(0.0);
    for (var ky = qy % p3.stride_h; ky < p3.kh && ky <= qy; ky += p3.stride_h) {
        let oy = (qy - ky) / p3.stride_h;
        if (oy >= p3.out_h) {
            continue;
        }
        for (var kx = qx % p3.stride_w; kx < p3.kw && kx <= qx; kx += p3.stride_w) {
            let ox = (qx - kx) / p3.stride_w;
            if (ox < p3.out_w) {
                acc += x[((b * p3.out_h + oy) * p3.out_w + ox) * p3.c4 + cg] * w[(ky * p3.kw + kx) * p3.c4 + cg];
            }
        }
    }
    out2[i] = acc;
}

@compute @workgroup_size(256)
fn depthwise_f32_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let cg = wid.x * 16u + lid % 16u;
    let lane = lid / 16u;
    let ky = i32(wid.y / p.kw) - i32(p.pad_top);
    let kx = i32(wid.y % p.kw) - i32(p.pad_left);
    let m0 = wid.z * p.split_rows;
    let m1 = min(m0 + p.split_rows, p.batch * p.out_h * p.out_w);
    var acc = vec4<f32>(0.0);
    var dsum = vec4<f32>(0.0);
    if (cg < p.c4) {
        for (var r = m0 + lane; r < m1; r += 16u) {
            let d = w[r * p.c4 + cg];
            dsum += d;
            let t = r / p.out_w;
            let iy = i32((t % p.out_h) * p.stride_h) + ky;
            let ix = i32((r % p.out_w) * p.stride_w) + kx;
            if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
                acc += d * x[(((t / p.out_h) * p.in_h + u32(iy)) * p.in_w + u32(ix)) * p.c4 + cg];
            }
        }
    }
    tile[lid] = acc;
    tile[256u + lid] = dsum;
    workgroupBarrier();
    for (var half = 128u; half >= 16u; half /= 2u) {
        if (lid < half) {
            tile[lid] += tile[lid + half];
            tile[256u + lid] += tile[256u + lid + half];
        }
        workgroupBarrier();
    }
    if (lid < 16u && cg < p.c4) {
        out2[(wid.z * p.kh * p.kw + wid.y) * p.c4 + cg] = tile[lid];
        if (wid.y == 0u) {
            out3[wid.z * p.c4 + cg] = tile[256u + lid];
        }
    }
}
