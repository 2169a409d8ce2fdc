// optim.wgsl — one SGD step on one parameter tensor, in place (PyTorch semantics, dampening 0).
// Spec: src/reference/optim.rs; launcher: src/ops/optim.rs.
//
//   grad f32 [len] (read), w f32 [len] and buf f32 [len] (momentum buffer; read and written)
//   g ← grad + wd·w;  buf ← g (first step) else momentum·buf + g;
//   g ← g + momentum·buf (Nesterov) else buf;  w ← w − lr·g
//
// One element per invocation; 1-D over ceil(len / WG) workgroups, folded to 2-D by grid_1d.
// Any layout: padding elements (w = grad = 0) stay 0.

const WG: u32 = 256u;

struct Params {
    len: u32,
    first: u32,       // 1 on the tensor's first step
    nesterov: u32,
    _pad0: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> buf: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn sgd_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.len) {
        return;
    }
    let wi = w[i];
    let g = grad[i] + p.weight_decay * wi;
    var b = g;
    if (p.first == 0u) {
        b = p.momentum * buf[i] + g;
    }
    buf[i] = b;
    var d = b;
    if (p.nesterov != 0u) {
        d = g + p.momentum * b;
    }
    w[i] = wi + (-p.lr) * d;
}
