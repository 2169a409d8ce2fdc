// fake_quant.wgsl — placeholder, not yet written (training kernels, issue 4).
@compute @workgroup_size(1)
fn fake_quant() {}
@compute @workgroup_size(1)
fn fake_quant_backward() {}
@compute @workgroup_size(1)
fn tensor_stats() {}
