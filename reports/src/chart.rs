//! Hand-written SVG line charts for `report.html`: a title, a legend, axes with tick labels,
//! optional shaded bands (fault windows) and line series with gaps. No dependency and no
//! fonts to embed: the browser draws the text, so the file stays small and works offline.
//!
//! A [`Chart`] is plain data; [`Chart::render`] maps it onto a fixed 960-wide view box
//! (scaled by CSS), picks "nice" ticks (1-2-5 steps, or decades on a log scale) and writes
//! the `<svg>` element. Every label is escaped. A chart without a single value says "no data".

use std::fmt::Write as _;

use crate::text::{self, markup};

/// Width of a full-width chart's canvas; small multiples use less, so their text reads larger.
pub(crate) const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const BOTTOM: f64 = 46.0;
const LEGEND_TOP: f64 = 44.0;
const LEGEND_ROW: f64 = 18.0;
const FONT: &str = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif";
const AXIS: &str = "#57606a";
const GRID: &str = "#e6e8eb";
const BAND_FILL: &str = "#f59e0b";
const BAND_TEXT: &str = "#9a3412";

/// How values map onto the y axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    Linear,
    /// Base 10; values at or below the lowest decade are drawn on the axis floor.
    Log,
}

/// One line on a chart.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Shown as a tooltip on the line.
    pub label: String,
    pub color: &'static str,
    /// SVG `stroke-dasharray`, e.g. "2 3"; solid when `None`.
    pub dash: Option<&'static str>,
    pub width: f64,
    /// Shade the area between the line and the x axis.
    pub fill: bool,
    /// `(x, y)`; a `None` y breaks the line (no data in that interval).
    pub points: Vec<(f64, Option<f64>)>,
}

/// A shaded x range, e.g. a fault window.
#[derive(Debug, Clone)]
pub(crate) struct Band {
    pub start: f64,
    pub end: f64,
    /// Drawn at the top of the band.
    pub label: String,
    /// Shown as a tooltip.
    pub detail: String,
}

/// What a legend entry looks like.
#[derive(Debug, Clone)]
pub(crate) enum Swatch {
    Line {
        color: &'static str,
        dash: Option<&'static str>,
        width: f64,
    },
    Band,
}

#[derive(Debug, Clone)]
pub(crate) struct LegendEntry {
    pub label: String,
    pub swatch: Swatch,
}

/// A line chart over time.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// Unique within the page; prefixes element ids.
    pub id: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// The x axis spans `0..=x_max`.
    pub x_max: f64,
    pub scale: Scale,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    pub legend: Vec<LegendEntry>,
    /// Width of the canvas (its text keeps its size: a narrower chart shows it larger).
    pub width: f64,
}

impl Chart {
    /// The chart as one `<svg>` element.
    pub(crate) fn render(&self) -> String {
        let legend = layout_legend(&self.legend, self.width);
        let rows = legend.last().map_or(0, |entry| entry.row + 1);
        let top = LEGEND_TOP + rows as f64 * LEGEND_ROW + 8.0;
        let frame = Frame {
            left: LEFT,
            right: self.width - RIGHT,
            top,
            bottom: HEIGHT - BOTTOM,
            x_max: if self.x_max.is_finite() && self.x_max > 0.0 {
                self.x_max
            } else {
                1.0
            },
            y: YAxis::fit(self.scale, self.values()),
        };

        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{id}" viewBox="0 0 {width} {HEIGHT}" role="img" aria-labelledby="{id}-title" font-family="{FONT}" font-size="12">"#,
            id = markup(&self.id),
            width = self.width,
        );
        let _ = write!(
            svg,
            r#"<title id="{}-title">{}</title>"#,
            markup(&self.id),
            markup(&self.title)
        );
        let _ = write!(
            svg,
            r##"<rect x="0" y="0" width="{}" height="{HEIGHT}" fill="#ffffff"/>"##,
            self.width
        );
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="24" font-size="15" font-weight="600" fill="#1f2328">{}</text>"##,
            markup(&self.title)
        );
        render_legend(&mut svg, &legend);

        match &frame.y {
            Some(y) => {
                frame.grid(&mut svg, y);
                frame.bands(&mut svg, &self.bands);
                for series in &self.series {
                    frame.series(&mut svg, y, series);
                }
            }
            None => {
                frame.bands(&mut svg, &self.bands);
                let _ = write!(
                    svg,
                    r##"<text class="no-data" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="16" fill="{AXIS}">no data</text>"##,
                    (frame.left + frame.right) / 2.0,
                    (frame.top + frame.bottom) / 2.0
                );
            }
        }
        frame.axes(&mut svg, &self.x_label, &self.y_label);
        svg.push_str("</svg>");
        svg
    }

    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|&(_, y)| y))
            .filter(|y| y.is_finite())
    }
}

