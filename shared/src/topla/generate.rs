//! Question sets generated from templates with known answers (for studies that must run
//! offline): grade-school word problems in `GSM8K`'s format (`#### N`) and four-choice
//! questions in `MMLU`'s format (arithmetic, unit conversions, comparisons, ordering). The same
//! seed gives the same set.

use super::records::{GENERATED_SOURCE, Question, Task};
use crate::rng::SplitMix64;

const NAMES: [&str; 12] = [
    "Ali", "Bea", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jade", "Kofi", "Lena",
];
const ITEMS: [&str; 10] = [
    "apples", "marbles", "stickers", "pencils", "cookies", "books", "stamps", "shells", "cards",
    "eggs",
];

fn pick<'a>(rng: &mut SplitMix64, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len())]
}

/// `lo..=hi`.
fn int(rng: &mut SplitMix64, lo: u64, hi: u64) -> u64 {
    lo + rng.below((hi - lo + 1) as usize) as u64
}

/// One word problem: (template, question, worked answer, result).
fn word_problem(rng: &mut SplitMix64) -> (&'static str, String, String, u64) {
    let name = pick(rng, &NAMES);
    let item = pick(rng, &ITEMS);
    match rng.below(6) {
        0 => {
            let (a, b) = (int(rng, 3, 60), int(rng, 2, 40));
            let sum = a + b;
            (
                "addition",
                format!(
                    "{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?"
                ),
                format!("{name} has {a} + {b} = {sum} {item}."),
                sum,
            )
        }
        1 => {
            let (b, left) = (int(rng, 2, 30), int(rng, 1, 40));
            let a = b + left;
            (
                "subtraction",
                format!(
                    "{name} had {a} {item} and gave {b} of them to a friend. How many {item} does {name} have left?"
                ),
                format!("{name} has {a} - {b} = {left} {item} left."),
                left,
            )
        }
        2 => {
            let (packs, each) = (int(rng, 2, 9), int(rng, 2, 12));
            let total = packs * each;
            (
                "multiplication",
                format!(
                    "{name} buys {packs} packs of {item}. Each pack has {each} {item}. How many {item} does {name} buy?"
                ),
                format!("{name} buys {packs} * {each} = {total} {item}."),
                total,
            )
        }
        3 => {
            let (friends, each) = (int(rng, 2, 9), int(rng, 2, 12));
            let total = friends * each;
            (
                "division",
                format!(
                    "{name} shares {total} {item} equally among {friends} friends. How many {item} does each friend get?"
                ),
                format!("Each friend gets {total} / {friends} = {each} {item}."),
                each,
            )
        }
        4 => {
            let (start, packs, each) = (int(rng, 1, 20), int(rng, 2, 6), int(rng, 2, 10));
            let bought = packs * each;
            let total = start + bought;
            (
                "two-step",
                format!(
                    "{name} has {start} {item}. Then {name} buys {packs} boxes with {each} {item} in each box. How many {item} does {name} have now?"
                ),
                format!(
                    "The boxes hold {packs} * {each} = {bought} {item}.\n{name} has {start} + {bought} = {total} {item}."
                ),
                total,
            )
        }
        _ => {
            let (price, count) = (int(rng, 2, 15), int(rng, 2, 8));
            let cost = price * count;
            (
                "money",
                format!(
                    "A notebook costs ${price}. {name} buys {count} notebooks. How many dollars does {name} pay?"
                ),
                format!("{name} pays {count} * {price} = ${cost}."),
                cost,
            )
        }
    }
}

/// Four distinct choices holding `right` and three of `wrong` (in order, skipping repeats),
/// shuffled: the choices as text and the right one's index.
fn shuffle_choices(rng: &mut SplitMix64, right: &str, wrong: Vec<String>) -> ([String; 4], usize) {
    let mut choices = vec![right.to_owned()];
    for w in wrong {
        if choices.len() < 4 && !choices.contains(&w) {
            choices.push(w);
        }
    }
    let mut filler = 1;
    while choices.len() < 4 {
        let extra = format!("{right} ({filler})");
        filler += 1;
        if !choices.contains(&extra) {
            choices.push(extra);
        }
    }
    for i in (1..4).rev() {
        let j = rng.below(i + 1);
        choices.swap(i, j);
    }
    let answer = choices
        .iter()
        .position(|c| c.as_str() == right)
        .unwrap_or(0);
    let choices: [String; 4] = [
        choices[0].clone(),
        choices[1].clone(),
        choices[2].clone(),
        choices[3].clone(),
    ];
    (choices, answer)
}

