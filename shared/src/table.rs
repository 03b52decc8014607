//! CSV text through the `csv` crate, the one place the project reads and writes it: quoted
//! fields (a model name with a comma or a quote) survive a write→read round trip, and every row
//! keeps its 1-based line so errors can name it.

/// One non-blank CSV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line where the record starts.
    pub line: usize,
    /// The fields, unquoted and trimmed.
    pub cells: Vec<String>,
}

/// The records of `text`, skipping blank lines (and lines of blanks). Rows may differ in width;
/// callers check it and name the line.
pub fn rows(text: &str) -> impl Iterator<Item = Row> + '_ {
    // Lines are counted from byte offsets: the reader's own count misses blank lines that follow
    // a record.
    let mut counted = (0, 1);
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes())
        .into_records()
        // Reading `&str` cannot fail: no I/O, valid UTF-8, and flexible widths.
        .filter_map(Result::ok)
        .filter(|record| record.iter().any(|cell| !cell.is_empty()))
        .map(move |record| {
            let after_previous = record
                .position()
                .map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX))
                .min(text.len());
            // The position is where the previous record ended: skip the blank lines between.
            let start = text.as_bytes()[after_previous..]
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .map_or(text.len(), |at| after_previous + at);
            let (from, line) = counted;
            let skipped = text
                .get(from.min(start)..start)
                .map_or(0, |between| between.matches('\n').count());
            counted = (start, line + skipped);
            Row {
                line: line + skipped,
                cells: record.iter().map(str::to_owned).collect(),
            }
        })
}

/// CSV text with one line per record, fields quoted where they need it.
pub fn write<R, F>(records: R) -> String
where
    R: IntoIterator,
    R::Item: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for record in records {
        // Writing to a `Vec` cannot fail, and `flexible` allows any width.
        let _ = writer.write_record(record);
    }
    let bytes = writer.into_inner().unwrap_or_default();
    // Every field came in as UTF-8 and quoting adds only ASCII.
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_round_trip_with_their_lines() {
        let text = write([["a,b", "say \"hi\""], ["1", "2"]]);
        assert_eq!(text, "\"a,b\",\"say \"\"hi\"\"\"\n1,2\n");
        let rows: Vec<Row> = rows(&format!("\n  \n{text}\n3 , 4")).collect();
        assert_eq!(
            rows,
            [
                Row {
                    line: 3,
                    cells: vec!["a,b".into(), "say \"hi\"".into()]
                },
                Row {
                    line: 4,
                    cells: vec!["1".into(), "2".into()]
                },
                Row {
                    line: 6,
                    cells: vec!["3".into(), "4".into()]
                },
            ]
        );
    }
}