/// The y axis after fitting it to the data.
#[derive(Debug, Clone)]
struct YAxis {
    scale: Scale,
    min: f64,
    max: f64,
    ticks: Vec<f64>,
}

impl YAxis {
    /// `None` when there is no value to show.
    fn fit(scale: Scale, values: impl Iterator<Item = f64>) -> Option<Self> {
        let values: Vec<f64> = values.collect();
        if values.is_empty() {
            return None;
        }
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        let min_positive = values
            .iter()
            .copied()
            .filter(|&v| v > 0.0)
            .fold(f64::MAX, f64::min);
        if scale == Scale::Log && min_positive < f64::MAX {
            let low = min_positive.log10().floor() as i32;
            let mut high = max.log10().ceil() as i32;
            if high <= low {
                high = low + 1;
            }
            let per_decade: &[f64] = if high - low <= 3 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            let ticks = (low..=high)
                .flat_map(|e| per_decade.iter().map(move |m| m * 10f64.powi(e)))
                .filter(|&v| v <= 10f64.powi(high) * 1.0001)
                .collect();
            return Some(Self {
                scale: Scale::Log,
                min: 10f64.powi(low),
                max: 10f64.powi(high),
                ticks,
            });
        }
        let max = if max > 0.0 { max } else { 1.0 };
        let step = nice_step(max / 5.0);
        let top = (max / step).ceil() * step;
        let ticks = (0..)
            .map(|i| f64::from(i) * step)
            .take_while(|&v| v <= top * 1.0001)
            .collect();
        Some(Self {
            scale: Scale::Linear,
            min: 0.0,
            max: top,
            ticks,
        })
    }

    /// Where `value` sits between the bottom (0.0) and the top (1.0) of the axis.
    fn position(&self, value: f64) -> f64 {
        let position = match self.scale {
            Scale::Linear => (value - self.min) / (self.max - self.min),
            Scale::Log => {
                let value = value.max(self.min);
                (value.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
            }
        };
        position.clamp(0.0, 1.0)
    }
}

/// The plotting area and the x scale.
#[derive(Debug)]
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x_max: f64,
    y: Option<YAxis>,
}

impl Frame {
    fn x(&self, value: f64) -> f64 {
        let value = value.clamp(0.0, self.x_max);
        self.left + value / self.x_max * (self.right - self.left)
    }

    fn y(&self, axis: &YAxis, value: f64) -> f64 {
        self.bottom - axis.position(value) * (self.bottom - self.top)
    }

    fn grid(&self, svg: &mut String, axis: &YAxis) {
        for &tick in &axis.ticks {
            let y = self.y(axis, tick);
            let _ = write!(
                svg,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{GRID}" stroke-width="1"/>"#,
                self.left, self.right
            );
            let _ = write!(
                svg,
                r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end" fill="{AXIS}">{}</text>"#,
                self.left - 6.0,
                y + 4.0,
                markup(&text::number(tick))
            );
        }
    }

