// pool_f32.wgsl — f32 max pool (with argmax) and average pool (count_include_pad = false; global
// pooling is the h×w window), forward and backward, for training.
// Spec: src/reference/pool_f32.rs; launcher: src/ops/pool_f32.rs. One Params for all.
//
//   x, dx    [N][H][W][4·C4] f32      y, dy [N][OH][OW][4·C4] f32 (read as vec4 words)
//   argmax   [N][OH][OW][4·C4] u32 = iy·W + ix of the window's first maximum (scan order, strict >)
//   max_pool_f32:           x(0) → y(1), argmax(2)
//   max_pool_f32_backward:  dy(0) argmax(1) → dx(2)   dx[i] = Σ dy[o] over o with argmax[o] = i
//   avg_pool_f32:           x(0) → y(1)               y = Σ x / cnt (in-bounds pixels only)
//   avg_pool_f32_backward:  dy(0) → dx(1)             dx[i] = Σ dy[o] / cnt[o] over o ∋ i
// Padded positions are ignored; the launcher guarantees every window holds an input pixel.
// Backward is a gather per input element over the outputs whose window holds it, in ascending
// (oy, ox) order: deterministic, no atomics. Padding lanes (channel ≥ c) are written as 0.
// Each invocation: one channel word × PX consecutive pixels along x (output pixels forward,
// input pixels backward). 1-D over N·rows·ceil(width/PX)·C4 invocations, folded by grid_1d.

const WG: u32 = 64u;
const PX: u32 = 4u;

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c4: u32,
    c: u32,        // logical channels
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    groups_x: u32, // ceil(ow / PX) forward, ceil(w / PX) backward
    total: u32,    // invocations with work
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;          // x or dy
@group(0) @binding(1) var<storage, read_write> dst1: array<vec4<f32>>;   // y, or dx (avg)
@group(0) @binding(1) var<storage, read> arg_in: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> arg_out: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dx2: array<vec4<f32>>;    // dx (max)
@group(0) @binding(2) var<uniform> p2: Params;
@group(0) @binding(3) var<uniform> p3: Params;

// One invocation's work: image b, row, first x, channel word; valid = idx < total.
struct Item {
    b: u32,
    row: u32,
    x0: u32,
    cw: u32,
    valid: bool,
}

fn item(gid: vec3<u32>, nwg: vec3<u32>, rows: u32, q: Params) -> Item {
    let idx = gid.x + gid.y * nwg.x * WG;
    let cw = idx % q.c4;
    let r = idx / q.c4;
    let x0 = (r % q.groups_x) * PX;
    let r2 = r / q.groups_x;
    return Item(r2 / rows, r2 % rows, x0, cw, idx < q.total);
}

fn live(cw: u32, q: Params) -> vec4<bool> {
    let c = cw * 4u;
    return vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(q.c);
}

// Input span [lo, hi) of output position o along one axis.
fn span(o: u32, stride: u32, pad: u32, k: u32, len: u32) -> vec2<u32> {
    let start = i32(o * stride) - i32(pad);
    return vec2<u32>(u32(max(start, 0)), u32(clamp(start + i32(k), 0, i32(len))));
}

// Outputs [lo, hi] (inclusive; empty when lo > hi) whose window holds input position i.
fn covering(i: u32, stride: u32, pad: u32, k: u32, olen: u32) -> vec2<i32> {
    let t = i32(i + pad) - i32(k) + 1;
    let lo = select(0, (t + i32(stride) - 1) / i32(stride), t > 0);
    let hi = min(i32((i + pad) / stride), i32(olen) - 1);
    return vec2<i32>(lo, hi);
}

