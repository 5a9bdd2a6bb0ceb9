//! Parquet files, row by row (the `parquet` crate's record reader, no Arrow): only the
//! text, id and label columns are decoded. Row numbers count from 1.

use super::collection::{Reader, Row};
use super::ReadOptions;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::Field;
use parquet::schema::types::Type;
use std::path::Path;
use std::sync::Arc;

/// A row, or `(row number, reason)` for a row that cannot be a document.
pub(super) type RowResult = Result<(usize, Row), (Option<usize>, String)>;

/// The rows of a Parquet file, or why the file cannot be read.
fn rows(path: &Path, opts: &ReadOptions) -> Result<Box<dyn Iterator<Item = RowResult>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let reader =
        SerializedFileReader::new(file).map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let schema = reader.metadata().file_metadata().schema();
    let wanted = [
        Some(opts.text_field.as_str()),
        Some(opts.id_field.as_str()),
        opts.label_field.as_deref(),
    ];
    let fields: Vec<Arc<Type>> = schema
        .get_fields()
        .iter()
        .filter(|f| wanted.contains(&Some(f.name())))
        .cloned()
        .collect();
    if !fields.iter().any(|f| f.name() == opts.text_field) {
        let names: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
        return Err(format!(
            "no \"{}\" column (choose it with --text-field); the columns are: {}",
            opts.text_field,
            names.join(", ")
        ));
    }
    let projection = Type::group_type_builder(schema.name())
        .with_fields(fields)
        .build()
        .map_err(|e| format!("cannot select columns: {e}"))?;
    let rows = RowIter::from_file_into(Box::new(reader))
        .project(Some(projection))
        .map_err(|e| format!("cannot read rows: {e}"))?;
    let opts = opts.clone();
    Ok(Box::new(rows.enumerate().map(move |(i, r)| {
        let n = i + 1;
        let row = r.map_err(|e| (Some(n), format!("cannot read row: {e}")))?;
        to_row(&row, &opts)
            .map(|r| (n, r))
            .map_err(|m| (Some(n), m))
    })))
}

fn to_row(row: &parquet::record::Row, opts: &ReadOptions) -> Result<Row, String> {
    let (mut text, mut id, mut label) = (None, None, None);
    for (name, field) in row.get_column_iter() {
        if *name == opts.text_field {
            text = Some(match field {
                Field::Str(s) => s.clone(),
                Field::Bytes(b) => std::str::from_utf8(b.data())
                    .map_err(|e| format!("column \"{name}\" is not UTF-8: {e}"))?
                    .to_string(),
                Field::Null => return Err(format!("column \"{name}\" is null")),
                other => return Err(format!("column \"{name}\" is not text ({other})")),
            });
        } else if *name == opts.id_field {
            id = match field {
                Field::Str(s) => Some(s.clone()),
                Field::Null => None,
                other => Some(other.to_string()),
            };
        } else if Some(name.as_str()) == opts.label_field.as_deref() {
            label = Some(match field {
                Field::Bool(b) => *b,
                Field::Int(1) | Field::Long(1) | Field::Byte(1) | Field::Short(1) => true,
                Field::Int(0) | Field::Long(0) | Field::Byte(0) | Field::Short(0) => false,
                other => {
                    return Err(format!(
                        "label column \"{name}\" must be true/false or 1/0, not {other}"
                    ))
                }
            });
        }
    }
    if opts.label_field.is_some() && label.is_none() {
        return Err(format!(
            "no \"{}\" label column",
            opts.label_field.as_deref().unwrap_or("")
        ));
    }
    Ok(Row {
        id,
        text: text.ok_or_else(|| format!("no \"{}\" value", opts.text_field))?,
        label,
    })
}

impl Reader<'_, '_> {
    /// A Parquet file: one document per row, each row's problem listed with its number.
    pub(super) fn parquet(&mut self, path: &Path, doc_id: &str) -> crate::error::Result<()> {
        match rows(path, &self.opts.read) {
            Ok(rows) => {
                for row in rows {
                    match row {
                        Ok((n, row)) => self.row(path, doc_id, n, row, false)?,
                        Err((n, msg)) => self.problem(path, n, msg)?,
                    }
                }
                Ok(())
            }
            Err(msg) => self.problem(path, None, msg),
        }
    }
}