    fn axes(&self, svg: &mut String, x_label: &str, y_label: &str) {
        let step = nice_step(self.x_max / 8.0);
        let mut i = 0u32;
        loop {
            let t = f64::from(i) * step;
            if t > self.x_max * 1.0001 {
                break;
            }
            let x = self.x(t);
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{AXIS}" stroke-width="1"/>"#,
                self.bottom,
                self.bottom + 5.0
            );
            let _ = write!(
                svg,
                r#"<text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle" fill="{AXIS}">{}s</text>"#,
                self.bottom + 18.0,
                markup(&text::number(t))
            );
            i += 1;
        }
        let _ = write!(
            svg,
            r#"<path d="M{l:.1} {t:.1} V{b:.1} H{r:.1}" fill="none" stroke="{AXIS}" stroke-width="1"/>"#,
            l = self.left,
            t = self.top,
            b = self.bottom,
            r = self.right
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{AXIS}">{}</text>"#,
            (self.left + self.right) / 2.0,
            HEIGHT - 8.0,
            markup(x_label)
        );
        let middle = (self.top + self.bottom) / 2.0;
        let _ = write!(
            svg,
            r#"<text x="18" y="{middle:.1}" text-anchor="middle" fill="{AXIS}" transform="rotate(-90 18 {middle:.1})">{}</text>"#,
            markup(y_label)
        );
    }

    fn bands(&self, svg: &mut String, bands: &[Band]) {
        for band in bands {
            let (start, end) = if band.start <= band.end {
                (band.start, band.end)
            } else {
                (band.end, band.start)
            };
            let x1 = self.x(start);
            let width = (self.x(end) - x1).max(2.0);
            let _ = write!(
                svg,
                r#"<rect class="fault" x="{x1:.1}" y="{:.1}" width="{width:.1}" height="{:.1}" fill="{BAND_FILL}" fill-opacity="0.18"><title>{}</title></rect>"#,
                self.top,
                self.bottom - self.top,
                markup(&band.detail)
            );
            let _ = write!(
                svg,
                r#"<text class="fault-label" x="{:.1}" y="{:.1}" font-size="11" font-weight="600" fill="{BAND_TEXT}">{}</text>"#,
                x1 + 4.0,
                self.top + 14.0,
                markup(&band.label)
            );
        }
    }

    fn series(&self, svg: &mut String, axis: &YAxis, series: &Series) {
        // Split at gaps so a missing interval is not drawn as a straight line across it.
        let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut current = Vec::new();
        for &(x, y) in &series.points {
            match y {
                Some(y) if y.is_finite() && x.is_finite() => {
                    current.push((self.x(x), self.y(axis, y)));
                }
                _ => {
                    if !current.is_empty() {
                        segments.push(std::mem::take(&mut current));
                    }
                }
            }
        }
        if !current.is_empty() {
            segments.push(current);
        }
        if segments.is_empty() {
            return;
        }

        if series.fill {
            let mut area = String::new();
            for segment in segments.iter().filter(|s| s.len() > 1) {
                let (first, last) = (segment[0], segment[segment.len() - 1]);
                let _ = write!(area, "M{:.1} {:.1}", first.0, self.bottom);
                for (x, y) in segment {
                    let _ = write!(area, "L{x:.1} {y:.1}");
                }
                let _ = write!(area, "L{:.1} {:.1}Z", last.0, self.bottom);
            }
            if !area.is_empty() {
                let _ = write!(
                    svg,
                    r#"<path d="{area}" fill="{}" fill-opacity="0.12" stroke="none"/>"#,
                    series.color
                );
            }
        }

        let mut path = String::new();
        for segment in &segments {
            for (i, (x, y)) in segment.iter().enumerate() {
                let _ = write!(path, "{}{x:.1} {y:.1}", if i == 0 { 'M' } else { 'L' });
            }
            if segment.len() == 1 {
                // A lone point: a tiny stroke with round caps draws it as a dot.
                path.push_str("h0.1");
            }
        }
        let dash = series
            .dash
            .map(|d| format!(r#" stroke-dasharray="{d}""#))
            .unwrap_or_default();
        let _ = write!(
            svg,
            r#"<path class="series" d="{path}" fill="none" stroke="{}" stroke-width="{}"{dash} stroke-linecap="round" stroke-linejoin="round"><title>{}</title></path>"#,
            series.color,
            series.width,
            markup(&series.label)
        );
        // A lone point (a transaction that ran in one interval only) also gets a marker, so it
        // reads as data rather than a speck.
        for segment in segments.iter().filter(|s| s.len() == 1) {
            let (x, y) = segment[0];
            let _ = write!(
                svg,
                r#"<circle class="point" cx="{x:.1}" cy="{y:.1}" r="{:.1}" fill="{}"><title>{}</title></circle>"#,
                (series.width * 1.6).max(3.0),
                series.color,
                markup(&series.label)
            );
        }
    }
}

#[derive(Debug)]
struct PlacedEntry<'a> {
    entry: &'a LegendEntry,
    row: usize,
    x: f64,
}

