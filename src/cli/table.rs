//! The tables the list commands print (`runs list`, `artifacts list`, `functions list`,
//! `workflows list`).
//!
//! Plain text on purpose: no borders, no colour, a header row of upper-case column names, every
//! column as wide as its widest cell and separated from the next by two spaces, no trailing
//! blanks. A script can split a line on whitespace (`awk '{print $1}'`) and get the columns it
//! got when the padding was written by hand. Columns are left-aligned unless a command asks
//! otherwise for a number. `--json` is the stable interface; this layout is for people.

use std::fmt;

use comfy_table::{presets, CellAlignment, Row};

/// Blanks after each cell: the gap between two columns.
const GAP: u16 = 2;

/// A borderless, left-aligned text table with a header row; print it with
/// [`Printer::data`](super::Printer::data).
pub(crate) struct Table {
    inner: comfy_table::Table,
}

impl Table {
    /// A table with these column names, in this order.
    pub fn new(header: &[&str]) -> Self {
        let mut inner = comfy_table::Table::new();
        inner
            .load_style(presets::NOTHING)
            .set_header(header.to_vec());
        for column in inner.column_iter_mut() {
            column.set_padding((0, GAP));
        }
        Table { inner }
    }

    /// Aligns the column at `index` (from 0) to the right, for numbers.
    pub fn align_right(mut self, index: usize) -> Self {
        if let Some(column) = self.inner.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
        self
    }

    /// Adds one row; it has as many cells as the header.
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.inner.add_row(Row::from(cells));
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The last column is padded too: trim it so no line ends in blanks.
        f.write_str(&self.inner.trim_fmt())
    }
}
