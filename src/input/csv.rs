//! CSV and TSV files: one document per row, text in `--text-field`, id in `--id-field`, an
//! optional label column; a malformed row is a problem naming its line.

use super::collection::{message_of, Reader, Row};
use crate::error::Result;
use std::io::Read;
use std::path::Path;

impl Reader<'_, '_> {
    pub(super) fn table(
        &mut self,
        path: &Path,
        file_id: &str,
        reader: Box<dyn Read>,
        delim: u8,
    ) -> Result<()> {
        let mut rdr = ::csv::ReaderBuilder::new()
            .delimiter(delim)
            .flexible(false)
            .from_reader(reader);
        let headers = match rdr.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => return self.problem(path, Some(1), format!("cannot read the header: {e}")),
        };
        let col = |name: &str| headers.iter().position(|h| h == name.as_bytes());
        let Some(text_col) = col(&self.opts.read.text_field) else {
            let names: Vec<String> = headers
                .iter()
                .map(|h| String::from_utf8_lossy(h).into_owned())
                .collect();
            return self.problem(
                path,
                Some(1),
                format!(
                    "no \"{}\" column (choose it with --text-field); the columns are: {}",
                    self.opts.read.text_field,
                    names.join(", ")
                ),
            );
        };
        let id_col = col(&self.opts.read.id_field);
        let label_col = self.opts.read.label_field.as_deref().and_then(col);
        let mut rec = ::csv::ByteRecord::new();
        loop {
            let line = rdr.position().line() as usize;
            match rdr.read_byte_record(&mut rec) {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line() as usize);
                    let io = matches!(e.kind(), ::csv::ErrorKind::Io(_));
                    self.problem(path, Some(line), format!("malformed row: {e}"))?;
                    if io {
                        return Ok(());
                    }
                    continue;
                }
            }
            let line = rec.position().map_or(line, |p| p.line() as usize);
            let field = |i: usize| rec.get(i).unwrap_or_default().to_vec();
            let (text, repaired) = match self.decode(path, Some(line), field(text_col)) {
                Ok(t) => t,
                Err(e) => {
                    self.problem(path, Some(line), message_of(e))?;
                    continue;
                }
            };
            let id = id_col
                .map(|i| String::from_utf8_lossy(&field(i)).into_owned())
                .filter(|s| !s.is_empty());
            let label = match (label_col, &self.opts.read.label_field) {
                (Some(i), _) => match field(i).as_slice() {
                    b"true" | b"1" | b"True" | b"TRUE" => Some(true),
                    b"false" | b"0" | b"False" | b"FALSE" => Some(false),
                    _ => {
                        self.problem(path, Some(line), "label must be true/false or 1/0".into())?;
                        continue;
                    }
                },
                (None, Some(f)) => {
                    self.problem(path, Some(line), format!("no \"{f}\" label column"))?;
                    return Ok(());
                }
                (None, None) => None,
            };
            self.row(path, file_id, line, Row { id, text, label }, repaired)?;
        }
    }
}