/// Flows legend entries left to right, wrapping to a new row when the width runs out.
fn layout_legend(entries: &[LegendEntry], chart_width: f64) -> Vec<PlacedEntry<'_>> {
    let mut placed = Vec::with_capacity(entries.len());
    let (mut row, mut x) = (0, LEFT);
    for entry in entries {
        // No font metrics at hand: 7 px per character is generous for 12 px sans-serif.
        let width = 30.0 + entry.label.chars().count() as f64 * 7.0 + 18.0;
        if x + width > chart_width - RIGHT && x > LEFT {
            row += 1;
            x = LEFT;
        }
        placed.push(PlacedEntry { entry, row, x });
        x += width;
    }
    placed
}

fn render_legend(svg: &mut String, placed: &[PlacedEntry<'_>]) {
    for PlacedEntry { entry, row, x } in placed {
        let y = LEGEND_TOP + *row as f64 * LEGEND_ROW;
        match &entry.swatch {
            Swatch::Line { color, dash, width } => {
                let dash = dash
                    .map(|d| format!(r#" stroke-dasharray="{d}""#))
                    .unwrap_or_default();
                let _ = write!(
                    svg,
                    r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="{width}"{dash}/>"#,
                    x + 24.0
                );
            }
            Swatch::Band => {
                let _ = write!(
                    svg,
                    r#"<rect x="{x:.1}" y="{:.1}" width="24" height="12" fill="{BAND_FILL}" fill-opacity="0.35"/>"#,
                    y - 6.0
                );
            }
        }
        let _ = write!(
            svg,
            r##"<text class="legend" x="{:.1}" y="{:.1}" fill="#1f2328">{}</text>"##,
            x + 30.0,
            y + 4.0,
            markup(&entry.label)
        );
    }
}

/// The 1-2-5 step at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let residual = raw / magnitude;
    let nice = if residual <= 1.0 {
        1.0
    } else if residual <= 2.0 {
        2.0
    } else if residual <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Two runs' values side by side as horizontal bars, one pair per label (e.g. "hold p99"),
/// on one linear axis from 0: A in grey, B in blue, each bar labelled with its value.
pub(crate) fn paired_bars(
    id: &str,
    title: &str,
    unit: &str,
    pairs: &[(String, Option<f64>, Option<f64>)],
) -> String {
    const ROW: f64 = 34.0;
    const LABEL: f64 = 150.0;
    const TOP: f64 = 58.0;
    let height = TOP + ROW * pairs.len().max(1) as f64 + 16.0;
    let max = pairs
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let span = if max > 0.0 { max * 1.15 } else { 1.0 };
    let plot = WIDTH - LABEL - RIGHT - 60.0;
    let x = |v: f64| LABEL + v.max(0.0) / span * plot;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{id}" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{id}-title" font-family="{FONT}" font-size="12">"#,
        id = markup(id)
    );
    let _ = write!(
        svg,
        r##"<title id="{id}-title">{t}</title><rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/><text x="{LEFT}" y="24" font-size="15" font-weight="600" fill="#1f2328">{t}</text>"##,
        id = markup(id),
        t = markup(title)
    );
    for (i, (name, colour)) in [("A (baseline)", "#9aa4ae"), ("B (current)", "#0072B2")]
        .iter()
        .enumerate()
    {
        let lx = LABEL + i as f64 * 140.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="34" width="12" height="12" fill="{colour}"/><text x="{tx}" y="44.5" fill="{AXIS}">{name}</text>"#,
            tx = lx + 18.0
        );
    }
    for (i, (label, a, b)) in pairs.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        let _ = write!(
            svg,
            r##"<text x="{lx:.1}" y="{ty:.1}" text-anchor="end" fill="#1f2328">{label}</text><line x1="{LABEL}" y1="{y0:.1}" x2="{LABEL}" y2="{y1:.1}" stroke="{GRID}"/>"##,
            lx = LABEL - 8.0,
            ty = y + ROW / 2.0 + 4.0,
            label = markup(label),
            y0 = y + 2.0,
            y1 = y + ROW - 2.0
        );
        for (j, (value, colour)) in [(a, "#9aa4ae"), (b, "#0072B2")].into_iter().enumerate() {
            let by = y + 4.0 + j as f64 * 13.0;
            match value.filter(|v| v.is_finite()) {
                Some(v) => {
                    let _ = write!(
                        svg,
                        r#"<rect x="{LABEL}" y="{by:.1}" width="{w:.1}" height="11" fill="{colour}"/><text x="{tx:.1}" y="{ty:.1}" font-size="11" fill="{AXIS}">{v} {unit}</text>"#,
                        w = (x(v) - LABEL).max(1.0),
                        tx = x(v) + 4.0,
                        ty = by + 9.5,
                        v = markup(&text::ms(v)),
                        unit = markup(unit)
                    );
                }
                None => {
                    let _ = write!(
                        svg,
                        r#"<text x="{tx:.1}" y="{ty:.1}" font-size="11" fill="{AXIS}">—</text>"#,
                        tx = LABEL + 4.0,
                        ty = by + 9.5
                    );
                }
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A small trend line (no axes) of `values` in order, `None` a gap, the last point marked:
/// for the runs index.
pub(crate) fn sparkline(values: &[Option<f64>], colour: &str, label: &str) -> String {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let known: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="spark" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        markup(label)
    );
    if known.is_empty() {
        svg.push_str("</svg>");
        return svg;
    }
    let (lo, hi) = known
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let range = if hi > lo { hi - lo } else { 1.0 };
    let n = values.len().max(2) - 1;
    let point = |i: usize, v: f64| {
        let x = 3.0 + i as f64 / n as f64 * (W - 6.0);
        let y = if hi > lo {
            H - 3.0 - (v - lo) / range * (H - 6.0)
        } else {
            H / 2.0
        };
        (x, y)
    };
    let mut path = String::new();
    let mut pen_down = false;
    for (i, v) in values.iter().enumerate() {
        match v.filter(|v| v.is_finite()) {
            Some(v) => {
                let (x, y) = point(i, v);
                let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    let _ = write!(
        svg,
        r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="1.6"/>"#,
        path.trim_end()
    );
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (i, v)))
    {
        let (x, y) = point(i, v);
        let _ = write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{colour}"/>"#
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(points: Vec<(f64, Option<f64>)>, scale: Scale) -> Chart {
        Chart {
            id: "c".to_owned(),
            width: WIDTH,
            title: "T <1>".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_max: 60.0,
            scale,
            series: vec![Series {
                label: "s".into(),
                color: "#000",
                dash: None,
                width: 1.0,
                fill: true,
                points,
            }],
            bands: vec![Band {
                start: 20.0,
                end: 30.0,
                label: "redis · kill".into(),
                detail: "redis:kill@20s+10s".into(),
            }],
            legend: vec![LegendEntry {
                label: "s".into(),
                swatch: Swatch::Band,
            }],
        }
    }

    #[test]
    fn nice_steps_follow_one_two_five() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.5), 10.0);
        assert_eq!(nice_step(130.0), 200.0);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn a_log_axis_spans_whole_decades() {
        let axis = YAxis::fit(Scale::Log, [0.8, 3.0, 450.0].into_iter()).unwrap();
        assert_eq!((axis.min, axis.max), (0.1, 1000.0));
        assert!(axis.ticks.contains(&1.0) && axis.ticks.contains(&1000.0));
        assert!(axis.position(0.01) == 0.0 && axis.position(1000.0) == 1.0);
    }

    #[test]
    fn a_linear_axis_starts_at_zero_and_ends_on_a_tick() {
        let axis = YAxis::fit(Scale::Linear, [3.0, 47.0].into_iter()).unwrap();
        assert_eq!(axis.min, 0.0);
        assert_eq!(axis.max, 50.0);
        assert_eq!(axis.ticks.first(), Some(&0.0));
        assert_eq!(axis.ticks.last(), Some(&50.0));
    }

    #[test]
    fn a_gap_splits_a_line_into_segments() {
        let svg = chart(
            vec![
                (0.0, Some(1.0)),
                (1.0, Some(2.0)),
                (2.0, None),
                (3.0, Some(2.0)),
            ],
            Scale::Linear,
        )
        .render();
        let series = svg.split(r#"class="series" d=""#).nth(1).unwrap();
        let d = &series[..series.find('"').unwrap()];
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert!(d.ends_with("h0.1"), "a lone point is drawn as a dot: {d}");
        assert_eq!(
            svg.matches(r#"<circle class="point""#).count(),
            1,
            "and marked"
        );
    }

    #[test]
    fn a_chart_without_values_says_no_data_but_still_shades_bands() {
        let svg = chart(vec![(0.0, None)], Scale::Log).render();
        assert!(svg.contains("no data"));
        assert!(svg.contains(r#"class="fault""#));
        assert!(svg.contains("T &lt;1&gt;"));
    }
}
