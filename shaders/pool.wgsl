// pool.wgsl — placeholder.
@compute @workgroup_size(1)
fn max_pool() {}
@compute @workgroup_size(1)
fn global_avg_pool() {}
