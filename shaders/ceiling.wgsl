// ceiling.wgsl — the device's own ceilings for `f8net bench` (WGPU.md §6–§7): how fast this
// adapter runs packed int8 dot products, f32 FMAs and a plain buffer copy, so every kernel can be
// reported as a fraction of what the device can do. Launcher and CPU twins: src/ops/ceiling.rs.
//
//   src [*]  vec4<u32>: chain kernels: seed words (read at i % seed_words); copy: the source
//   dst [*]  vec4<u32>: chain kernels: one word per invocation (the chains' results, so the
//                       compiler cannot drop the work); copy: the destination
//
// ceiling_dp4a: CHAINS = 8 independent register-only chains per invocation, each step
//   a = dot4I8Packed(a, w) + a   (one dp4a with accumulate: 4 MACs = 8 ops, dependent on the
//   previous step, so nothing can be hoisted or folded). `iters` trips of the loop.
// ceiling_fma: 8 independent chains f = fma(f, fa, fb) (2 flops each), fa/fb from the uniforms
//   (0.999 and 0.001 keep every chain near 1: no overflow, no denormals).
// ceiling_copy: dst[j] = src[j] for j < total, PER words per invocation WG apart (coalesced).
// Every kernel is 1-D over invocations, folded to 2-D by grid_1d: i = gid.x + gid.y·nwg.x·WG.

requires packed_4x8_integer_dot_product;

const WG: u32 = 256u;
const PER: u32 = 4u;

struct Params {
    iters: u32,      // chain steps per chain
    seed_words: u32, // vec4 seed words in src (chain kernels)
    total: u32,      // invocations with work (chains) or vec4 words to copy (copy)
    salt: u32,       // mixed into the dp4a operands
    fa: f32,
    fb: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(2) var<uniform> p: Params;

fn step8(a: u32, w: u32) -> u32 {
    return bitcast<u32>(dot4I8Packed(a, w) + bitcast<i32>(a));
}

@compute @workgroup_size(WG)
fn ceiling_dp4a(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let s = src[i % p.seed_words];
    let w = s.y ^ p.salt;
    var a0 = s.x;
    var a1 = s.y;
    var a2 = s.z;
    var a3 = s.w;
    var a4 = s.x ^ p.salt;
    var a5 = s.y ^ 0x5a5a5a5au;
    var a6 = s.z ^ p.salt;
    var a7 = s.w ^ 0x5a5a5a5au;
    for (var t = 0u; t < p.iters; t++) {
        a0 = step8(a0, w);
        a1 = step8(a1, w);
        a2 = step8(a2, w);
        a3 = step8(a3, w);
        a4 = step8(a4, w);
        a5 = step8(a5, w);
        a6 = step8(a6, w);
        a7 = step8(a7, w);
    }
    dst[i] = vec4<u32>(a0 ^ a4, a1 ^ a5, a2 ^ a6, a3 ^ a7);
}

@compute @workgroup_size(WG)
fn ceiling_fma(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let s = src[i % p.seed_words];
    let scale = 1.0 / 65536.0;
    var f0 = f32(s.x & 0xffffu) * scale;
    var f1 = f32(s.y & 0xffffu) * scale;
    var f2 = f32(s.z & 0xffffu) * scale;
    var f3 = f32(s.w & 0xffffu) * scale;
    var f4 = f32(s.x >> 16u) * scale;
    var f5 = f32(s.y >> 16u) * scale;
    var f6 = f32(s.z >> 16u) * scale;
    var f7 = f32(s.w >> 16u) * scale;
    for (var t = 0u; t < p.iters; t++) {
        f0 = fma(f0, p.fa, p.fb);
        f1 = fma(f1, p.fa, p.fb);
        f2 = fma(f2, p.fa, p.fb);
        f3 = fma(f3, p.fa, p.fb);
        f4 = fma(f4, p.fa, p.fb);
        f5 = fma(f5, p.fa, p.fb);
        f6 = fma(f6, p.fa, p.fb);
        f7 = fma(f7, p.fa, p.fb);
    }
    dst[i] = bitcast<vec4<u32>>(vec4<f32>(f0 + f4, f1 + f5, f2 + f6, f3 + f7));
}

@compute @workgroup_size(WG)
fn ceiling_copy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = (wid.x + wid.y * nwg.x) * WG * PER + lid;
    for (var k = 0u; k < PER; k++) {
        let j = base + k * WG;
        if (j >= p.total) {
            return;
        }
        dst[j] = src[j];
    }
}
