//! The CTR datasets: the common exposure layout, the seeded synthetic benchmark and the
//! MovieLens-100K proxy (hand-written atomic files here; the real ones from
//! `FUSELAB_ML100K_DIR` when it is set).

use fuselab_shared::ctr::exposure::{self, Dataset, Driver, Exposure, Extra, Split};
use fuselab_shared::ctr::movielens::{self, MovielensError, MovielensFiles, MovielensOptions};
use fuselab_shared::ctr::synthetic::{self, SyntheticConfig, SyntheticError};
use fuselab_shared::table;

/// Mann–Whitney AUC of `scores` against `labels`, ties counted half.
fn auc(scored: &mut [(f64, bool)]) -> f64 {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = scored.iter().filter(|s| s.1).count() as f64;
    let negatives = scored.len() as f64 - positives;
    let mut rank_sum = 0.0;
    let mut k = 0;
    while k < scored.len() {
        let mut end = k;
        while end < scored.len() && scored[end].0.total_cmp(&scored[k].0).is_eq() {
            end += 1;
        }
        // Ranks k+1..=end share their mean.
        let mean_rank = (k + 1 + end) as f64 / 2.0;
        rank_sum += mean_rank * scored[k..end].iter().filter(|s| s.1).count() as f64;
        k = end;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

fn all_rows(data: &Dataset) -> impl Iterator<Item = &Exposure> {
    Split::ALL.into_iter().flat_map(|s| data.split(s).iter())
}

fn truth(row: &Exposure) -> (f64, Driver) {
    match &row.extra {
        Extra::Synthetic(t) => (t.p_click, t.driver),
        other @ Extra::Movielens(_) => panic!("synthetic rows carry their truth, not {other:?}"),
    }
}

fn with_weight(trigger_weight: f64) -> SyntheticConfig {
    SyntheticConfig {
        trigger_weight,
        ..SyntheticConfig::default()
    }
}

/// Pages are contiguous, unique across splits, and every split's CSV has the header's width.
fn check_layout(data: &Dataset) {
    let mut seen = Vec::new();
    for split in Split::ALL {
        let rows = data.split(split);
        for span in exposure::pages(rows) {
            seen.push(rows[span.start].page_id);
        }
        let text = data.csv(split);
        let parsed: Vec<table::Row> = table::rows(&text).collect();
        assert_eq!(parsed[0].cells, data.columns());
        assert_eq!(parsed.len(), rows.len() + 1);
        assert!(parsed.iter().all(|r| r.cells.len() == data.columns().len()));
    }
    let pages = seen.len();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), pages, "a page id appears in two places");
}

#[test]
fn synthetic_output_is_a_function_of_the_configuration() {
    let config = SyntheticConfig {
        pages: 3000,
        ..SyntheticConfig::default()
    };
    let a = synthetic::generate(&config).unwrap();
    let b = synthetic::generate(&config).unwrap();
    for split in Split::ALL {
        assert_eq!(a.csv(split), b.csv(split));
    }
    let other = synthetic::generate(&SyntheticConfig { seed: 1, ..config }).unwrap();
    assert_ne!(a.csv(Split::Train), other.csv(Split::Train));
    check_layout(&a);
    let header = a.csv(Split::Test);
    assert!(header.starts_with(
        "page_id,user_id,item_id,item_cat,trigger_id,trigger_cat,scenario,hist_item_id,hist_cat,\
         neg_item_id,neg_cat,click,p_click,driver\n"
    ));
    // The negative sequence is the user's unclicked candidates on earlier pages, the last 20.
    let mut rows: Vec<&Exposure> = all_rows(&a).collect();
    rows.sort_by_key(|r| r.page_id);
    let mut unclicked = vec![Vec::new(); config.users];
    for page in rows.chunk_by(|x, y| x.page_id == y.page_id) {
        let seen: &mut Vec<u32> = &mut unclicked[page[0].user_id as usize];
        for r in page {
            assert_eq!(&r.neg_item_id, seen);
            assert_eq!(r.neg_cat.len(), r.neg_item_id.len());
        }
        seen.extend(page.iter().filter(|r| !r.click).map(|r| r.item_id));
        let excess = seen.len().saturating_sub(20);
        seen.drain(..excess);
    }
    let summary = serde_json::to_value(a.summary()).unwrap();
    assert_eq!(summary["counts"]["pages"], 3000);
    assert_eq!(summary["train"]["pages"], 2400);
}

