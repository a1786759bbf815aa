//! `sluice validate [--strict] FILE` (or `--config FILE`): every problem in a
//! pipeline file at once.
//!
//! Nothing connects: this is the same validation `sluice run` performs before
//! it touches a server, so a file that validates will not be refused later
//! for its shape (servers may still refuse it for their own reasons).
//!
//! Undefined `${VAR}`s: validate usually runs where the file is written, not
//! where its secrets live, so an undefined variable is a *warning* naming
//! `FILE:LINE:COL` (exit 0, `OK` says how many): every other check still
//! runs on its section. `sluice run` (and the command that uses the section)
//! refuses it. `--strict` makes them errors, as `sluice run` sees them — for
//! a check on the host that will run the pipeline. A malformed reference
//! (`${1x}`, an unclosed `${`) is always an error, and a file with any error
//! lists its undefined variables as errors too (as `sluice run` sees it).

use std::path::PathBuf;
use std::process::ExitCode;

use sluice_config::{ConfigError, Uses};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["config", "file"])))]
pub struct ValidateArgs {
    /// The pipeline file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The pipeline file (the same as --config FILE).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Undefined `${VAR}`s are errors (as for `sluice run`), not warnings.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = args.config.as_ref().or(args.file.as_ref()) else {
        anyhow::bail!("give the pipeline file: sluice validate FILE");
    };
    let uses = if args.strict {
        Uses::All
    } else {
        Uses::NOTHING
    };
    match sluice_config::load_for(path, uses) {
        Ok(loaded) => {
            for undefined in &loaded.unresolved {
                eprintln!("{}", warning(undefined));
            }
            match loaded.unresolved.len() {
                0 => println!("OK: pipeline `{}`", loaded.pipeline.name),
                n => println!(
                    "OK: pipeline `{}`; {n} undefined variable{} (warned above) must be set for `sluice run`",
                    loaded.pipeline.name,
                    if n == 1 { "" } else { "s" }
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            // The file is refused anyway: list every problem as `sluice
            // run` sees it, undefined variables included, so that one pass
            // fixes them all.
            let errors = match sluice_config::load_for(path, Uses::All) {
                Err(all) => all,
                Ok(_) => errors,
            };
            // One error per line, FILE:LINE:COL: key.path: message.
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `FILE:LINE:COL: warning: key.path: message`.
fn warning(e: &ConfigError) -> String {
    let mut out = e.origin.clone();
    if let Some((line, col)) = e.position {
        out.push_str(&format!(":{line}:{col}"));
    }
    out.push_str(": warning: ");
    if !e.path.is_empty() {
        out.push_str(&e.path);
        out.push_str(": ");
    }
    out.push_str(&e.message);
    out
}
