use f8net::reference::blas::{sgemm, Mat, MatMut};
use std::time::Instant;
fn main() {
    for &(m, k, n, ta, tb) in &[
        (3136usize, 576usize, 64usize, false, true),
        (784, 1152, 128, false, true),
        (6272, 1152, 128, false, true),
        (6272, 128, 1152, false, false),
        (128, 6272, 1152, true, false),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let am = if ta {
            Mat::row_major(&a, k, m).t()
        } else {
            Mat::row_major(&a, m, k)
        };
        let bm = if tb {
            Mat::row_major(&b, n, k).t()
        } else {
            Mat::row_major(&b, k, n)
        };
        for _ in 0..2 {
            sgemm(1.0, am, bm, 0.0, MatMut::row_major(&mut c, m, n)).unwrap();
        }
        let it = 10;
        let t = Instant::now();
        for _ in 0..it {
            sgemm(1.0, am, bm, 0.0, MatMut::row_major(&mut c, m, n)).unwrap();
        }
        let s = t.elapsed().as_secs_f64() / it as f64;
        println!(
            "m{m} k{k} n{n} ta{ta} tb{tb}: {:.1} GFLOPS",
            2.0 * (m * k * n) as f64 / s / 1e9
        );
    }
}
