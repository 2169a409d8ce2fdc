//! Fractional-length selection: F8NET.md §12 vectors T1, T2, T10, T13, and grid search.

use crate::common::Rng;
use f8net::fixed::{FlRange, Format, Signedness};
use f8net::fraclen::{
    fl_from_std, fl_grid_search, gaussian_relative_error, unbiased_std, RunningFl,
};

#[test]
fn t1_std_to_fl() {
    let signed = [
        (100.0, 0),
        (40.0, 0),
        (39.9, 0),
        (20.0, 1),
        (10.0, 2),
        (5.0, 3),
        (2.5, 4),
        (1.25, 5),
        (1.0, 5),
        (0.625, 6),
        (0.5, 6),
        (0.3125, 7),
        (0.3, 7),
        (0.01, 7),
        (0.0, 7),
    ];
    for (sigma, fl) in signed {
        assert_eq!(
            fl_from_std(sigma, Signedness::Signed),
            fl,
            "signed σ = {sigma}"
        );
    }
    let unsigned = [
        (100.0, 0),
        (70.0, 0),
        (35.0, 1),
        (17.5, 2),
        (8.75, 3),
        (4.375, 4),
        (2.1875, 5),
        (1.09375, 6),
        (1.0, 6),
        (0.546875, 7),
        (0.5, 7),
        (0.2734375, 8),
        (0.2, 8),
        (0.0, 8),
    ];
    for (sigma, fl) in unsigned {
        assert_eq!(
            fl_from_std(sigma, Signedness::Unsigned),
            fl,
            "unsigned σ = {sigma}"
        );
    }
}

#[test]
fn t2_unbiased_std_matters() {
    let sigma = unbiased_std(&[1.0, 2.0, 3.0, 4.0]);
    assert!((sigma - 1.2909944).abs() < 1e-6, "{sigma}");
    assert_eq!(fl_from_std(sigma, Signedness::Signed), 4);
    // The biased σ (1.118034) would have given 5.
    assert_eq!(fl_from_std(1.118034, Signedness::Signed), 5);
}

#[test]
fn t10_running_fl() {
    let mut r = RunningFl::default();
    let want = [6.2, 6.38, 6.542, 6.6878, 6.81902];
    let eval = [6, 6, 7, 7, 7];
    for (w, e) in want.iter().zip(eval) {
        r.update(8);
        assert!((r.value - w).abs() < 1e-5, "{} vs {w}", r.value);
        assert_eq!(r.current(Signedness::Unsigned), e);
    }
}

#[test]
fn t13_gaussian_error_analysis() {
    let cases = [
        (Signedness::Signed, 0.5, 6, 0.00941),
        (Signedness::Signed, 1.0, 5, 0.00941),
        (Signedness::Signed, 2.0, 4, 0.00941),
        (Signedness::Signed, 5.0, 2, 0.01443),
        (Signedness::Signed, 0.1, 7, 0.02255),
        (Signedness::Unsigned, 0.5, 7, 0.00367),
        (Signedness::Unsigned, 1.0, 6, 0.00367),
        (Signedness::Unsigned, 5.0, 3, 0.00510),
        (Signedness::Unsigned, 0.1, 8, 0.00797),
    ];
    for (signedness, sigma, fl_star, err_star) in cases {
        let max = FlRange::Paper.max_fl(signedness);
        let errs: Vec<f64> = (0..=max)
            .map(|fl| gaussian_relative_error(sigma, Format { signedness, fl }))
            .collect();
        let best = (0..errs.len())
            .min_by(|&a, &b| errs[a].total_cmp(&errs[b]))
            .unwrap();
        assert_eq!(
            best as i32, fl_star,
            "{signedness:?} σ = {sigma}: errors {errs:?}"
        );
        assert!(
            (errs[best] - err_star).abs() < 5e-5,
            "{signedness:?} σ = {sigma}: {} vs {err_star}",
            errs[best]
        );
    }
    // The tie point σ·2^FL ≈ 39.22 (signed): just below it FL stays, just above it drops.
    let at = |sigma: f64, fl| {
        gaussian_relative_error(
            sigma,
            Format {
                signedness: Signedness::Signed,
                fl,
            },
        )
    };
    assert!(at(39.0 / 16.0, 4) < at(39.0 / 16.0, 3));
    assert!(at(39.5 / 16.0, 4) > at(39.5 / 16.0, 3));
}

#[test]
fn grid_search_picks_min_rmse() {
    let mut rng = Rng::new(7);
    let xs: Vec<f32> = (0..4000).map(|_| rng.f32() * 3.0).collect();
    let fl = fl_grid_search(&xs, Signedness::Signed, FlRange::Paper);
    // Values up to 3 need 2 integer bits: FL 5 covers ±3.97 at step 1/32.
    assert_eq!(fl, 5);
    let small: Vec<f32> = xs.iter().map(|x| x * 0.05).collect();
    assert_eq!(
        fl_grid_search(&small, Signedness::Signed, FlRange::Paper),
        7
    );
    // Values below half a step at every paper FL all round to 0: equal errors, and the first
    // minimum (FL 0) wins, as in F8Net's grid search. The wide range resolves them.
    let tiny: Vec<f32> = xs.iter().map(|x| x * 1e-3).collect();
    assert_eq!(fl_grid_search(&tiny, Signedness::Signed, FlRange::Paper), 0);
    assert!(fl_grid_search(&tiny, Signedness::Signed, FlRange::Wide) > 12);
}