#[test]
fn synthetic_click_rate_and_true_auc_are_in_range() {
    for weight in [0.2, 0.8] {
        let data = synthetic::generate(&with_weight(weight)).unwrap();
        let mut scored: Vec<(f64, bool)> = all_rows(&data).map(|r| (truth(r).0, r.click)).collect();
        let rate = scored.iter().filter(|s| s.1).count() as f64 / scored.len() as f64;
        let mean_p = scored.iter().map(|s| s.0).sum::<f64>() / scored.len() as f64;
        let auc = auc(&mut scored);
        let s = data.summary();
        println!(
            "trigger_weight {weight}: rows {} / {} / {}, pages {} / {} / {}, click rate {rate:.4} \
             (train {:.4}, valid {:.4}, test {:.4}), mean p {mean_p:.4}, true-p AUC {auc:.4}",
            s.train.rows,
            s.valid.rows,
            s.test.rows,
            s.train.pages,
            s.valid.pages,
            s.test.pages,
            s.train.click_rate,
            s.valid.click_rate,
            s.test.click_rate
        );
        assert!((0.05..=0.20).contains(&rate), "click rate {rate}");
        assert!(
            (rate - mean_p).abs() < 0.01,
            "clicks follow p: {rate} vs {mean_p}"
        );
        assert!((0.72..=0.9).contains(&auc), "true-p AUC {auc}");
    }
}

