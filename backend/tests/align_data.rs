//! The alignment datasets from Parquet, as Hugging Face exports them (nullable columns, list
//! columns in the three-level LIST layout, a struct of booleans, snappy or zstd pages), written
//! here with the `parquet` crate's writer and loaded through `read_records`: the same records
//! as from JSON and JSONL, and errors that name the file, row and field.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use fuselab::align::data::ParquetError;
use fuselab::align::read_records;
use fuselab_shared::align::{AlpacaRecord, BeaverTailsRecord, DataError, TruthfulQaRecord};
use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::FileReader as _;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("fuselab-align-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One leaf column of one row group: its values and Dremel levels.
enum Leaf {
    Strings {
        values: Vec<ByteArray>,
        def: Vec<i16>,
        rep: Option<Vec<i16>>,
    },
    Bools {
        values: Vec<bool>,
        def: Vec<i16>,
    },
}

/// An optional top-level string column.
fn strings(rows: &[Option<&str>]) -> Leaf {
    Leaf::Strings {
        values: rows.iter().flatten().map(|s| ByteArray::from(*s)).collect(),
        def: rows.iter().map(|r| i16::from(r.is_some())).collect(),
        rep: None,
    }
}

/// An optional boolean `depth` optional levels deep (1: top level, 2: in an optional group).
fn bools(rows: &[Option<bool>], depth: i16) -> Leaf {
    Leaf::Bools {
        values: rows.iter().flatten().copied().collect(),
        def: rows
            .iter()
            .map(|r| if r.is_some() { depth } else { depth - 1 })
            .collect(),
    }
}

/// `optional group x (LIST) { repeated group list { optional binary element (STRING); } }`, as
/// pyarrow writes `list<string>`.
fn string_lists(rows: &[Option<&[&str]>]) -> Leaf {
    let (mut values, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        match row {
            None => {
                def.push(0);
                rep.push(0);
            }
            Some([]) => {
                def.push(1);
                rep.push(0);
            }
            Some(items) => {
                for (j, item) in items.iter().enumerate() {
                    values.push(ByteArray::from(*item));
                    def.push(3);
                    rep.push(i16::from(j > 0));
                }
            }
        }
    }
    Leaf::Strings {
        values,
        def,
        rep: Some(rep),
    }
}

/// Writes a Parquet file with `schema`, one row group per entry of `groups` (each: its leaf
/// columns in schema order).
fn write_parquet(path: &Path, schema: &str, compression: Compression, groups: Vec<Vec<Leaf>>) {
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(compression)
            .build(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
    for leaves in groups {
        let mut group = writer.next_row_group().unwrap();
        let mut leaves = leaves.into_iter();
        while let Some(mut column) = group.next_column().unwrap() {
            match leaves.next().expect("a leaf for every column") {
                Leaf::Strings { values, def, rep } => {
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&values, Some(&def), rep.as_deref())
                        .unwrap();
                }
                Leaf::Bools { values, def } => {
                    column
                        .typed::<BoolType>()
                        .write_batch(&values, Some(&def), None)
                        .unwrap();
                }
            }
            column.close().unwrap();
        }
        assert!(leaves.next().is_none(), "more leaves than columns");
        group.close().unwrap();
    }
    writer.close().unwrap();
}

const ALPACA_SCHEMA: &str = "message schema {
    optional binary instruction (STRING);
    optional binary input (STRING);
    optional binary output (STRING);
}";

fn alpaca_columns() -> Vec<Leaf> {
    vec![
        strings(&[
            Some("Give three tips for staying healthy."),
            Some("Translate to French."),
            Some("Ünïcödé, \"quotes\" and a\nnewline"),
        ]),
        // A null input is an absent one: it takes the default, "".
        strings(&[Some(""), Some("Good morning"), None]),
        strings(&[Some("Eat well."), Some("Bonjour"), Some("ok")]),
    ]
}

fn alpaca_expected() -> Vec<AlpacaRecord> {
    let r = |instruction: &str, input: &str, output: &str| AlpacaRecord {
        instruction: instruction.into(),
        input: input.into(),
        output: output.into(),
    };
    vec![
        r("Give three tips for staying healthy.", "", "Eat well."),
        r("Translate to French.", "Good morning", "Bonjour"),
        r("Ünïcödé, \"quotes\" and a\nnewline", "", "ok"),
    ]
}

fn codec(path: &Path) -> Compression {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader.metadata().row_group(0).column(0).compression()
}