/// One four-choice question: (subject, question, choices, answer index).
fn choice_question(rng: &mut SplitMix64) -> (&'static str, String, [String; 4], usize) {
    match rng.below(4) {
        0 => {
            let (a, b) = (int(rng, 3, 12), int(rng, 3, 12));
            let p = a * b;
            let wrong = [p + a, p - b, p + 10, p - 1, p + 2]
                .map(|v| v.to_string())
                .to_vec();
            let (choices, answer) = shuffle_choices(rng, &p.to_string(), wrong);
            (
                "arithmetic",
                format!("What is {a} times {b}?"),
                choices,
                answer,
            )
        }
        1 => {
            const UNITS: [(&str, &str, u64); 4] = [
                ("centimetres", "metres", 100),
                ("grams", "kilograms", 1000),
                ("minutes", "hours", 60),
                ("millilitres", "litres", 1000),
            ];
            let (small, large, factor) = UNITS[rng.below(UNITS.len())];
            let n = int(rng, 2, 9);
            let right = n * factor;
            let wrong = [n * 10, n * factor * 10, n + factor, n * factor / 10 + n]
                .map(|v| v.to_string())
                .to_vec();
            let (choices, answer) = shuffle_choices(rng, &right.to_string(), wrong);
            (
                "unit conversion",
                format!("How many {small} are in {n} {large}?"),
                choices,
                answer,
            )
        }
        2 => {
            let mut values: Vec<u64> = Vec::new();
            while values.len() < 4 {
                let v = int(rng, 10, 99);
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            let largest = rng.chance(0.5);
            let right = if largest {
                values.iter().max()
            } else {
                values.iter().min()
            }
            .copied()
            .unwrap_or(0);
            let wrong = values
                .iter()
                .filter(|&&v| v != right)
                .map(u64::to_string)
                .collect();
            let (choices, answer) = shuffle_choices(rng, &right.to_string(), wrong);
            let which = if largest { "largest" } else { "smallest" };
            (
                "comparison",
                format!("Which number is the {which}?"),
                choices,
                answer,
            )
        }
        _ => {
            let mut values: Vec<u64> = Vec::new();
            while values.len() < 3 {
                let v = int(rng, 1, 50);
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            values.sort_unstable();
            let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
            let (a, b, c) = (values[0], values[1], values[2]);
            let wrong = [[b, a, c], [c, b, a], [a, c, b], [b, c, a]]
                .iter()
                .map(|v| list(v))
                .collect();
            let (choices, answer) = shuffle_choices(rng, &list(&values), wrong);
            (
                "ordering",
                "Which list is sorted from smallest to largest?".to_owned(),
                choices,
                answer,
            )
        }
    }
}

/// `count` questions of `task`'s format from `seed`; ids are `<task>-<n>` (1-based).
pub fn generate_questions(task: Task, count: usize, seed: u64) -> Vec<Question> {
    let mut rng = SplitMix64(seed);
    (1..=count)
        .map(|n| {
            let id = format!("{}-{n:04}", task.name());
            match task {
                Task::Gsm8k => {
                    let (subject, question, worked, result) = word_problem(&mut rng);
                    Question {
                        id,
                        question,
                        choices: None,
                        answer: format!("{worked}\n#### {result}").into(),
                        subject: Some(subject.to_owned()),
                        source: Some(GENERATED_SOURCE.to_owned()),
                    }
                }
                Task::Mmlu => {
                    let (subject, question, choices, answer) = choice_question(&mut rng);
                    Question {
                        id,
                        question,
                        choices: Some(choices),
                        answer: answer.into(),
                        subject: Some(subject.to_owned()),
                        source: Some(GENERATED_SOURCE.to_owned()),
                    }
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topla::records::{Gold, parse_questions};

    #[test]
    fn generated_sets_parse_back_with_their_answers() {
        for task in [Task::Gsm8k, Task::Mmlu] {
            let questions = generate_questions(task, 200, 7);
            assert_eq!(questions, generate_questions(task, 200, 7));
            let text: String = questions
                .iter()
                .map(|q| serde_json::to_string(q).unwrap() + "\n")
                .collect();
            let set = parse_questions("gen.jsonl", &text, task).unwrap();
            assert_eq!(set.questions.len(), 200);
            assert!(set.generated());
            for (q, gold) in set.questions.iter().zip(&set.gold) {
                match (gold, &q.choices) {
                    (Gold::Choice(i), Some(choices)) => {
                        let mut unique = choices.to_vec();
                        unique.sort();
                        unique.dedup();
                        assert_eq!(unique.len(), 4, "{q:?}");
                        assert!(*i < 4);
                    }
                    (Gold::Number(v), None) => assert!(*v >= 0.0 && v.fract() == 0.0),
                    other => panic!("{other:?}"),
                }
            }
        }
        // The arithmetic is right: a multiplication question's answer is the product.
        let q = generate_questions(Task::Mmlu, 50, 3)
            .into_iter()
            .find(|q| q.subject.as_deref() == Some("arithmetic"))
            .unwrap();
        let numbers: Vec<u64> = q
            .question
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse().ok())
            .collect();
        let choices = q.choices.unwrap();
        let index = q.answer.as_u64().unwrap() as usize;
        assert_eq!(choices[index], (numbers[0] * numbers[1]).to_string());
    }
}
