// pool.wgsl — max pool on 8-bit codes and global average pool (a sum; F8NET.md §2.9).
// Spec: src/reference/pool.rs; launcher: src/ops/pool.rs. One Params for both entry points.
//
// max_pool:
//   x   [N][H][W][C4]    u32: four 8-bit codes per word (signed or unsigned per x_signed)
//   out [N][OH][OW][C4]  u32: same format; padded positions are ignored (PyTorch semantics, the
//                        launcher guarantees every window holds at least one input pixel)
//   Each invocation: one channel word × PX consecutive output pixels along x. 1-D over
//   N·OH·ceil(OW/PX)·C4 invocations, folded to 2-D by grid_1d.
// global_avg_pool:
//   x   [N][H·W][C4] u32 codes (in_mode 0) or [N][H·W][4·C4] i32 (in_mode 1, read as u32)
//   out [N][4·C4]    i32 = Σ over H·W, exact in 64 bits (lo u32 + hi i32 per lane), then
//                    saturated to ±(2^31 − 1); the FL grows by round(log2(H·W)), no division.
//   A workgroup owns GCW channel words of one image: GR invocations per word stride over the
//   pixels, then a tree reduction in workgroup memory. Dispatch (ceil(C4/GCW), N, 1).

const WG: u32 = 64u;
const PX: u32 = 4u;
const GCW: u32 = 8u;
const GR: u32 = 32u;
const GWG: u32 = 256u; // GCW · GR

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c4: u32,
    c: u32,         // logical channels: lanes ≥ c are written as 0
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    x_signed: u32,  // 1 = int8 codes, 0 = uint8
    in_mode: u32,   // global_avg_pool: 0 = packed codes, 1 = int32
    ox_groups: u32, // max_pool: ceil(ow / PX)
    total: u32,     // max_pool: invocations with work, N·OH·ox_groups·C4
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

fn lane_mask(cw: u32) -> vec4<bool> {
    let c = cw * 4u;
    return vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.c);
}

@compute @workgroup_size(WG)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    if (idx >= p.total) {
        return;
    }
    let cw = idx % p.c4;
    let r = idx / p.c4;
    let ox0 = (r % p.ox_groups) * PX;
    let r2 = r / p.ox_groups;
    let oy = r2 % p.oh;
    let b = r2 / p.oh;
    let live = lane_mask(cw);
    for (var j = 0u; j < PX; j++) {
        let ox = ox0 + j;
        if (ox >= p.ow) {
            break;
        }
        var m = vec4<i32>(-256); // below every code
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(oy * p.stride_h + ky) - i32(p.pad_top);
            if (iy < 0 || iy >= i32(p.h)) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = i32(ox * p.stride_w + kx) - i32(p.pad_left);
                if (ix < 0 || ix >= i32(p.w)) {
                    continue;
                }
                let word = x[((b * p.h + u32(iy)) * p.w + u32(ix)) * p.c4 + cw];
                m = max(m, unpack_codes(word, p.x_signed));
            }
        }
        let q = select(vec4<i32>(0), m, live);
        out[((b * p.oh + oy) * p.ow + ox) * p.c4 + cw] = pack_codes(q, p.x_signed);
    }
}

// A 64-bit lane-wise integer: lo + 2^32 · hi.
struct Wide {
    lo: vec4<u32>,
    hi: vec4<i32>,
}

fn wide_add(a: Wide, b: Wide) -> Wide {
    let lo = a.lo + b.lo;
    let carry = select(vec4<i32>(0), vec4<i32>(1), lo < a.lo);
    return Wide(lo, a.hi + b.hi + carry);
}

fn widen(v: vec4<i32>) -> Wide {
    return Wide(bitcast<vec4<u32>>(v), select(vec4<i32>(0), vec4<i32>(-1), v < vec4<i32>(0)));
}

// Saturate to ±(2^31 − 1), like fixed::saturate_i32.
fn narrow(a: Wide) -> vec4<i32> {
    let above = (a.hi > vec4<i32>(0)) | ((a.hi == vec4<i32>(0)) & (a.lo > vec4<u32>(0x7fffffffu)));
    let below = (a.hi < vec4<i32>(-1)) | ((a.hi == vec4<i32>(-1)) & (a.lo <= vec4<u32>(0x80000000u)));
    let v = select(bitcast<vec4<i32>>(a.lo), vec4<i32>(I32_SAT), above);
    return select(v, vec4<i32>(-I32_SAT), below);
}

var<workgroup> partial: array<Wide, GWG>;

@compute @workgroup_size(GWG)
fn global_avg_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let cl = lid % GCW;
    let part = lid / GCW;
    let cw = wid.x * GCW + cl;
    let b = wid.y;
    let hw = p.h * p.w;
    var acc = Wide(vec4<u32>(0u), vec4<i32>(0));
    if (cw < p.c4) {
        for (var px = part; px < hw; px += GR) {
            let word = (b * hw + px) * p.c4 + cw;
            var v: vec4<i32>;
            if (p.in_mode == 0u) {
                v = unpack_codes(x[word], p.x_signed);
            } else {
                let e = word * 4u;
                v = bitcast<vec4<i32>>(vec4<u32>(x[e], x[e + 1u], x[e + 2u], x[e + 3u]));
            }
            acc = wide_add(acc, widen(v));
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = GR / 2u; s > 0u; s >>= 1u) {
        if (part < s) {
            partial[lid] = wide_add(partial[lid], partial[lid + s * GCW]);
        }
        workgroupBarrier();
    }
    if (part == 0u && cw < p.c4) {
        let q = select(vec4<i32>(0), narrow(partial[cl]), lane_mask(cw));
        let e = (b * p.c4 + cw) * 4u;
        for (var l = 0u; l < 4u; l++) {
            out[e + l] = bitcast<u32>(q[l]);
        }
    }
}
