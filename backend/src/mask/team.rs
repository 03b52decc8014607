//! `fuselab mask team`: each face model's identification outcomes on a labelled face set, as
//! a model pool for the ensemble engine.

use std::path::Path;

use anyhow::Context as _;
use burn::tensor::Device;

use super::{
    args::TeamArgs,
    verify::{identity, labelled_photos, mirrored},
    write_atomically,
};
use crate::face::{PhotoError, load_photo, load_stack};

pub(super) fn team(args: &TeamArgs, data_dir: &Path, device: Device) -> anyhow::Result<()> {
    let photos = labelled_photos(&args.photos)?;
    if photos.len() < 2 {
        return Err(PhotoError {
            path: args.photos.display().to_string(),
            what: "identification needs at least two photos".to_owned(),
        }
        .into());
    }
    let stack = load_stack(data_dir, device)?;
    // (identity, source photo, face) for every view.
    let mut views = Vec::new();
    for path in &photos {
        let image = load_photo(path)?;
        let who = identity(&args.photos, path);
        let mut images = vec![image];
        if args.mirror {
            images.push(mirrored(&images[0]));
        }
        for image in &images {
            let face = stack
                .faces(image)
                .into_iter()
                .next()
                .ok_or_else(|| PhotoError {
                    path: path.display().to_string(),
                    what: "no face found".to_owned(),
                })?;
            views.push((who.clone(), path.clone(), face));
        }
    }
    let mut names: Vec<String> = views.iter().map(|(w, _, _)| w.clone()).collect();
    names.sort();
    names.dedup();
    let class =
        |who: &str| u32::try_from(names.iter().position(|n| n == who).unwrap_or(0)).unwrap_or(0);
    // Leave-one-out: each view is identified by its nearest neighbour among the views of other
    // photos (its own mirror would be too easy a match).
    let predict = |model: usize| -> Vec<u32> {
        views
            .iter()
            .map(|(_, source, probe)| {
                let embedding = |f: &fuselab_ml::face::Face| {
                    if model == 0 {
                        f.dlib.clone()
                    } else {
                        f.faceres.clone()
                    }
                };
                let p = embedding(probe);
                views
                    .iter()
                    .filter(|(_, other, _)| other != source)
                    .map(|(who, _, f)| {
                        (
                            fuselab_ml::face::Verdict::between("", None, &p, &embedding(f))
                                .distance,
                            who,
                        )
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map_or(u32::MAX, |(_, who)| class(who))
            })
            .collect()
    };
    let input = fuselab_shared::ensemble::PoolInput {
        labels: views.iter().map(|(who, _, _)| class(who)).collect(),
        models: ["dlib", "faceres"]
            .iter()
            .enumerate()
            .map(|(m, name)| fuselab_shared::ensemble::ModelInput {
                name: (*name).to_owned(),
                predictions: Some(predict(m)),
                probabilities: None,
                logits: None,
            })
            .collect(),
        classes: Some(names.len()),
        splits: None,
    };
    if let Some(out) = &args.out {
        write_atomically(out, serde_json::to_string_pretty(&input)?.as_bytes())?;
        eprintln!(
            "wrote the outcomes to {} (fuselab ensemble analyze {0})",
            out.display()
        );
    }
    println!(
        "identification outcomes: {} views of {} people ({}), nearest neighbour among the other photos",
        views.len(),
        names.len(),
        names.join(", ")
    );
    let pool =
        fuselab_shared::ensemble::Pool::new(input).context("the outcomes are not a valid pool")?;
    print!("{}", crate::ensemble::analysis_table(&pool, 10)?);
    Ok(())
}
