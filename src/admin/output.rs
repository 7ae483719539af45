//! Output of the admin commands: each command fills sections of rows (JSON objects), printed as aligned columns or
//! as one JSON document. One data path for both formats, so they never disagree.

use pinlog_tuning::OutputFormat;
use serde_json::{Map, Value};

pub struct Section {
    /// Printed above the table, and the key of this section in JSON when there are several.
    pub title: Option<&'static str>,
    pub columns: &'static [&'static str],
    pub rows: Vec<Map<String, Value>>,
}

impl Section {
    pub fn new(columns: &'static [&'static str]) -> Section {
        Section {
            title: None,
            columns,
            rows: Vec::new(),
        }
    }

    pub fn titled(title: &'static str, columns: &'static [&'static str]) -> Section {
        Section {
            title: Some(title),
            ..Section::new(columns)
        }
    }

    /// Adds a row; `values` follow `columns`.
    pub fn row(&mut self, values: Vec<Value>) {
        debug_assert_eq!(values.len(), self.columns.len(), "one value per column");
        let row = self
            .columns
            .iter()
            .map(|c| c.to_string())
            .zip(values)
            .collect();
        self.rows.push(row);
    }
}

pub fn print(format: OutputFormat, sections: &[Section]) {
    match format {
        OutputFormat::Table => {
            for (i, section) in sections.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                if let Some(title) = section.title {
                    println!("{}", title.to_uppercase());
                }
                print!("{}", table(section));
            }
        }
        OutputFormat::Json => println!("{}", json(sections)),
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Aligned columns under upper-case headers, two spaces apart.
pub fn table(section: &Section) -> String {
    let cells: Vec<Vec<String>> = section
        .rows
        .iter()
        .map(|row| {
            section
                .columns
                .iter()
                .map(|c| row.get(*c).map_or_else(|| "-".to_owned(), cell))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = section
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(section.columns.iter().map(|c| c.to_uppercase()).collect());
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

/// One section without a title: an array of rows; otherwise an object of sections by title.
pub fn json(sections: &[Section]) -> Value {
    let rows = |s: &Section| Value::Array(s.rows.iter().cloned().map(Value::Object).collect());
    match sections {
        [only] if only.title.is_none() => rows(only),
        _ => Value::Object(
            sections
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (
                        s.title.map_or_else(|| i.to_string(), str::to_owned),
                        rows(s),
                    )
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_show_missing_values_as_dashes() {
        let mut s = Section::new(&["name", "partitions", "error"]);
        s.row(vec![json!("orders"), json!(12), Value::Null]);
        s.row(vec![json!("a"), json!(1), json!("TOPIC_ALREADY_EXISTS")]);
        assert_eq!(
            table(&s),
            "NAME    PARTITIONS  ERROR\norders  12          -\na       1           TOPIC_ALREADY_EXISTS\n"
        );
    }

    #[test]
    fn json_is_an_array_for_one_section_and_an_object_for_several() {
        let mut a = Section::new(&["k"]);
        a.row(vec![json!(1)]);
        assert_eq!(json(std::slice::from_ref(&a)), json!([{"k": 1}]));
        let mut b = Section::titled("configs", &["k"]);
        b.row(vec![json!("x")]);
        a.title = Some("partitions");
        assert_eq!(
            json(&[a, b]),
            json!({"partitions": [{"k": 1}], "configs": [{"k": "x"}]})
        );
    }
}