@compute @workgroup_size(WG)
fn max_pool_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = p3;
    let it = item(gid, nwg, q.oh, q);
    if (!it.valid) {
        return;
    }
    let ys = span(it.row, q.stride_h, q.pad_top, q.kh, q.h);
    let on = live(it.cw, q);
    for (var ox = it.x0; ox < min(it.x0 + PX, q.ow); ox++) {
        let xs = span(ox, q.stride_w, q.pad_left, q.kw, q.w);
        var m = vec4<f32>(0.0);
        var a = vec4<u32>(0u);
        var first = true;
        for (var iy = ys.x; iy < ys.y; iy++) {
            for (var ix = xs.x; ix < xs.y; ix++) {
                let v = src[((it.b * q.h + iy) * q.w + ix) * q.c4 + it.cw];
                let gt = (v > m) | vec4<bool>(first);
                m = select(m, v, gt);
                a = select(a, vec4<u32>(iy * q.w + ix), gt);
                first = false;
            }
        }
        let o = ((it.b * q.oh + it.row) * q.ow + ox) * q.c4 + it.cw;
        dst1[o] = select(vec4<f32>(0.0), m, on);
        arg_out[o] = select(vec4<u32>(0u), a, on);
    }
}

@compute @workgroup_size(WG)
fn max_pool_f32_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = p3;
    let it = item(gid, nwg, q.h, q);
    if (!it.valid) {
        return;
    }
    let oys = covering(it.row, q.stride_h, q.pad_top, q.kh, q.oh);
    let on = live(it.cw, q);
    for (var ix = it.x0; ix < min(it.x0 + PX, q.w); ix++) {
        let oxs = covering(ix, q.stride_w, q.pad_left, q.kw, q.ow);
        let me = vec4<u32>(it.row * q.w + ix);
        var acc = vec4<f32>(0.0);
        for (var oy = oys.x; oy <= oys.y; oy++) {
            for (var ox = oxs.x; ox <= oxs.y; ox++) {
                let o = ((it.b * q.oh + u32(oy)) * q.ow + u32(ox)) * q.c4 + it.cw;
                acc += select(vec4<f32>(0.0), src[o], arg_in[o] == me);
            }
        }
        dx2[((it.b * q.h + it.row) * q.w + ix) * q.c4 + it.cw] = select(vec4<f32>(0.0), acc, on);
    }
}

@compute @workgroup_size(WG)
fn avg_pool_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = p2;
    let it = item(gid, nwg, q.oh, q);
    if (!it.valid) {
        return;
    }
    let ys = span(it.row, q.stride_h, q.pad_top, q.kh, q.h);
    let on = live(it.cw, q);
    for (var ox = it.x0; ox < min(it.x0 + PX, q.ow); ox++) {
        let xs = span(ox, q.stride_w, q.pad_left, q.kw, q.w);
        var acc = vec4<f32>(0.0);
        for (var iy = ys.x; iy < ys.y; iy++) {
            for (var ix = xs.x; ix < xs.y; ix++) {
                acc += src[((it.b * q.h + iy) * q.w + ix) * q.c4 + it.cw];
            }
        }
        let cnt = f32((ys.y - ys.x) * (xs.y - xs.x));
        let o = ((it.b * q.oh + it.row) * q.ow + ox) * q.c4 + it.cw;
        dst1[o] = select(vec4<f32>(0.0), acc / cnt, on);
    }
}

@compute @workgroup_size(WG)
fn avg_pool_f32_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = p2;
    let it = item(gid, nwg, q.h, q);
    if (!it.valid) {
        return;
    }
    let oys = covering(it.row, q.stride_h, q.pad_top, q.kh, q.oh);
    let on = live(it.cw, q);
    for (var ix = it.x0; ix < min(it.x0 + PX, q.w); ix++) {
        let oxs = covering(ix, q.stride_w, q.pad_left, q.kw, q.ow);
        var acc = vec4<f32>(0.0);
        for (var oy = oys.x; oy <= oys.y; oy++) {
            let ys = span(u32(oy), q.stride_h, q.pad_top, q.kh, q.h);
            for (var ox = oxs.x; ox <= oxs.y; ox++) {
                let xs = span(u32(ox), q.stride_w, q.pad_left, q.kw, q.w);
                let cnt = f32((ys.y - ys.x) * (xs.y - xs.x));
                acc += src[((it.b * q.oh + u32(oy)) * q.ow + u32(ox)) * q.c4 + it.cw] / cnt;
            }
        }
        dst1[((it.b * q.h + it.row) * q.w + ix) * q.c4 + it.cw] = select(vec4<f32>(0.0), acc, on);
    }
}