#[test]
fn alpaca_parquet_snappy_and_zstd_match_json_and_jsonl() {
    let dir = scratch("alpaca");
    let snappy = dir.join("alpaca.parquet");
    write_parquet(
        &snappy,
        ALPACA_SCHEMA,
        Compression::SNAPPY,
        vec![alpaca_columns()],
    );
    assert_eq!(codec(&snappy), Compression::SNAPPY);
    let zstd = dir.join("alpaca-zstd.parquet");
    write_parquet(
        &zstd,
        ALPACA_SCHEMA,
        Compression::ZSTD(ZstdLevel::default()),
        vec![alpaca_columns()],
    );
    assert!(matches!(codec(&zstd), Compression::ZSTD(_)));

    let from_parquet: Vec<AlpacaRecord> = read_records(&snappy).unwrap();
    assert_eq!(from_parquet, alpaca_expected());
    let from_zstd: Vec<AlpacaRecord> = read_records(&zstd).unwrap();
    assert_eq!(from_zstd, from_parquet);

    let json = dir.join("alpaca.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&alpaca_expected()).unwrap(),
    )
    .unwrap();
    let jsonl = dir.join("alpaca.jsonl");
    let lines: Vec<String> = alpaca_expected()
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    assert_eq!(read_records::<AlpacaRecord>(&json).unwrap(), from_parquet);
    assert_eq!(read_records::<AlpacaRecord>(&jsonl).unwrap(), from_parquet);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truthfulqa_list_columns_become_answer_lists() {
    let dir = scratch("truthfulqa");
    let path = dir.join("truthfulqa.parquet");
    let schema = "message schema {
        optional binary type (STRING);
        optional binary category (STRING);
        optional binary question (STRING);
        optional binary best_answer (STRING);
        optional group correct_answers (LIST) {
            repeated group list { optional binary element (STRING); }
        }
        optional group incorrect_answers (LIST) {
            repeated group list { optional binary element (STRING); }
        }
        optional binary source (STRING);
    }";
    let columns = vec![
        strings(&[Some("Adversarial"), Some("Non-Adversarial")]),
        strings(&[Some("Misconceptions"), Some("Fiction")]),
        strings(&[
            Some("What happens if you eat watermelon seeds?"),
            Some("Are vampires real?"),
        ]),
        strings(&[Some("Nothing happens"), Some("No, vampires are not real")]),
        string_lists(&[
            Some(&[
                "Nothing happens",
                "You digest them",
                "They pass through you",
            ]),
            Some(&["No, vampires are not real"]),
        ]),
        string_lists(&[Some(&["You grow watermelons in your stomach"]), Some(&[])]),
        strings(&[Some("https://example.org/watermelon"), None]),
    ];
    write_parquet(&path, schema, Compression::SNAPPY, vec![columns]);

    let records: Vec<TruthfulQaRecord> = read_records(&path).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].kind, "Adversarial");
    assert_eq!(
        records[0].correct_answers,
        [
            "Nothing happens",
            "You digest them",
            "They pass through you"
        ]
    );
    assert_eq!(
        records[0].incorrect_answers,
        ["You grow watermelons in your stomach"]
    );
    assert_eq!(records[1].correct_answers, ["No, vampires are not real"]);
    assert!(records[1].incorrect_answers.is_empty());
    assert_eq!(records[1].source, "");
    assert_eq!(records[0].train_examples().len(), 3);

    let jsonl = dir.join("truthfulqa.jsonl");
    let lines: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    assert_eq!(read_records::<TruthfulQaRecord>(&jsonl).unwrap(), records);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `BeaverTails` with `category` as a struct of booleans. The `parquet` schema parser splits
/// names at commas, so only categories without one are used here.
const BEAVERTAILS_SCHEMA: &str = "message schema {
    optional binary prompt (STRING);
    optional binary response (STRING);
    optional group category {
        optional boolean animal_abuse;
        optional boolean self_harm;
        optional boolean privacy_violation;
    }
    optional boolean is_safe;
}";

fn beavertails_group(prompts: &[&str], responses: &[Option<&str>], safe: &[bool]) -> Vec<Leaf> {
    let n = prompts.len();
    let prompts: Vec<Option<&str>> = prompts.iter().copied().map(Some).collect();
    let unsafe_rows: Vec<Option<bool>> = safe.iter().map(|s| Some(!s)).collect();
    vec![
        strings(&prompts),
        strings(responses),
        bools(&unsafe_rows, 2),
        bools(&vec![Some(false); n], 2),
        bools(&vec![Some(false); n], 2),
        bools(&safe.iter().copied().map(Some).collect::<Vec<_>>(), 1),
    ]
}