#[test]
fn the_trigger_knob_decides_the_drivers_and_what_predicts_clicks() {
    let small = |weight| SyntheticConfig {
        pages: 4000,
        ..with_weight(weight)
    };
    let only_trigger = synthetic::generate(&small(1.0)).unwrap();
    assert!(all_rows(&only_trigger).all(|r| truth(r).1 == Driver::Trigger));
    assert!(!only_trigger.csv(Split::Train).contains(",scenario\n"));
    let only_scenario = synthetic::generate(&small(0.0)).unwrap();
    assert!(all_rows(&only_scenario).all(|r| truth(r).1 == Driver::Scenario));
    assert!(!only_scenario.csv(Split::Train).contains(",trigger\n"));
    // The world and the pages do not depend on the knob, only the drivers and the clicks.
    let ids = |d: &Dataset| {
        all_rows(d)
            .map(|r| (r.page_id, r.user_id, r.item_id, r.trigger_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&only_trigger), ids(&only_scenario));
    // Sharing the trigger's category predicts a click when the trigger drives the page.
    let same_category_auc = |d: &Dataset| {
        let mut scored: Vec<(f64, bool)> = all_rows(d)
            .map(|r| (f64::from(u8::from(r.item_cat == r.trigger_cat)), r.click))
            .collect();
        auc(&mut scored)
    };
    let (high, low) = (
        same_category_auc(&only_trigger),
        same_category_auc(&only_scenario),
    );
    println!("AUC of item_cat == trigger_cat: {high:.4} (trigger-driven), {low:.4} (scenario)");
    assert!(high > low + 0.05, "{high} vs {low}");
}

#[test]
fn synthetic_validation_names_the_field() {
    let refuse = |config: SyntheticConfig, needle: &str| {
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
        assert!(synthetic::generate(&config).is_err());
        err
    };
    let base = SyntheticConfig::default;
    refuse(
        SyntheticConfig {
            users: 1_000_000_000,
            ..base()
        },
        "users",
    );
    refuse(SyntheticConfig { dim: 0, ..base() }, "dim");
    refuse(
        SyntheticConfig {
            trigger_weight: f64::NAN,
            ..base()
        },
        "trigger_weight",
    );
    refuse(
        SyntheticConfig {
            trigger_weight: 1.5,
            ..base()
        },
        "trigger_weight",
    );
    refuse(
        SyntheticConfig {
            items: 8,
            categories: 4,
            ..base()
        },
        "page_size[1]",
    );
    refuse(
        SyntheticConfig {
            split: [0.9, 0.2],
            ..base()
        },
        "split",
    );
    let err = refuse(
        SyntheticConfig {
            pages: 1_000_000,
            ..base()
        },
        "rows",
    );
    assert!(matches!(err, SyntheticError::TooLarge { .. }));
    refuse(
        SyntheticConfig {
            users: 1_000_000,
            items: 1_000_000,
            ..base()
        },
        "work",
    );
}

const ITEMS: &str = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
1\tToy Story\t1995\tAnimation Children's Comedy\n\
2\tGoldenEye\t1995\tAction Adventure Thriller\n\
3\tFour Rooms\t1995\tThriller\n\
4\tGet Shorty\t1995\tAction Comedy Drama\n\
5\tCopycat\t1995\tCrime Drama Thriller\n";

const USERS: &str = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n\
1\t24\tM\ttechnician\t85711\n\
2\t53\tF\tother\t94043\n";

/// User 1: a lone positive at t=10, a page at t=20 (items 2, 3; triggered by 1), a page at t=30
/// (items 4, 5; triggered by 2, the last positive at t=20; negative sequence: 3). User 2: a page
/// at t=15 with no earlier positive (dropped), then one at t=25 triggered by its item 5 (page
/// t=15's positive; negative sequence: 1).
const INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
1\t1\t5\t10\n\
1\t3\t2\t20\n\
1\t2\t4\t20\n\
1\t5\t3\t30\n\
1\t4\t5\t30\n\
2\t5\t4\t15\n\
2\t1\t1\t15\n\
2\t3\t5\t25\n\
2\t2\t1\t25\n";

fn tiny(inter: &str) -> Result<Dataset, MovielensError> {
    let files = MovielensFiles {
        inter,
        item: ITEMS,
        user: USERS,
    };
    movielens::build(&files, &MovielensOptions::default())
}

#[test]
fn movielens_pages_triggers_histories_and_time_splits() {
    let data = tiny(INTER).unwrap();
    assert_eq!(
        data.categories,
        ["Action", "Animation", "Crime", "Thriller"]
    );
    let counts = |key: &str| data.counts[key];
    assert_eq!(
        (
            counts("ratings"),
            counts("rating_groups"),
            counts("pages_min_size")
        ),
        (9, 5, 4)
    );
    assert_eq!((counts("pages_without_trigger"), counts("pages")), (1, 3));
    // Three pages in time order (t=20 user 1, t=25 user 2, t=30 user 1): 80 % of 3 rounds to 2.
    let train = data.csv(Split::Train);
    assert_eq!(
        train,
        "page_id,user_id,item_id,item_cat,trigger_id,trigger_cat,scenario,hist_item_id,hist_cat,\
         neg_item_id,neg_cat,click,age,gender,occupation\n\
         p000000,u1,i2,c0,i1,c1,s1,i1,c1,,,1,20,M,technician\n\
         p000000,u1,i3,c3,i1,c1,s1,i1,c1,,,0,20,M,technician\n\
         p000001,u2,i2,c0,i5,c2,s2,i5,c2,i1,c1,0,50,F,other\n\
         p000001,u2,i3,c3,i5,c2,s2,i5,c2,i1,c1,1,50,F,other\n"
    );
    assert_eq!(data.valid.len(), 0);
    assert_eq!(
        data.csv(Split::Test),
        "page_id,user_id,item_id,item_cat,trigger_id,trigger_cat,scenario,hist_item_id,hist_cat,\
         neg_item_id,neg_cat,click,age,gender,occupation\n\
         p000002,u1,i4,c0,i2,c0,s0,i1^i2,c1^c0,i3,c3,1,20,M,technician\n\
         p000002,u1,i5,c2,i2,c0,s0,i1^i2,c1^c0,i3,c3,0,20,M,technician\n"
    );
    let summary = data.summary();
    assert_eq!((summary.train.pages, summary.train.users), (2, 2));
    assert!((summary.test.click_rate - 0.5).abs() < 1e-12);
    check_layout(&data);
}

#[test]
fn movielens_history_is_bounded_and_min_page_is_honoured() {
    let options = MovielensOptions {
        max_history: 1,
        min_page: 1,
        split: [1.0, 0.0],
        ..MovielensOptions::default()
    };
    let files = MovielensFiles {
        inter: INTER,
        item: ITEMS,
        user: USERS,
    };
    let data = movielens::build(&files, &options).unwrap();
    // Single-rating groups are pages now: user 1's t=10 has no trigger, like user 2's t=15.
    assert_eq!(data.counts["pages_min_size"], 5);
    assert_eq!(data.counts["pages"], 3);
    assert!(data.train.iter().all(|r| r.hist_item_id.len() == 1));
    assert_eq!(data.train.last().unwrap().hist_item_id, [2]);
}

#[test]
fn movielens_errors_name_the_file_line_and_column() {
    let bad_rating = INTER.replacen("1\t3\t2\t20", "1\t3\tx\t20", 1);
    assert_eq!(
        tiny(&bad_rating).unwrap_err().to_string(),
        "ml-100k.inter line 3, column rating: expected a number, found 'x'"
    );
    let bad_user = INTER.replacen("2\t3\t5\t25", "u2\t3\t5\t25", 1);
    assert_eq!(
        tiny(&bad_user).unwrap_err().to_string(),
        "ml-100k.inter line 9, column user_id: expected a whole-number id, found 'u2'"
    );
    let bad_time = INTER.replacen("1\t5\t3\t30", "1\t5\t3\t30.5", 1);
    assert!(
        tiny(&bad_time)
            .unwrap_err()
            .to_string()
            .contains("line 5, column timestamp: expected whole seconds, found '30.5'")
    );
    let short = format!("{INTER}1\t2\t3\n");
    assert_eq!(
        tiny(&short).unwrap_err().to_string(),
        "ml-100k.inter line 11: expected 4 tab-separated fields, found 3"
    );
    let unknown = format!("{INTER}1\t9\t3\t40\n");
    assert_eq!(
        tiny(&unknown).unwrap_err().to_string(),
        "ml-100k.inter line 11, column item_id: 9 is not in ml-100k.item"
    );
    let no_rating = INTER.replacen("rating:float", "score:float", 1);
    let err = tiny(&no_rating).unwrap_err();
    assert!(
        matches!(
            err,
            MovielensError::MissingColumn {
                column: "rating",
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(tiny(""), Err(MovielensError::Empty { .. })));
    let files = MovielensFiles {
        inter: INTER,
        item: ITEMS,
        user: &USERS.replacen("\t53\t", "\tfifty\t", 1),
    };
    assert_eq!(
        movielens::build(&files, &MovielensOptions::default())
            .unwrap_err()
            .to_string(),
        "ml-100k.user line 3, column age: expected an age in whole years, found 'fifty'"
    );
}

#[test]
fn movielens_refuses_files_over_the_row_limit() {
    let mut inter = String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
    for _ in 0..=movielens::MAX_RATINGS {
        inter.push_str("1\t1\t5\t1\n");
    }
    assert!(matches!(
        tiny(&inter),
        Err(MovielensError::TooManyRows {
            limit: movielens::MAX_RATINGS,
            ..
        })
    ));
}

/// Co-click, co-non-click and mono-click pairs of the pages of `rows`.
fn pair_counts(rows: &[Exposure]) -> [usize; 3] {
    let mut counts = [0; 3];
    for span in exposure::pages(rows) {
        let n = span.len();
        let k = rows[span].iter().filter(|r| r.click).count();
        counts[0] += k * k.saturating_sub(1) / 2;
        counts[1] += (n - k) * (n - k).saturating_sub(1) / 2;
        counts[2] += k * (n - k);
    }
    counts
}

/// The real files, when `FUSELAB_ML100K_DIR` names the folder that holds them (`RecBole` 1.2.1's
/// `recbole/dataset_example/ml-100k`). Checked against the counts measured in spec §7.1.
#[test]
fn movielens_100k_matches_the_measured_counts() {
    let Some(dir) = std::env::var_os("FUSELAB_ML100K_DIR") else {
        println!("skipped: set FUSELAB_ML100K_DIR to the folder of RecBole 1.2.1's ml-100k files");
        return;
    };
    let read = |name: &str| {
        std::fs::read_to_string(std::path::Path::new(&dir).join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let (inter, item, user) = (
        read(movielens::INTER_FILE),
        read(movielens::ITEM_FILE),
        read(movielens::USER_FILE),
    );
    let files = MovielensFiles {
        inter: &inter,
        item: &item,
        user: &user,
    };
    let data = movielens::build(&files, &MovielensOptions::default()).unwrap();
    let c = |key: &str| data.counts[key];
    assert_eq!((c("ratings"), c("users"), c("items")), (100_000, 943, 1682));
    // Spec §7.1: 25,211 pages of ≥2 items; 746 of them have no earlier positive rating.
    assert_eq!(c("pages_min_size"), 25_211);
    assert_eq!((c("pages_without_trigger"), c("pages")), (746, 24_465));
    let s = data.summary();
    assert_eq!(
        (s.train.pages, s.valid.pages, s.test.pages),
        (19_572, 2447, 2446)
    );
    assert_eq!(
        (s.train.rows, s.valid.rows, s.test.rows),
        (58_408, 7280, 7694)
    );
    let rows: Vec<Exposure> = all_rows(&data).cloned().collect();
    let clicks = rows.iter().filter(|r| r.click).count();
    let max_page = exposure::pages(&rows)
        .iter()
        .map(ExactSizeIterator::len)
        .max();
    println!(
        "ml-100k proxy: {} rows, {} pages, click rate {:.4} (train {:.4}, valid {:.4}, test \
         {:.4}), largest page {max_page:?}, pairs (co-click, co-non-click, mono-click) {:?}",
        rows.len(),
        c("pages"),
        clicks as f64 / rows.len() as f64,
        s.train.click_rate,
        s.valid.click_rate,
        s.test.click_rate,
        pair_counts(&rows)
    );
    assert_eq!(data.categories.len(), 19);
    assert!(
        rows.iter()
            .all(|r| !r.hist_item_id.is_empty() && r.hist_item_id.len() <= 50)
    );
    assert!(rows.iter().all(|r| r.neg_item_id.len() <= 50));
    let with_negatives = rows.iter().filter(|r| !r.neg_item_id.is_empty()).count();
    println!("rows with a negative sequence: {with_negatives}");
    assert!(
        rows.iter()
            .all(|r| r.hist_item_id.last() == Some(&r.trigger_id))
    );
    check_layout(&data);
}
