//! The Alignment page's form: the common settings of a run (device, model, defences, poison
//! ratios p, sample counts n, seeds) read from its TOML configuration and written back into it
//! with `toml_edit`, which keeps the text's comments and layout. The TOML stays the one source
//! of truth; the form is a view of it for the keys most runs change.
//!
//! Plain logic, compiled natively too, so its unit tests run without a browser.

use fuselab_shared::api::AlignAction;
use toml_edit::{Array, DocumentMut, Item, Table, Value, value};

/// The defences a benchmark compares, as the configuration names them.
pub const DEFENCES: [&str; 4] = ["sft", "booster", "vaccine", "lisa"];

/// The devices a run trains on.
pub const DEVICES: [&str; 2] = ["cpu", "wgpu"];

/// What a field holds, and how its text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of a few names (a select).
    Choice(&'static [&'static str]),
    /// Any of a few names (checkboxes), written as an array.
    Choices(&'static [&'static str]),
    /// A name or path.
    Text,
    /// A share in `[0, 1]`.
    Share,
    /// Shares in `[0, 1]`, comma-separated.
    Shares,
    /// A whole number of at least 1.
    Count,
    /// Whole numbers of at least 1, comma-separated.
    Counts,
    /// Seeds (whole numbers), comma-separated; none removes the key.
    Seeds,
}

/// One field of the form: the key it edits and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The element id's suffix and a stable name for tests.
    pub id: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    /// The table (`""`: the root) and key.
    pub table: &'static str,
    pub key: &'static str,
    pub kind: Kind,
}

const DEVICE: Field = Field {
    id: "device",
    label: "Device",
    help: "cpu: burn's CPU backend; wgpu: the server's GPU.",
    table: "",
    key: "device",
    kind: Kind::Choice(&DEVICES),
};
const BASE_MODEL: Field = Field {
    id: "model",
    label: "Base model",
    help: "tiny (trained here from scratch), smollm2, or a Hugging Face folder under align-data.",
    table: "base",
    key: "model",
    kind: Kind::Text,
};

/// The form's fields for `action`.
pub fn fields(action: AlignAction) -> Vec<Field> {
    match action {
        AlignAction::Benchmark => vec![
            DEVICE,
            BASE_MODEL,
            Field {
                id: "defences",
                label: "Defences",
                help: "Each is aligned, then attacked at every p and n.",
                table: "grid",
                key: "defences",
                kind: Kind::Choices(&DEFENCES),
            },
            Field {
                id: "p",
                label: "Poison ratios p",
                help: "Shares of harmful samples in the user's data, e.g. 0, 0.05, 0.1.",
                table: "grid",
                key: "p",
                kind: Kind::Shares,
            },
            Field {
                id: "n",
                label: "Samples n",
                help: "Sizes of the user's fine-tuning data, e.g. 500, 1000.",
                table: "grid",
                key: "n",
                kind: Kind::Counts,
            },
            Field {
                id: "seeds",
                label: "Seeds",
                help: "Repeat the grid per seed (mean ± sd); empty: the configuration's seed once.",
                table: "grid",
                key: "seeds",
                kind: Kind::Seeds,
            },
        ],
        AlignAction::Attack | AlignAction::Lisa => {
            let mut fields = vec![DEVICE, BASE_MODEL];
            if action == AlignAction::Attack {
                fields.push(Field {
                    id: "defence",
                    label: "Defence",
                    help: "How the model is aligned (and, for lisa, fine-tuned).",
                    table: "attack",
                    key: "defence",
                    kind: Kind::Choice(&DEFENCES),
                });
            }
            fields.extend([
                Field {
                    id: "p",
                    label: "Poison ratio p",
                    help: "Share of harmful samples in the user's data.",
                    table: "attack",
                    key: "p",
                    kind: Kind::Share,
                },
                Field {
                    id: "n",
                    label: "Samples n",
                    help: "Size of the user's fine-tuning data.",
                    table: "attack",
                    key: "n",
                    kind: Kind::Count,
                },
            ]);
            fields
        }
        AlignAction::ToplaSummary => vec![
            DEVICE,
            Field {
                id: "model",
                label: "Fusion model",
                help: "The model fine-tuned to fuse the answers: smollm2, tiny, or a folder under align-data.",
                table: "model",
                key: "name",
                kind: Kind::Text,
            },
        ],
        AlignAction::Booster
        | AlignAction::Vaccine
        | AlignAction::H3Fusion
        | AlignAction::CtrBenchmark
        | AlignAction::PoseBenchmark => vec![DEVICE, BASE_MODEL],
    }
}

/// Why the form cannot show or write a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The TOML does not parse.
    #[error("the TOML does not parse: {message}")]
    Toml { message: String },
    /// A field's text is not what it expects.
    #[error("{label}: {problem}")]
    Value {
        label: &'static str,
        problem: String,
    },
}

fn parse(text: &str) -> Result<DocumentMut, FormError> {
    text.parse::<DocumentMut>().map_err(|e| FormError::Toml {
        message: e.message().trim().to_owned(),
    })
}

