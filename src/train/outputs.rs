//! The files `f8net train` writes beside the checkpoint, from the run's numbers: `metrics.csv`
//! rows (kept to the epochs a checkpoint holds), `fl.csv` (epoch, layer, input FL, weight FL,
//! running input FL per conv unit and the classifier) and the plots `curves.png` (training loss;
//! train/test accuracy per epoch) and `fl.png` (the FLs as layers × epochs heat maps, like the
//! paper's FL visualisation).

use super::conv_bn::{InputQuant, Precision};
use super::net::{Net, Node};
use super::weight_format::WeightFormat;
use crate::error::Result;
use crate::fixed::Signedness;
use crate::io::write_atomic;
use crate::plot::{heat_maps_png, line_charts_png, HeatMap, LineChart, Series};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const METRICS_HEADER: &str = "epoch,step,lr,train_loss,train_accuracy,test_accuracy,seconds\n";
pub const FL_HEADER: &str = "epoch,layer,input_fl,weight_fl,running_input_fl\n";

/// The CSV rows of epochs 1..=`done` (a crash between writing a CSV and the checkpoint may have
/// left rows of an epoch the checkpoint does not hold).
pub fn keep_epochs(csv: &str, header: &str, done: u64) -> String {
    let rows = csv.lines().skip(1).filter(|l| {
        l.split(',')
            .next()
            .and_then(|e| e.parse::<u64>().ok())
            .is_some_and(|e| e <= done)
    });
    rows.fold(header.to_string(), |s, l| s + l + "\n")
}

/// The numeric columns of a CSV's rows (unparsable fields as NaN; text columns too).
pub fn columns(csv: &str) -> Vec<Vec<f64>> {
    let num = |f: &str| f.parse().unwrap_or(f64::NAN);
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(num).collect())
        .collect()
}

/// The lower median of per-channel FLs (the FL itself for a per-layer format).
fn median(fls: &[i32]) -> i32 {
    let mut v = fls.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

/// Input FL (the rounded running FL used at eval; 8 for the image), weight FL at eval (the
/// median over channels for a per-channel format) and the
/// running input FL of every conv unit and the classifier, as `fl.csv` rows of `epoch`.
pub fn fl_rows(net: &Net, epoch: u64) -> Result<String> {
    let mut s = String::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let (name, x, w, running) = match node {
            Node::Conv { unit, next, .. } => {
                let s_out = next.map_or(1.0, |j| net.node_scale(j));
                let u = unit.integer_eval(net.node_scale(i), s_out)?;
                let running = match unit.input {
                    InputQuant::Fixed => 8.0,
                    InputQuant::Quantized(_) => unit.running_fl.value,
                };
                (
                    unit.name.as_str(),
                    u.input.map_or(8, |f| f.fl),
                    median(&u.weight_fl),
                    running,
                )
            }
            Node::Classifier { fc, .. } => (
                "fc",
                fc.running_fl.current(Signedness::Unsigned),
                fc.weight_format(Precision::Fixed).fl,
                fc.running_fl.value,
            ),
            _ => continue,
        };
        s += &format!("{epoch},{name},{x},{w},{running:.4}\n");
    }
    Ok(s)
}

/// `curves.png` (from two epochs on) and, given the FL table and the weight format it was
/// written with, `fl.png`.
pub fn write_plots(out: &Path, metrics: &str, fls: Option<(&str, WeightFormat)>) -> Result<()> {
    let rows = columns(metrics);
    if rows.len() >= 2 {
        let series = |name: &str, col: usize| Series {
            name: name.into(),
            points: rows
                .iter()
                .map(|r| (r[0], *r.get(col).unwrap_or(&f64::NAN)))
                .collect(),
        };
        let chart = |title: &str, series, y_clamp| LineChart {
            title: title.into(),
            x_label: "epoch".into(),
            series,
            y_clamp,
            integer_x: true,
        };
        let charts = [
            chart("training loss", vec![series("train loss", 3)], None),
            chart(
                "accuracy",
                vec![series("train", 4), series("test", 5)],
                Some((0.0, 1.0)),
            ),
        ];
        write_atomic(
            &out.join("curves.png"),
            &line_charts_png(&charts, 480, 320)?,
        )?;
    }
    let Some((fls, format)) = fls else {
        return Ok(());
    };
    // layer → epoch → (input FL, weight FL), layers in first-seen order.
    let mut order: Vec<String> = Vec::new();
    let mut cells: HashMap<String, BTreeMap<u64, (i32, i32)>> = HashMap::new();
    for l in fls.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        if let [e, name, x, w, ..] = f[..] {
            if let (Ok(e), Ok(x), Ok(w)) = (e.parse(), x.parse(), w.parse()) {
                if !cells.contains_key(name) {
                    order.push(name.to_string());
                }
                cells.entry(name.to_string()).or_default().insert(e, (x, w));
            }
        }
    }
    let last = cells
        .values()
        .filter_map(|m| m.keys().last())
        .max()
        .copied()
        .unwrap_or(0);
    let map = |title: &str, pick: fn((i32, i32)) -> i32| HeatMap {
        title: title.into(),
        row_labels: order.clone(),
        column_labels: (1..=last).map(|e| e.to_string()).collect(),
        x_label: "epoch".into(),
        values: order
            .iter()
            .map(|n| {
                (1..=last)
                    .map(|e| cells[n].get(&e).map(|v| pick(*v)))
                    .collect()
            })
            .collect(),
    };
    let maps = [
        map("input FL (running, rounded)", |v| v.0),
        map(
            match format {
                WeightFormat::PerLayer => "weight FL (folded, at eval)",
                WeightFormat::PerChannel => "weight FL (channel median)",
            },
            |v| v.1,
        ),
    ];
    write_atomic(&out.join("fl.png"), &heat_maps_png(&maps)?)
}
