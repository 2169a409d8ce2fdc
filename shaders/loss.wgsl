// loss.wgsl — placeholder, not yet written (training kernels, issue 4).
@compute @workgroup_size(1)
fn softmax_cross_entropy() {}