/// The table `name` of `root` (`""`: the root itself).
fn table<'a>(root: &'a Table, name: &str) -> Option<&'a Table> {
    if name.is_empty() {
        Some(root)
    } else {
        root.get(name)?.as_table()
    }
}

fn number(v: &Value) -> Option<String> {
    v.as_float()
        .map(|f| format!("{f:?}").trim_end_matches(".0").to_owned())
        .or_else(|| v.as_integer().map(|i| i.to_string()))
        .or_else(|| v.as_str().map(str::to_owned))
}

/// The value of `field` in `text`, as the form shows it (`""` where the key is absent).
///
/// # Errors
/// The TOML does not parse.
pub fn read(text: &str, field: &Field) -> Result<String, FormError> {
    let document = parse(text)?;
    let Some(item) = table(document.as_table(), field.table).and_then(|t| t.get(field.key)) else {
        return Ok(String::new());
    };
    Ok(match item.as_value() {
        Some(Value::Array(array)) => array
            .iter()
            .filter_map(number)
            .collect::<Vec<_>>()
            .join(", "),
        Some(v) => number(v).unwrap_or_default(),
        None => String::new(),
    })
}

/// The comma-separated items of `input`, without blanks.
fn items(input: &str) -> impl Iterator<Item = &str> {
    input.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn share(label: &'static str, item: &str) -> Result<f64, FormError> {
    match item.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(FormError::Value {
            label,
            problem: format!("{item:?} is not a share between 0 and 1"),
        }),
    }
}

fn count(label: &'static str, item: &str) -> Result<i64, FormError> {
    match item.parse::<i64>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(FormError::Value {
            label,
            problem: format!("{item:?} is not a whole number of at least 1"),
        }),
    }
}

fn name(label: &'static str, options: &[&str], item: &str) -> Result<String, FormError> {
    if options.contains(&item) {
        Ok(item.to_owned())
    } else {
        Err(FormError::Value {
            label,
            problem: format!("{item:?} is not one of {}", options.join(", ")),
        })
    }
}

