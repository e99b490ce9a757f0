//! `dsync`: migrate and synchronise mailboxes with Dovecot dsync semantics.
//!
//! This binary stays thin: argument parsing, credentials, opening the two storages,
//! printing the report and mapping results to doveadm's exit codes. Everything else is in
//! the `dsync-core` library.

// Argument docs double as `--help` text, where `[...]` means "optional", not a doc link.
#![allow(rustdoc::broken_intra_doc_links)]

mod args;
mod credentials;
mod exit;
mod location;
mod open;
mod output;
mod state_file;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use clap::error::ErrorKind as ClapErrorKind;

use crate::args::{Cli, Command, SyncArgs};
use crate::exit::CliError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            let code = match error.kind() {
                ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion => 0,
                _ => exit::USAGE,
            };
            return ExitCode::from(code);
        }
    };
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("dsync: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<u8, CliError> {
    match &cli.command {
        Command::Backup(args) => backup(cli, args),
    }
}

fn backup(cli: &Cli, args: &SyncArgs) -> Result<u8, CliError> {
    let started = Instant::now();
    let source_location = location::parse(&args.source).map_err(CliError::Location)?;
    let destination_location = location::parse(&args.destination).map_err(CliError::Location)?;
    let (mut source, mut destination) = open::pair(&source_location, &destination_location, args)?;
    let state_file = (!args.no_state).then(|| {
        let path = args.state_file.clone().unwrap_or_else(|| destination.default_state_file());
        state_file::StateFile::new(path, source_location.to_string())
    });
    let state = state_file.as_ref().map(|file| file.load(cli.quiet));

    let options = dsync_core::SyncOptions::new(dsync_core::Mode::Backup)
        .commit_interval(args.commit_interval)
        .dry_run(args.dry_run)
        .state(state);
    let mut observer = output::Progress::new(cli.quiet, state_file.as_ref());
    let result =
        dsync_core::run(&options, source.as_storage(), destination.as_storage_mut(), &mut observer);
    let finish = destination.finish();
    // Whatever was synced is recorded, also after a failure: each recorded mailbox was
    // synced completely.
    let new_state = match &result {
        Ok(report) => report.state.as_ref(),
        Err(failed) => failed.report.state.as_ref(),
    };
    if let (Some(file), Some(new_state), false) = (&state_file, new_state, args.dry_run)
        && let Err(error) = file.save(new_state)
    {
        eprintln!("dsync: warning: cannot save the sync state: {error}");
    }
    let elapsed = started.elapsed();
    match result {
        Ok(report) => {
            finish.map_err(|error| CliError::Storage { side: "destination", error })?;
            output::print_report(
                &report,
                "backup",
                &source_location,
                &destination_location,
                elapsed,
                cli.quiet,
            );
            Ok(report.exit_code())
        }
        Err(failed) => {
            output::print_report(
                &failed.report,
                "backup",
                &source_location,
                &destination_location,
                elapsed,
                cli.quiet,
            );
            Err(CliError::Sync(failed))
        }
    }
}
