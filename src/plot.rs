//! PNG charts without a plotting crate (the `image` crate's PNG encoder): line charts (axes, grid
//! lines, tick labels, polylines with point markers, a legend) and heat-map grids (rows ×
//! columns of small integers, colour = value, the value printed in cells wide enough, with a
//! colour key), labelled with an embedded 5×7 bitmap font (digits, letters — lower case drawn
//! as upper case — and `. - % : / _ ( ) , = +`). `f8net train` draws `curves.png` and `fl.png`
//! with them. Images are RGB8, origin top-left, x right, y down; panels are laid side by side.

use crate::error::{Error, Result};
use image::{Rgb, RgbImage};

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
const AXIS: Rgb<u8> = Rgb([60, 60, 60]);
/// Series colours, in order.
pub const PALETTE: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

/// Glyph rows, bit 4 = leftmost of 5 columns.
#[rustfmt::skip]
const FONT: [(char, [u8; 7]); 48] = [
    ('0', [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110]),
    ('1', [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110]),
    ('2', [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111]),
    ('3', [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110]),
    ('4', [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010]),
    ('5', [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110]),
    ('6', [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110]),
    ('7', [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000]),
    ('8', [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110]),
    ('9', [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100]),
    ('A', [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001]),
    ('B', [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110]),
    ('C', [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110]),
    ('D', [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100]),
    ('E', [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111]),
    ('F', [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000]),
    ('G', [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111]),
    ('H', [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001]),
    ('I', [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110]),
    ('J', [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100]),
    ('K', [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001]),
    ('L', [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111]),
    ('M', [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001]),
    ('N', [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001]),
    ('O', [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110]),
    ('P', [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000]),
    ('Q', [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101]),
    ('R', [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001]),
    ('S', [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110]),
    ('T', [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100]),
    ('U', [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110]),
    ('V', [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100]),
    ('W', [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010]),
    ('X', [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001]),
    ('Y', [0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100]),
    ('Z', [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111]),
    ('.', [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100]),
    ('-', [0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000]),
    ('%', [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011]),
    (':', [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000]),
    ('/', [0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000]),
    ('_', [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111]),
    ('(', [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010]),
    (')', [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000]),
    (',', [0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000]),
    ('=', [0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000]),
    ('+', [0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000]),
    (' ', [0; 7]),
];

/// Advance per character (5 columns and a gap) and line height, at scale 1.
const CHAR_W: i64 = 6;
const CHAR_H: i64 = 9;

/// A white RGB image with drawing primitives; everything outside the image is clipped.
pub struct Canvas {
    pub img: RgbImage,
}

impl Canvas {
    pub fn new(w: u32, h: u32) -> Canvas {
        Canvas {
            img: RgbImage::from_pixel(w.max(1), h.max(1), WHITE),
        }
    }

    fn put(&mut self, x: i64, y: i64, c: Rgb<u8>) {
        if x >= 0 && y >= 0 && x < self.img.width() as i64 && y < self.img.height() as i64 {
            self.img.put_pixel(x as u32, y as u32, c);
        }
    }

    /// Filled rectangle.
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb<u8>) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, c);
            }
        }
    }

    /// A line `width` pixels thick (Bresenham, a square brush).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb<u8>, width: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = ((x1 - x0).signum(), (y1 - y0).signum());
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.rect(x - (width - 1) / 2, y - (width - 1) / 2, width, width, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text with its top-left corner at (x, y); unknown characters draw as a hollow box.
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb<u8>, scale: i64) {
        for (i, ch) in s.chars().enumerate() {
            let up = ch.to_ascii_uppercase();
            let rows = FONT
                .iter()
                .find(|(g, _)| *g == up)
                .map_or([31, 17, 17, 17, 17, 17, 31], |(_, r)| *r);
            let x0 = x + i as i64 * CHAR_W * scale;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        self.rect(x0 + col * scale, y + r as i64 * scale, scale, scale, c);
                    }
                }
            }
        }
    }

    /// Width in pixels of `s` at `scale`.
    pub fn text_width(s: &str, scale: i64) -> i64 {
        (s.chars().count() as i64 * CHAR_W - 1).max(0) * scale
    }

    /// The image as PNG bytes.
    pub fn png(&self) -> Result<Vec<u8>> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.img
            .write_to(&mut out, image::ImageFormat::Png)
            .map_err(|e| Error::range("plot", format!("PNG encoding failed: {e}")))?;
        Ok(out.into_inner())
    }
}