#[test]
fn beavertails_rows_and_a_missing_field_named_with_its_row() {
    let dir = scratch("beavertails");
    let good = dir.join("beavertails.parquet");
    write_parquet(
        &good,
        BEAVERTAILS_SCHEMA,
        Compression::SNAPPY,
        vec![
            beavertails_group(
                &["How do I hurt a cat?", "How do I bake bread?"],
                &[Some("You should not."), Some("Mix flour and water.")],
                &[true, true],
            ),
            beavertails_group(&["Tell me a secret."], &[Some("Here it is.")], &[false]),
        ],
    );
    let records: Vec<BeaverTailsRecord> = read_records(&good).unwrap();
    assert_eq!(records.len(), 3);
    assert!(records[0].is_safe && !records[2].is_safe);
    assert_eq!(records[2].category.get("animal_abuse"), Some(&true));
    assert_eq!(records[0].category.len(), 3);
    assert_eq!(records[1].response, "Mix flour and water.");

    // Row 3 (the second row group's first row) has no response.
    let bad = dir.join("beavertails-bad.parquet");
    write_parquet(
        &bad,
        BEAVERTAILS_SCHEMA,
        Compression::SNAPPY,
        vec![
            beavertails_group(&["a", "b"], &[Some("x"), Some("y")], &[true, true]),
            beavertails_group(&["c"], &[None], &[true]),
        ],
    );
    let err = read_records::<BeaverTailsRecord>(&bad).unwrap_err();
    let text = format!("{err:#}");
    eprintln!("{text}");
    assert!(
        matches!(
            err.downcast_ref::<DataError>(),
            Some(DataError::Row { row: 3, .. })
        ),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("{}: row 3: ", bad.display())) && text.contains("`response`"),
        "{text}"
    );

    // A category that is not one of the 14 is named by the record check.
    let odd = dir.join("beavertails-odd.parquet");
    let schema = BEAVERTAILS_SCHEMA.replace("privacy_violation", "arson");
    write_parquet(
        &odd,
        &schema,
        Compression::SNAPPY,
        vec![beavertails_group(&["a"], &[Some("x")], &[true])],
    );
    let err = read_records::<BeaverTailsRecord>(&odd).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<DataError>(),
            Some(DataError::Field { row: 1, field, .. }) if field == "category"
        ),
        "{err:#}"
    );
    assert!(err.to_string().contains("arson"), "{err:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_parquet_is_named() {
    let dir = scratch("not-parquet");
    let csv = dir.join("alpaca.parquet");
    std::fs::write(&csv, "instruction,input,output\na,b,c\n").unwrap();
    let err = read_records::<AlpacaRecord>(&csv).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<ParquetError>(),
            Some(ParquetError::NotParquet { .. })
        ),
        "{err:#}"
    );
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        text.contains(&csv.display().to_string()) && text.contains("not a Parquet file"),
        "{text}"
    );

    let empty = dir.join("empty.parquet");
    std::fs::write(&empty, "").unwrap();
    let err = read_records::<AlpacaRecord>(&empty).unwrap_err();
    assert!(err.to_string().contains("not a Parquet file"), "{err:#}");

    // Parquet's magic number but the rest cut off: the reader's own message, with the file.
    let whole = dir.join("whole.parquet");
    write_parquet(
        &whole,
        ALPACA_SCHEMA,
        Compression::SNAPPY,
        vec![alpaca_columns()],
    );
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_records::<AlpacaRecord>(&cut).unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        text.contains(&cut.display().to_string()) && text.contains("cannot read the Parquet file"),
        "{text}"
    );

    // Through the command line: bad input exits with 2 and names the file.
    let config = dir.join("sft.toml");
    std::fs::write(
        &config,
        r#"out = "run"
task = "helpful"
[base]
model = "tiny"
[data]
alpaca = "alpaca.parquet"
beavertails_train = "beavertails.jsonl"
truthfulqa = "truthfulqa.jsonl"
[stage]
lora = { rank = 2, alpha = 2, dropout = 0.0, targets = ["q_proj"] }
train = { batch_size = 2, epochs = 1, max_len = 32, seed = 1, optim = { learning_rate = 1e-3 } }
"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fuselab"))
        .args(["align", "sft", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("alpaca.parquet") && stderr.contains("not a Parquet file"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_column_chunk_outside_the_file_is_named() {
    let dir = scratch("outside");
    let whole = dir.join("whole.parquet");
    // Many short values: kilobytes of pages against a footer of a few hundred bytes.
    let values: Vec<String> = (0..5000).map(|i| format!("row {i:05}")).collect();
    let rows: Vec<Option<&str>> = values.iter().map(|v| Some(v.as_str())).collect();
    write_parquet(
        &whole,
        ALPACA_SCHEMA,
        Compression::UNCOMPRESSED,
        vec![vec![strings(&rows), strings(&rows), strings(&rows)]],
    );
    // The footer kept and the data pages dropped: the column chunks it declares now lie past
    // the end of the file.
    let bytes = std::fs::read(&whole).unwrap();
    let footer_len =
        u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let footer = &bytes[bytes.len() - 8 - footer_len as usize..];
    let gutted = dir.join("gutted.parquet");
    std::fs::write(&gutted, [b"PAR1".as_slice(), footer].concat()).unwrap();
    let err = read_records::<AlpacaRecord>(&gutted).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&gutted.display().to_string())
            && text.contains("row group 0, column `instruction`")
            && text.contains("outside the"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_list_column_whose_child_is_not_repeated_is_named() {
    let dir = scratch("list");
    let path = dir.join("bad_list.parquet");
    // What the fuzzer made of TruthfulQA's list column: the LIST group's child is `required`
    // where the format wants `repeated` (the parquet crate's reader asserted on it).
    write_parquet(
        &path,
        "message schema {
            optional group incorrect_answers (LIST) {
                required group list {
                    optional binary element (STRING);
                }
            }
        }",
        Compression::UNCOMPRESSED,
        vec![vec![Leaf::Strings {
            values: vec![ByteArray::from("a"), ByteArray::from("b")],
            def: vec![2, 2],
            rep: None,
        }]],
    );
    let err = read_records::<TruthfulQaRecord>(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string())
            && text.contains(
                "column `incorrect_answers` is annotated LIST but its child is not repeated"
            ),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