/// The TOML value for `input` in `field`, or `None` to remove the key.
fn typed(field: &Field, input: &str) -> Result<Option<Value>, FormError> {
    let label = field.label;
    let list = |values: Vec<Value>| Some(Value::Array(values.into_iter().collect::<Array>()));
    let input = input.trim();
    Ok(match field.kind {
        Kind::Choice(options) => Some(name(label, options, input)?.into()),
        Kind::Text if input.is_empty() => {
            return Err(FormError::Value {
                label,
                problem: "give a name".to_owned(),
            });
        }
        Kind::Text => Some(input.into()),
        Kind::Share => Some(share(label, input)?.into()),
        Kind::Count => Some(count(label, input)?.into()),
        Kind::Choices(options) => {
            let chosen = items(input)
                .map(|i| name(label, options, i).map(Value::from))
                .collect::<Result<Vec<_>, _>>()?;
            if chosen.is_empty() {
                return Err(FormError::Value {
                    label,
                    problem: "choose at least one".to_owned(),
                });
            }
            list(chosen)
        }
        Kind::Shares | Kind::Counts => {
            let values = items(input)
                .map(|i| match field.kind {
                    Kind::Shares => share(label, i).map(Value::from),
                    _ => count(label, i).map(Value::from),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if values.is_empty() {
                return Err(FormError::Value {
                    label,
                    problem: "give at least one value".to_owned(),
                });
            }
            list(values)
        }
        Kind::Seeds => {
            let seeds = items(input)
                .map(|i| {
                    i.parse::<u32>()
                        .map(|s| Value::from(i64::from(s)))
                        .map_err(|_| FormError::Value {
                            label,
                            problem: format!("{i:?} is not a whole number from 0 to 4294967295"),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if seeds.is_empty() { None } else { list(seeds) }
        }
    })
}

/// `text` with `field` set from the form's `input` (the same as before where it is unchanged),
/// keeping the rest of the text as it was.
///
/// # Errors
/// The TOML does not parse, or `input` does not fit the field (naming it).
pub fn write(text: &str, field: &Field, input: &str) -> Result<String, FormError> {
    let mut document = parse(text)?;
    let new = typed(field, input)?;
    let root = document.as_table_mut();
    let table = if field.table.is_empty() {
        root
    } else {
        let entry = root
            .entry(field.table)
            .or_insert_with(|| Item::Table(Table::new()));
        match entry.as_table_mut() {
            Some(t) => t,
            None => {
                return Err(FormError::Value {
                    label: field.label,
                    problem: format!("[{}] is not a table in the TOML", field.table),
                });
            }
        }
    };
    match new {
        Some(new) => {
            // Keeps the comment after an existing value.
            let decor = table
                .get(field.key)
                .and_then(Item::as_value)
                .map(|v| v.decor().clone());
            let mut new = value(new);
            if let (Some(decor), Some(v)) = (decor, new.as_value_mut()) {
                *v.decor_mut() = decor;
            }
            table.insert(field.key, new);
        }
        None => {
            table.remove(field.key);
        }
    }
    Ok(document.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = include_str!("../../examples/attack-small.toml");

    fn field(action: AlignAction, id: &str) -> Field {
        fields(action).into_iter().find(|f| f.id == id).unwrap()
    }

    #[test]
    fn the_example_reads_as_its_grid() {
        let grid = |id| read(SMALL, &field(AlignAction::Benchmark, id)).unwrap();
        assert_eq!(grid("device"), "cpu");
        assert_eq!(grid("model"), "tiny");
        assert_eq!(grid("defences"), "sft, booster, vaccine, lisa");
        assert_eq!(grid("p"), "0, 0.5");
        assert_eq!(grid("n"), "40");
        assert_eq!(grid("seeds"), "");
        let attack = |id| read(SMALL, &field(AlignAction::Attack, id)).unwrap();
        assert_eq!(
            [attack("defence"), attack("p"), attack("n")],
            ["sft", "0.5", "40"]
        );
    }

    #[test]
    fn writing_changes_only_the_key_and_keeps_comments() {
        let p = field(AlignAction::Benchmark, "p");
        let text = write(SMALL, &p, "0, 0.05 , 0.1").unwrap();
        assert_eq!(read(&text, &p).unwrap(), "0, 0.05, 0.1");
        assert!(text.contains("p = [0.0, 0.05, 0.1]"), "{text}");
        let before: Vec<&str> = SMALL.lines().filter(|l| !l.starts_with("p = [")).collect();
        let after: Vec<&str> = text.lines().filter(|l| !l.starts_with("p = [")).collect();
        assert_eq!(
            before, after,
            "every other line, comments included, is kept"
        );
        // The same value gives the same text back.
        let again = write(&text, &p, "0, 0.05, 0.1").unwrap();
        assert_eq!(again, text);
    }

    #[test]
    fn seeds_are_added_and_removed() {
        let seeds = field(AlignAction::Benchmark, "seeds");
        let text = write(SMALL, &seeds, "1, 2,3").unwrap();
        assert_eq!(read(&text, &seeds).unwrap(), "1, 2, 3");
        let text = write(&text, &seeds, " ").unwrap();
        assert_eq!(read(&text, &seeds).unwrap(), "");
        assert!(!text.contains("seeds"), "{text}");
    }

    #[test]
    fn wrong_values_name_the_field_and_leave_the_text() {
        let cases = [
            (
                "p",
                "0, 1.5",
                "Poison ratios p: \"1.5\" is not a share between 0 and 1",
            ),
            ("p", "", "Poison ratios p: give at least one value"),
            (
                "n",
                "40, 0",
                "Samples n: \"0\" is not a whole number of at least 1",
            ),
            (
                "defences",
                "sft, rlhf",
                "Defences: \"rlhf\" is not one of sft, booster, vaccine, lisa",
            ),
            ("defences", "", "Defences: choose at least one"),
            ("device", "tpu", "Device: \"tpu\" is not one of cpu, wgpu"),
            ("model", " ", "Base model: give a name"),
            (
                "seeds",
                "-1",
                "Seeds: \"-1\" is not a whole number from 0 to 4294967295",
            ),
        ];
        for (id, input, message) in cases {
            let error = write(SMALL, &field(AlignAction::Benchmark, id), input).unwrap_err();
            assert_eq!(error.to_string(), message, "{id} = {input:?}");
        }
    }

    #[test]
    fn broken_toml_is_reported_not_overwritten() {
        let broken = "[base\nmodel = 1";
        let device = field(AlignAction::Benchmark, "device");
        assert!(matches!(read(broken, &device), Err(FormError::Toml { .. })));
        assert!(matches!(
            write(broken, &device, "cpu"),
            Err(FormError::Toml { .. })
        ));
    }

    #[test]
    fn a_missing_table_is_created_and_a_key_that_is_not_a_table_refused() {
        let text = write(
            "device = \"cpu\"\n",
            &field(AlignAction::Attack, "p"),
            "0.2",
        )
        .unwrap();
        assert_eq!(text, "device = \"cpu\"\n\n[attack]\np = 0.2\n");
        let error = write("attack = 3\n", &field(AlignAction::Attack, "p"), "0.2").unwrap_err();
        assert_eq!(
            error.to_string(),
            "Poison ratio p: [attack] is not a table in the TOML"
        );
    }

    #[test]
    fn every_action_has_a_device_and_a_model() {
        for action in AlignAction::ALL {
            let ids: Vec<&str> = fields(action).iter().map(|f| f.id).collect();
            assert_eq!(&ids[..2], ["device", "model"], "{action:?}");
        }
        let summary = field(AlignAction::ToplaSummary, "model");
        let text = include_str!("../../examples/llm-study/summary-server.toml");
        assert_eq!(read(text, &summary).unwrap(), "smollm2");
        let h3 = include_str!("../../examples/h3fusion-small.toml");
        assert_eq!(
            read(h3, &field(AlignAction::H3Fusion, "model")).unwrap(),
            "tiny"
        );
    }
}
