// batchnorm.wgsl — placeholder, not yet written (training kernels, issue 4).
@compute @workgroup_size(1)
fn batchnorm_stats() {}
@compute @workgroup_size(1)
fn batchnorm_apply() {}
@compute @workgroup_size(1)
fn batchnorm_backward_reduce() {}
@compute @workgroup_size(1)
fn batchnorm_backward_apply() {}
