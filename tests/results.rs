//! The shipped Fashion-MNIST integer models (`assets/models/*_fmnist.f8.safetensors`) reproduce
//! the accuracies `docs/RESULTS.md` prints, exactly (the integer model is deterministic): on the
//! committed 200-image subset always, and on the full 10,000-image test set when the Debian
//! package `dataset-fashion-mnist` is installed (`.ci/run` installs it). The CPU reference runs
//! the models, two threads over halves of the set.

use f8net::data::{self, Dataset, Source, Split, SUBSET_DIR};
use f8net::model::{file, int::IntModel};
use f8net::train::eval::{accuracy, int_predictions, Score};
use std::path::Path;

const RESULTS: &str = include_str!("../docs/RESULTS.md");

/// The shipped models, as named in the RESULTS.md table.
const SHIPPED: [&str; 2] = [
    "assets/models/resnet20_w0.5_fmnist.f8.safetensors",
    "assets/models/mobilenet_v2_w0.5_fmnist.f8.safetensors",
];

/// Which accuracy column of the "Shipped models" table.
#[derive(Clone, Copy, Debug)]
enum Column {
    Full,
    Subset,
}

/// The documented `accuracy (right/total)` of `model` in `column`.
fn documented(model: &str, column: Column) -> String {
    let row = RESULTS
        .lines()
        .find(|l| l.starts_with('|') && l.contains(&format!("`{model}`")))
        .unwrap_or_else(|| panic!("docs/RESULTS.md has no row for {model}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let k = match column {
        Column::Full => 3,
        Column::Subset => 4,
    };
    cells[k].to_string()
}

/// Accuracy of `model` on `test`, the CPU reference in two threads.
fn score(model: &IntModel, test: &Dataset) -> Score {
    let half = test.len() / 2;
    let parts: Vec<Dataset> = [0..half, half..test.len()]
        .into_iter()
        .map(|r| test.subset(&r.collect::<Vec<_>>()).unwrap())
        .collect();
    let preds: Vec<Vec<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .map(|p| s.spawn(move || int_predictions(model, None, p).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    accuracy(&preds.concat(), &test.labels)
}

#[test]
fn shipped_models_reproduce_the_results_table() {
    let subset = data::load_idx(SUBSET_DIR, Split::Test).unwrap();
    let full = match data::fashion_mnist_dir(Split::Test).unwrap() {
        (dir, Source::Debian) => Some(data::load_idx(dir, Split::Test).unwrap()),
        _ => {
            println!("skipped the full-test-set check: the Debian package is not installed");
            None
        }
    };
    for name in SHIPPED {
        let model = file::load(Path::new(name)).unwrap();
        let got = score(&model, &subset).to_string();
        assert_eq!(
            got,
            documented(name, Column::Subset),
            "{name} on the subset"
        );
        if let Some(full) = &full {
            let got = score(&model, full).to_string();
            assert_eq!(
                got,
                documented(name, Column::Full),
                "{name} on the full test set"
            );
        }
    }
}