/// A rectangle: left, top, width, height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

/// A named line of (x, y) points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart: every series in one plot, coloured by `PALETTE` in order.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub series: Vec<Series>,
    /// Keep the y axis inside these bounds (e.g. 0..1 for accuracies).
    pub y_clamp: Option<(f64, f64)>,
    /// x ticks at integers only (epochs).
    pub integer_x: bool,
}

/// About `n` round tick values (1, 2 or 5 × 10^k apart) covering `lo..=hi`, and the decimals
/// their labels need.
pub fn ticks(lo: f64, hi: f64, n: usize) -> (Vec<f64>, usize) {
    let span = (hi - lo).abs().max(1e-12);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    ((first..=last).map(|k| k as f64 * step).collect(), decimals)
}

/// The data range of a chart's points, padded by 5 % (a flat range is widened).
fn y_range(chart: &LineChart) -> (f64, f64) {
    let ys = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1));
    let (mut lo, mut hi) = ys
        .filter(|y| y.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.1
    };
    (lo, hi) = (lo - pad, hi + pad);
    if let Some((a, b)) = chart.y_clamp {
        (lo, hi) = (lo.max(a), hi.min(b));
    }
    (lo, hi)
}

/// Draw `chart` into `area` of `c`: title and legend above the plot, y tick labels left of it,
/// x tick labels and the x label below.
pub fn draw_line_chart(c: &mut Canvas, area: Rect, chart: &LineChart) {
    let plot = Rect {
        x: area.x + 56,
        y: area.y + 2 * CHAR_H + 14,
        w: area.w - 56 - 12,
        h: area.h - 2 * CHAR_H - 14 - 2 * CHAR_H - 10,
    };
    if plot.w < 10 || plot.h < 10 {
        return;
    }
    c.text(area.x + 4, area.y + 4, &chart.title, BLACK, 1);
    // Legend: a colour swatch and the series name, in one row under the title.
    let mut lx = area.x + 4;
    for (i, s) in chart.series.iter().enumerate() {
        let col = Rgb(PALETTE[i % PALETTE.len()]);
        c.rect(lx, area.y + CHAR_H + 8, 10, 7, col);
        c.text(lx + 14, area.y + CHAR_H + 8, &s.name, BLACK, 1);
        lx += 14 + Canvas::text_width(&s.name, 1) + 14;
    }
    let xs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0));
    let (mut x_lo, mut x_hi) = xs
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    if x_lo > x_hi {
        (x_lo, x_hi) = (0.0, 1.0);
    }
    if x_hi == x_lo {
        (x_lo, x_hi) = (x_lo - 1.0, x_hi + 1.0);
    }
    let (y_lo, y_hi) = y_range(chart);
    let px = |x: f64| plot.x + ((x - x_lo) / (x_hi - x_lo) * (plot.w - 1) as f64).round() as i64;
    let py = |y: f64| {
        let t = ((y - y_lo) / (y_hi - y_lo)).clamp(-0.02, 1.02);
        plot.y + plot.h - 1 - (t * (plot.h - 1) as f64).round() as i64
    };
    let (yt, yd) = ticks(y_lo, y_hi, 5);
    for y in yt {
        let v = py(y);
        c.line((plot.x, v), (plot.x + plot.w - 1, v), GRID, 1);
        let label = format!("{y:.yd$}");
        c.text(
            plot.x - 6 - Canvas::text_width(&label, 1),
            v - 3,
            &label,
            AXIS,
            1,
        );
    }
    let (mut xt, mut xd) = ticks(x_lo, x_hi, 8);
    if chart.integer_x {
        xt.retain(|x| x.fract() == 0.0);
        xd = 0;
    }
    for x in xt {
        let h = px(x);
        c.line((h, plot.y), (h, plot.y + plot.h - 1), GRID, 1);
        let label = format!("{x:.xd$}");
        c.text(
            h - Canvas::text_width(&label, 1) / 2,
            plot.y + plot.h + 5,
            &label,
            AXIS,
            1,
        );
    }
    c.line((plot.x, plot.y), (plot.x, plot.y + plot.h - 1), AXIS, 1);
    let bottom = plot.y + plot.h - 1;
    c.line((plot.x, bottom), (plot.x + plot.w - 1, bottom), AXIS, 1);
    let label_x = plot.x + (plot.w - Canvas::text_width(&chart.x_label, 1)) / 2;
    c.text(
        label_x,
        plot.y + plot.h + 5 + CHAR_H + 2,
        &chart.x_label,
        AXIS,
        1,
    );
    for (i, s) in chart.series.iter().enumerate() {
        let col = Rgb(PALETTE[i % PALETTE.len()]);
        let pts: Vec<(i64, i64)> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| (px(x), py(y)))
            .collect();
        for w in pts.windows(2) {
            c.line(w[0], w[1], col, 2);
        }
        for &(x, y) in &pts {
            c.rect(x - 2, y - 2, 5, 5, col);
        }
    }
}

