//! JSONL: one JSON object per line, text in a configurable field, `id` kept. Blank lines
//! are allowed; anything else that is not an object with a string text field is an error
//! naming the line.

use super::collection::Row;
use super::ReadOptions;
use serde_json::Value;

/// One JSON object from a line (`lineno` for messages): `Ok(None)` for a blank line.
/// The id is the `--id-field` value, else `None` (the caller names the line).
pub(super) fn parse_line(
    line: &str,
    opts: &ReadOptions,
) -> std::result::Result<Option<Row>, String> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(line).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("expected a JSON object".into());
    };
    let text = match obj.get(&opts.text_field) {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("field \"{}\" is not a string", opts.text_field)),
        None => {
            return Err(format!(
                "no \"{}\" field (choose another with --text-field)",
                opts.text_field
            ))
        }
    };
    let id = match obj.get(&opts.id_field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(format!(
                "field \"{}\" must be a string or a number",
                opts.id_field
            ))
        }
    };
    let label = match &opts.label_field {
        None => None,
        Some(f) => Some(parse_label(&obj, f)?),
    };
    Ok(Some(Row { id, text, label }))
}

/// The membership label in field `f`: true/false or 1/0.
pub(crate) fn parse_label(
    obj: &serde_json::Map<String, Value>,
    f: &str,
) -> std::result::Result<bool, String> {
    match obj.get(f) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(true),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(false),
        Some(_) => Err(format!("label field \"{f}\" must be true/false or 1/0")),
        None => Err(format!("no \"{f}\" label field")),
    }
}

impl super::collection::Reader<'_, '_> {
    /// A JSONL file: one document per line (blank lines allowed), each line capped at
    /// `max_record_bytes`.
    pub(super) fn jsonl(
        &mut self,
        path: &std::path::Path,
        file_id: &str,
        reader: Box<dyn std::io::Read>,
    ) -> crate::error::Result<()> {
        let cap = self.opts.max_record_bytes;
        let mut r = std::io::BufReader::with_capacity(1 << 16, reader);
        let mut line = Vec::new();
        let mut lineno = 0;
        loop {
            lineno += 1;
            line.clear();
            let (n, too_long) = match read_line_capped(&mut r, &mut line, cap) {
                Ok(x) => x,
                Err(e) => return self.problem(path, Some(lineno), format!("cannot read: {e}")),
            };
            if n == 0 {
                return Ok(());
            }
            if too_long {
                self.problem(path, Some(lineno), format!("line longer than {cap} bytes"))?;
                continue;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let (text, repaired) = match self.decode(path, Some(lineno), line.clone()) {
                Ok(t) => t,
                Err(e) => {
                    self.problem(path, Some(lineno), super::collection::message_of(e))?;
                    continue;
                }
            };
            match parse_line(&text, &self.opts.read) {
                Ok(None) => {}
                Ok(Some(row)) => self.row(path, file_id, lineno, row, repaired)?,
                Err(msg) => self.problem(path, Some(lineno), msg)?,
            }
        }
    }
}

/// Reads one line (with its `\n`) into `buf`, keeping at most `cap` bytes; returns the
/// bytes consumed and whether the line was longer than `cap` (the rest is discarded).
fn read_line_capped(
    r: &mut impl std::io::BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let mut n = 0;
    let mut too_long = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok((n, too_long));
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > cap + 1 {
            too_long = true;
            buf.clear();
        } else if !too_long {
            buf.extend_from_slice(&chunk[..take]);
        }
        r.consume(take);
        n += take;
        if done {
            return Ok((n, too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{read_inputs, Passage};
    use super::*;
    use std::path::PathBuf;

    fn parse(src: &[u8], opts: &ReadOptions) -> crate::error::Result<Vec<Passage>> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.jsonl");
        std::fs::write(&p, src).unwrap();
        let r = read_inputs(&[PathBuf::from(&p)], opts);
        r.map_err(|e| {
            crate::error::Error::Usage(e.to_string().replace(&p.display().to_string(), "f.jsonl"))
        })
        .map(|v| {
            v.into_iter()
                .map(|mut x| {
                    x.id = x.id.replace(&p.display().to_string(), "f.jsonl");
                    x
                })
                .collect()
        })
    }

    fn opts() -> ReadOptions {
        ReadOptions::default()
    }

    #[test]
    fn reads_ids_texts_and_skips_blank_lines() {
        let src = b"{\"id\": \"a\", \"text\": \"one\"}\n\n{\"id\": 7, \"text\": \"two\"}\n{\"text\": \"three\"}\n";
        let ps = parse(src, &opts()).unwrap();
        let ids: Vec<_> = ps.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a", "7", "f.jsonl:4"]);
        assert_eq!(ps[2].text, "three");
    }

    #[test]
    fn malformed_line_names_the_line() {
        let src = b"{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n";
        let msg = parse(src, &opts()).unwrap_err().to_string();
        assert!(msg.starts_with("f.jsonl:2: malformed JSON"), "{msg}");
    }

    #[test]
    fn missing_or_wrong_text_field_is_an_error() {
        let e = parse(b"{\"body\": \"x\"}\n", &opts()).unwrap_err();
        assert!(
            e.to_string().contains("f.jsonl:1: no \"text\" field"),
            "{e}"
        );
        let e = parse(b"{\"text\": 3}\n", &opts()).unwrap_err();
        assert!(e.to_string().contains("not a string"), "{e}");
        let e = parse(b"[1,2]\n", &opts()).unwrap_err();
        assert!(e.to_string().contains("expected a JSON object"), "{e}");
    }

    #[test]
    fn labels_are_read_and_checked() {
        let o = ReadOptions {
            label_field: Some("member".into()),
            ..opts()
        };
        let src = b"{\"text\": \"a\", \"member\": true}\n{\"text\": \"b\", \"member\": 0}\n";
        let ps = parse(src, &o).unwrap();
        assert_eq!((ps[0].label, ps[1].label), (Some(true), Some(false)));
        let e = parse(b"{\"text\": \"a\", \"member\": \"yes\"}\n", &o).unwrap_err();
        assert!(e.to_string().contains("f.jsonl:1: label field"), "{e}");
        let e = parse(b"{\"text\": \"a\"}\n", &o).unwrap_err();
        assert!(e.to_string().contains("no \"member\" label"), "{e}");
    }

    #[test]
    fn configurable_text_field() {
        let o = ReadOptions {
            text_field: "body".into(),
            ..opts()
        };
        let ps = parse(b"{\"body\": \"x\"}\n", &o).unwrap();
        assert_eq!(ps[0].text, "x");
    }

    #[test]
    fn invalid_utf8_in_a_line_names_the_line() {
        let e = parse(b"{\"text\": \"a\"}\n{\"text\": \"\xc3\"}\n", &opts()).unwrap_err();
        assert!(e.to_string().starts_with("f.jsonl:2: invalid UTF-8"), "{e}");
    }
}
