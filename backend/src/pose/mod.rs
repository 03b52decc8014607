//! `fuselab pose`: video human-pose estimation (JM-Pose, spec `pose.md`). `data synthetic`
//! writes the synthetic video benchmark with exact ground truth.

pub mod data;

use std::path::Path;

use clap::Subcommand;

/// `fuselab pose …`.
#[derive(Debug, Subcommand)]
pub enum PoseCommand {
    /// Build a dataset
    #[command(subcommand)]
    Data(data::DataCommand),
}

/// Runs a `pose` command.
///
/// # Errors
/// A bad option or configuration, or an unwritable folder.
pub fn command(command: &PoseCommand, _data_dir: &Path) -> anyhow::Result<()> {
    match command {
        PoseCommand::Data(data) => data::command(data),
    }
}
