//! Human output: tables with aligned columns, and the fields of one resource.
//!
//! Columns are as wide as their widest cell as a terminal shows it (East Asian wide
//! characters count two), separated by two spaces, aligned left unless the table says
//! otherwise ([`Table::align_right`]). Control characters in text from the server (a job's output, a command) are
//! shown escaped (`\u{1b}`), so that no answer can move the cursor or recolour the terminal;
//! line breaks and tabs are kept only in the multi-line values of [`fields`].

use std::fmt::Write as _;

use serde_json::Value;
use unicode_width::UnicodeWidthStr;

/// A table: a header row and rows of cells.
///
/// # Examples
///
/// ```
/// use oco_cli::table::Table;
///
/// let mut table = Table::new(["ID", "HOSTNAME"]).align_right(&["ID"]);
/// table.row(["1", "pc-042"]);
/// table.row(["12", "build-server"]);
/// assert_eq!(table.render(), "ID  HOSTNAME\n 1  pc-042\n12  build-server\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    header: Vec<String>,
    /// Which columns are aligned right.
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column names.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(header: I) -> Table {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        Table {
            right: vec![false; header.len()],
            header,
            rows: Vec::new(),
        }
    }

    /// The same table with the columns named `headers` aligned right (numbers, ids).
    pub fn align_right(mut self, headers: &[&str]) -> Table {
        for (i, header) in self.header.iter().enumerate() {
            if headers.contains(&header.as_str()) {
                self.right[i] = true;
            }
        }
        self
    }

    /// Adds a row; missing cells are empty and extra ones dropped.
    pub fn row<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, cells: I) {
        let mut row: Vec<String> = cells
            .into_iter()
            .map(|cell| one_line(&cell.into()))
            .collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    /// How many rows it has.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text: the header, then a line per row, each ending in a line break, with no
    /// white space at the ends of lines.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let width = |i: usize| {
            std::iter::once(&self.header[i])
                .chain(self.rows.iter().map(|row| &row[i]))
                .map(|cell| cell.width())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[i].saturating_sub(cell.width()));
                if self.right.get(i).copied().unwrap_or(false) {
                    line.push_str(&pad);
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A JSON value as one table cell: strings as they are, `null` as `-`, lists of scalars joined
/// with `, `, other values as compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) if items.iter().all(is_scalar) => {
            items.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// The fields of one resource, one per line as `key  value`, nested objects flattened to
/// dotted keys (`policy.priority`); a multi-line text follows its key, indented.
///
/// # Examples
///
/// ```
/// use oco_cli::table::fields;
///
/// let job = serde_json::json!({"id": 7, "policy": {"priority": 5}, "output": "a\nb"});
/// assert_eq!(fields(&job), "id               7\noutput:\n  a\n  b\npolicy.priority  5\n");
/// ```
pub fn fields(value: &Value) -> String {
    let mut flat = Vec::new();
    flatten("", value, &mut flat);
    // The id first, the rest as the object has them.
    flat.sort_by_key(|(key, _)| key != "id");
    let width = flat
        .iter()
        .filter(|(_, text)| !text.contains('\n'))
        .map(|(key, _)| key.width())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, text) in flat {
        if text.contains('\n') {
            let _ = writeln!(out, "{key}:");
            for line in text.trim_end_matches('\n').lines() {
                let _ = writeln!(out, "  {}", escape(line, true));
            }
        } else {
            let pad = " ".repeat(width.saturating_sub(key.width()));
            let _ = writeln!(
                out,
                "{}",
                format!("{key}{pad}  {}", one_line(&text)).trim_end()
            );
        }
    }
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(members) if !members.is_empty() => {
            for (key, member) in members {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, member, out);
            }
        }
        other if prefix.is_empty() => out.push(("value".to_owned(), cell(other))),
        other => out.push((prefix.to_owned(), cell(other))),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// `text` on one line: line breaks as `\n`, other control characters escaped.
fn one_line(text: &str) -> String {
    escape(text, false)
}

/// `text` with control characters escaped (`\n`, `\t`, `\u{1b}`); tabs kept when `keep_tabs`.
fn escape(text: &str, keep_tabs: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' if keep_tabs => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_by_display_width() {
        let mut table = Table::new(["NAME", "N"]).align_right(&["N"]);
        table.row(["日本", "1"]);
        table.row(["ab", "10"]);
        assert_eq!(table.render(), "NAME   N\n日本   1\nab    10\n");
    }

    #[test]
    fn a_column_with_text_is_left_aligned_and_short_rows_are_padded() {
        let mut table = Table::new(["A", "B", "C"]).align_right(&["A"]);
        table.row(["1", "x"]);
        table.row(["22", "yyy", "z"]);
        assert_eq!(table.render(), " A  B    C\n 1  x\n22  yyy  z\n");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut table = Table::new(["OUTPUT"]);
        table.row(["red \u{1b}[31m\nnext"]);
        assert_eq!(table.render(), "OUTPUT\nred \\u{1b}[31m\\nnext\n");
        let shown = fields(&json!({"output": "a\u{7}\n\tb\n"}));
        assert_eq!(shown, "output:\n  a\\u{7}\n  \tb\n");
    }

    #[test]
    fn cells_of_json_values() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("x")), "x");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(cell(&json!(["a", 1])), "a, 1");
        assert_eq!(cell(&json!([{"a": 1}])), "[{\"a\":1}]");
    }

    #[test]
    fn nested_fields_are_flattened_and_empty_objects_kept() {
        let shown = fields(&json!({"a": {"b": {"c": true}}, "d": {}, "e": []}));
        assert_eq!(shown, "a.b.c  true\nd      {}\ne\n");
    }
}
