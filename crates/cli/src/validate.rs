//! `sluice validate --config FILE`: every problem in a pipeline file at once.
//!
//! Nothing connects: this is the same validation `sluice run` performs before
//! it touches a server, so a file that validates will not be refused later
//! for its shape (servers may still refuse it for their own reasons).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The pipeline file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
}

pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    match sluice_config::load(&args.config) {
        Ok(pipeline) => {
            println!("OK: pipeline `{}`", pipeline.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            // One error per line, FILE:LINE:COL: key.path: message.
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