/// Line charts side by side, each `panel_w` × `panel_h`, as PNG bytes.
pub fn line_charts_png(charts: &[LineChart], panel_w: u32, panel_h: u32) -> Result<Vec<u8>> {
    let mut c = Canvas::new(panel_w * charts.len().max(1) as u32, panel_h);
    for (i, chart) in charts.iter().enumerate() {
        let area = Rect {
            x: i as i64 * panel_w as i64,
            y: 0,
            w: panel_w as i64,
            h: panel_h as i64,
        };
        draw_line_chart(&mut c, area, chart);
    }
    c.png()
}

/// A grid of small integers: `values[row][column]` (None: no value, drawn blank).
#[derive(Clone, Debug, PartialEq)]
pub struct HeatMap {
    pub title: String,
    pub row_labels: Vec<String>,
    /// A label per column (shown where they fit).
    pub column_labels: Vec<String>,
    pub x_label: String,
    pub values: Vec<Vec<Option<i32>>>,
}

/// Viridis-like colour of `t` in 0..=1.
pub fn colour(t: f64) -> Rgb<u8> {
    const STOPS: [[f64; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let mix = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    Rgb([mix(0), mix(1), mix(2)])
}

fn value_colour(v: i32, (lo, hi): (i32, i32)) -> Rgb<u8> {
    colour(if hi > lo {
        (v - lo) as f64 / (hi - lo) as f64
    } else {
        0.5
    })
}

/// Heat maps side by side sharing one colour scale, with the colour key at the right, as PNG.
pub fn heat_maps_png(maps: &[HeatMap]) -> Result<Vec<u8>> {
    let all = maps
        .iter()
        .flat_map(|m| m.values.iter().flatten().flatten().copied());
    let range = all.fold((i32::MAX, i32::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let range = if range.0 > range.1 { (0, 0) } else { range };
    let cols = maps
        .iter()
        .flat_map(|m| m.values.iter().map(Vec::len))
        .max()
        .unwrap_or(0)
        .max(1) as i64;
    let rows = maps
        .iter()
        .map(|m| m.values.len())
        .max()
        .unwrap_or(0)
        .max(1) as i64;
    let cell_w = (480 / cols).clamp(2, 24);
    let cell_h = 12;
    let label_w = maps
        .iter()
        .flat_map(|m| m.row_labels.iter())
        .map(|l| Canvas::text_width(l, 1))
        .max()
        .unwrap_or(0)
        + 8;
    let top = 2 * CHAR_H + 8;
    let title_w = maps
        .iter()
        .map(|m| Canvas::text_width(&m.title, 1))
        .max()
        .unwrap_or(0);
    let panel_w = (label_w + cols * cell_w + 24).max(title_w + 16);
    let key_w = 70;
    let height = top + rows * cell_h + 2 * CHAR_H + 16;
    let mut c = Canvas::new(
        (panel_w * maps.len().max(1) as i64 + key_w) as u32,
        height.max(top + (range.1 - range.0 + 1) as i64 * cell_h + 30) as u32,
    );
    for (p, m) in maps.iter().enumerate() {
        let x0 = p as i64 * panel_w;
        c.text(x0 + 4, 4, &m.title, BLACK, 1);
        let gx = x0 + label_w;
        for (r, row) in m.values.iter().enumerate() {
            let y = top + r as i64 * cell_h;
            if let Some(l) = m.row_labels.get(r) {
                c.text(gx - 4 - Canvas::text_width(l, 1), y + 2, l, AXIS, 1);
            }
            for (k, v) in row.iter().enumerate() {
                let x = gx + k as i64 * cell_w;
                let Some(v) = v else { continue };
                let col = value_colour(*v, range);
                c.rect(x, y, cell_w - 1, cell_h - 1, col);
                let digits = v.to_string();
                if cell_w >= Canvas::text_width(&digits, 1) + 3 {
                    let luma = 0.3 * col[0] as f64 + 0.59 * col[1] as f64 + 0.11 * col[2] as f64;
                    let ink = if luma > 128.0 { BLACK } else { WHITE };
                    let tx = x + (cell_w - 1 - Canvas::text_width(&digits, 1)) / 2;
                    c.text(tx, y + 2, &digits, ink, 1);
                }
            }
        }
        // Column labels where they fit without overlapping.
        let y = top + m.values.len() as i64 * cell_h + 4;
        let mut free = i64::MIN;
        for (k, l) in m.column_labels.iter().enumerate() {
            let x = gx + k as i64 * cell_w + (cell_w - Canvas::text_width(l, 1)) / 2;
            if x >= free {
                c.text(x, y, l, AXIS, 1);
                free = x + Canvas::text_width(l, 1) + 6;
            }
        }
        c.text(gx, y + CHAR_H + 2, &m.x_label, AXIS, 1);
    }
    // Colour key: one swatch per value.
    let kx = panel_w * maps.len() as i64 + 8;
    c.text(kx, 4, "KEY", BLACK, 1);
    for (i, v) in (range.0..=range.1).rev().enumerate() {
        let y = top + i as i64 * cell_h;
        c.rect(kx, y, 16, cell_h - 1, value_colour(v, range));
        c.text(kx + 22, y + 2, &v.to_string(), AXIS, 1);
    }
    c.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (t, d) = ticks(0.12, 0.87, 5);
        assert_eq!(d, 1);
        let shown: Vec<String> = t.iter().map(|v| format!("{v:.1}")).collect();
        assert_eq!(shown, ["0.2", "0.4", "0.6", "0.8"]);
        let (t, d) = ticks(1.0, 10.0, 8);
        assert_eq!((t.first(), t.last(), d), (Some(&2.0), Some(&10.0), 0));
    }

    #[test]
    fn every_glyph_fits_five_columns() {
        assert!(FONT.iter().all(|(_, rows)| rows.iter().all(|r| *r < 32)));
        let chars: std::collections::HashSet<char> = FONT.iter().map(|(c, _)| *c).collect();
        assert_eq!(chars.len(), FONT.len(), "duplicate glyph");
    }
}
