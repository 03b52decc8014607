//! The Protect page's plain logic: where its four steps stand, the names the protected photos
//! download under, and the zip of all of them.
//!
//! Plain logic, compiled natively too, so its unit tests run without a browser.

use std::collections::HashSet;
use std::io::{Cursor, Write as _};

use zip::{CompressionMethod, ZipWriter, result::ZipError, write::SimpleFileOptions};

/// The guided flow's steps, in order.
pub const STEPS: [&str; 4] = ["Your key", "Your photos", "Review", "Download"];

/// Where one step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Finished.
    Done,
    /// The one to do now.
    Current,
    /// After the current one.
    Waiting,
}

/// What the page holds, as the steps see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// A key is loaded.
    pub key: bool,
    /// Photos added.
    pub photos: usize,
    /// Photos still being decoded, searched for faces or protected.
    pub working: usize,
    /// Photos protected (with at least one face).
    pub protected: usize,
    /// A protected photo, or the zip of all, was downloaded.
    pub downloaded: bool,
}

/// The state of each of [`STEPS`]: the first step not finished is the current one.
pub fn steps(progress: &Progress) -> [StepState; 4] {
    let done = [
        progress.key,
        progress.key && progress.photos > 0,
        progress.key && progress.protected > 0 && progress.working == 0,
        progress.downloaded,
    ];
    let current = done.iter().position(|d| !d);
    std::array::from_fn(|i| match current {
        Some(c) if i == c => StepState::Current,
        Some(c) if i > c => StepState::Waiting,
        _ => StepState::Done,
    })
}

/// The extensions a protected photo may keep, per MIME type (the first is the default).
fn extensions(mime: &str) -> &'static [&'static str] {
    match mime {
        "image/jpeg" => &["jpg", "jpeg"],
        "image/webp" => &["webp"],
        _ => &["png"],
    }
}

/// `name` with `-protected` before its extension, which is kept when it fits `mime` (the
/// download's type) and replaced by that type's otherwise.
pub fn protected_name(name: &str, mime: &str) -> String {
    let (stem, original) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot + 1..]),
        _ => (name, ""),
    };
    let wanted = extensions(mime);
    let extension = if wanted.iter().any(|e| e.eq_ignore_ascii_case(original)) {
        original
    } else {
        wanted[0]
    };
    format!("{stem}-protected.{extension}")
}

/// `names` made distinct for one folder: a repeated name gets ` (2)`, ` (3)`… before its
/// extension, as browsers name repeated downloads.
pub fn distinct_names(names: &[String]) -> Vec<String> {
    let mut taken = HashSet::new();
    names
        .iter()
        .map(|name| {
            let (stem, extension) = match name.rfind('.') {
                Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
                _ => (name.as_str(), ""),
            };
            let mut candidate = name.clone();
            let mut n = 2;
            while !taken.insert(candidate.to_lowercase()) {
                candidate = format!("{stem} ({n}){extension}");
                n += 1;
            }
            candidate
        })
        .collect()
}

/// A zip of `files` (name, bytes), stored without compression: photos are compressed already,
/// so deflating them again would cost time and save nothing.
///
/// # Errors
/// The zip writer's, e.g. for a name repeated (see [`distinct_names`]).
pub fn zip_stored(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, ZipError> {
    let capacity = files.iter().map(|(n, b)| b.len() + 2 * n.len() + 128).sum();
    let mut writer = ZipWriter::new(Cursor::new(Vec::with_capacity(capacity)));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(files.iter().any(|(_, b)| b.len() >= u32::MAX as usize));
    for (name, bytes) in files {
        writer.start_file(name.as_str(), options)?;
        writer.write_all(bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn the_first_unfinished_step_is_current() {
        use StepState::{Current, Done, Waiting};
        let mut p = Progress::default();
        assert_eq!(steps(&p), [Current, Waiting, Waiting, Waiting]);
        p.key = true;
        assert_eq!(steps(&p), [Done, Current, Waiting, Waiting]);
        p.photos = 2;
        p.working = 2;
        assert_eq!(steps(&p), [Done, Done, Current, Waiting]);
        p.working = 0;
        assert_eq!(
            steps(&p),
            [Done, Done, Current, Waiting],
            "no face in any photo: nothing to review or download"
        );
        p.protected = 1;
        assert_eq!(steps(&p), [Done, Done, Done, Current]);
        p.downloaded = true;
        assert_eq!(steps(&p), [Done, Done, Done, Done]);
        p.working = 1;
        assert_eq!(
            steps(&p),
            [Done, Done, Current, Waiting],
            "a photo added later is reviewed, and downloaded, again"
        );
    }

    #[test]
    fn protected_names_keep_a_fitting_extension() {
        assert_eq!(protected_name("me.JPG", "image/jpeg"), "me-protected.JPG");
        assert_eq!(protected_name("me.jpeg", "image/jpeg"), "me-protected.jpeg");
        assert_eq!(
            protected_name("scan.heic", "image/png"),
            "scan-protected.png"
        );
        assert_eq!(
            protected_name("noext", "image/webp"),
            "noext-protected.webp"
        );
        assert_eq!(
            protected_name(".hidden", "image/png"),
            ".hidden-protected.png"
        );
        assert_eq!(protected_name("a.b.png", "image/png"), "a.b-protected.png");
    }

    #[test]
    fn repeated_names_are_numbered() {
        let names: Vec<String> = ["a.jpg", "b.jpg", "a.jpg", "A.JPG", "a (2).jpg", "x"]
            .map(str::to_owned)
            .into();
        assert_eq!(
            distinct_names(&names),
            [
                "a.jpg",
                "b.jpg",
                "a (2).jpg",
                "A (3).JPG",
                "a (2) (2).jpg",
                "x"
            ]
            .map(str::to_owned)
        );
        let names = vec!["x".to_owned(), "x".to_owned()];
        assert_eq!(distinct_names(&names), ["x", "x (2)"]);
    }

    #[test]
    fn the_zip_holds_every_file_unchanged() {
        let files = vec![
            ("a-protected.jpg".to_owned(), vec![0xff, 0xd8, 1, 2, 3]),
            ("b-protected.png".to_owned(), (0..=255).collect()),
            ("empty.png".to_owned(), Vec::new()),
        ];
        let bytes = zip_stored(&files).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        assert_eq!(archive.len(), files.len());
        for (name, content) in &files {
            let mut entry = archive.by_name(name).unwrap();
            assert_eq!(entry.compression(), CompressionMethod::Stored);
            let mut read = Vec::new();
            entry.read_to_end(&mut read).unwrap();
            assert_eq!(&read, content);
        }
    }

    #[test]
    fn a_repeated_name_is_refused_not_overwritten() {
        let files = vec![("a.png".to_owned(), vec![1]), ("a.png".to_owned(), vec![2])];
        assert!(zip_stored(&files).is_err());
    }
}
