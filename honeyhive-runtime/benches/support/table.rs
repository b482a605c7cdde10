//! Figures over rounds (median and spread) and markdown tables.
//!
//! Shared by several benches (`#[path = "support/table.rs"] mod table;`); each uses a part.
#![allow(dead_code)]

/// One figure measured once per round.
#[derive(Clone, Debug, Default)]
pub(crate) struct Samples(pub(crate) Vec<f64>);

impl Samples {
    pub(crate) fn push(&mut self, x: f64) {
        self.0.push(x);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The median (the mean of the two middle values for an even count); NaN when empty.
    pub(crate) fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
        }
    }

    pub(crate) fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    pub(crate) fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    /// `median (min-max)`, each figure written by `fmt`.
    pub(crate) fn show(&self, fmt: impl Fn(f64) -> String) -> String {
        if self.0.len() <= 1 {
            return fmt(self.median());
        }
        format!(
            "{} ({}-{})",
            fmt(self.median()),
            fmt(self.min()),
            fmt(self.max())
        )
    }
}

/// A rate, rounded to three significant figures, with k or M: `1.23M`, `456k`, `789`.
pub(crate) fn rate(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_owned();
    }
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Nanoseconds, to three significant figures at most.
pub(crate) fn ns(x: f64) -> String {
    if !x.is_finite() {
        "-".to_owned()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A ratio: `0.42x`.
pub(crate) fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}x")
    } else {
        "-".to_owned()
    }
}

/// A percentage with one decimal.
pub(crate) fn percent(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}%")
    } else {
        "-".to_owned()
    }
}

/// A markdown table: a header row, then rows of cells (first column left-aligned, the others
/// right-aligned unless [`Table::text`]).
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    text: bool,
}

impl Table {
    pub(crate) fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            text: false,
        }
    }

    /// Every column left-aligned (a table of text, not figures).
    pub(crate) fn text(mut self) -> Table {
        self.text = true;
        self
    }

    pub(crate) fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub(crate) fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        let align: Vec<String> = (0..self.header.len())
            .map(|i| if i == 0 || self.text { "---" } else { "---:" }.to_owned())
            .collect();
        out.push_str(&line(&align));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}
