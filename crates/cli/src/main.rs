//! `dsync`: migrate and synchronise mailboxes with Dovecot dsync semantics.
//!
//! This binary stays thin: argument parsing, the config file, credentials, progress, logs
//! and mapping results to doveadm's exit codes. Everything else is in the `dsync-core`
//! library.

// Argument docs double as `--help` text, where `[...]` means "optional", not a doc link.
#![allow(rustdoc::broken_intra_doc_links)]

// Every `print!`/`println!` of the crate goes through `stdout`, so that a reader closing
// the pipe early ends the output quietly instead of panicking (declared before the modules
// so that they see these, not std's).
macro_rules! print {
    ($($arg:tt)*) => { $crate::stdout::print(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::stdout::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::stdout::print(format_args!("{}\n", format_args!($($arg)*))) };
}

mod advice;
mod args;
mod batch;
mod command;
mod config;
mod credentials;
mod dovecot_state;
mod exit;
mod features;
mod filters;
mod home;
mod inspect;
mod interrupt;
mod job;
mod location;
mod lock;
mod logging;
mod man;
mod open;
mod output;
mod progress;
mod settings;
mod sieve;
mod stdout;
mod timing;
mod verify;
mod workers;

use std::process::ExitCode;

use clap::error::ErrorKind as ClapErrorKind;
use clap::{CommandFactory, Parser};
use dsync_core::Mode;

use crate::args::{Cli, Command, MailboxCommand};
use crate::command::Context;
use crate::config::ConfigFile;
use crate::exit::CliError;
use crate::logging::{Stderr, Verbosity};
use crate::progress::Display;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // clap's own code for usage errors is 2, which doveadm users read as "run
            // again": usage errors are 64 (EX_USAGE) here.
            // Help or the version asked for is a success; help shown because the verb is
            // missing (`dsync`, `dsync mailbox`) is a usage error like any other.
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
    let verbosity = Verbosity { quiet: cli.quiet, verbose: cli.verbose, debug: cli.debug };
    let progress_interval = progress_interval(&cli.command);
    let display = Display::choose(cli.quiet, cli.verbose || cli.debug, progress_interval);
    let stderr = Stderr::new(display.bars());
    logging::init(verbosity, stderr.clone());
    let config = match &cli.config {
        Some(path) => ConfigFile::load(path).map_err(|e| CliError::Config(e.to_string()))?,
        None => ConfigFile::default(),
    };
    if let Some(refusal) = doveadm_only_refusal(&cli.command) {
        return Err(CliError::Usage(refusal));
    }
    if matches!(&cli.command, Command::Backup(_) | Command::Sync(_) | Command::Import(_))
        && let Err(error) = interrupt::install(stderr.clone())
    {
        tracing::warn!("Ctrl-C will end the run at once: {error}");
    }
    let context = Context { verbosity, display, stderr, config, settings: cli.settings.clone() };
    match &cli.command {
        Command::Backup(args) => {
            let mut task = command::task("backup", Mode::Backup, &args.state, &args.run)?;
            task.verify = args.verify;
            let positional = (args.locations.source.as_ref(), args.locations.destination.as_ref());
            command::sync(&context, &task, positional, args.reverse, &args.run)
        }
        Command::Sync(args) => {
            let (verb, mode) =
                if args.one_way { ("sync -1", Mode::OneWay) } else { ("sync", Mode::TwoWay) };
            let task = command::task(verb, mode, &args.state, &args.run)?;
            let positional = (args.locations.source.as_ref(), args.locations.destination.as_ref());
            command::sync(&context, &task, positional, args.reverse, &args.run)
        }
        Command::Import(args) => {
            let task = command::import_task(args)?;
            let positional = (args.locations.source.as_ref(), args.locations.destination.as_ref());
            command::sync(&context, &task, positional, false, &args.run)
        }
        Command::Mailbox(MailboxCommand::List(args)) => command::mailbox_list(&context, args),
        Command::Verify(args) => command::verify(&context, args),
        Command::Check(args) => command::check(&context, args),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "dsync", &mut script);
            stdout::write_bytes(&script).map_err(|error| {
                CliError::Output(format!("cannot write the completion script: {error}"))
            })?;
            Ok(0)
        }
        Command::Man { dir } => man::run(dir.as_deref()),
    }
}

/// The refusal of a doveadm letter dsync does not implement, if one was given.
fn doveadm_only_refusal(command: &Command) -> Option<String> {
    match command {
        Command::Backup(args) => {
            args.replicator.refusal().or_else(|| args.run.doveadm_only.refusal())
        }
        Command::Sync(args) => {
            args.replicator.refusal().or_else(|| args.run.doveadm_only.refusal())
        }
        Command::Import(args) => args.run.doveadm_only.refusal(),
        _ => None,
    }
}

fn progress_interval(command: &Command) -> u64 {
    let output = match command {
        Command::Backup(args) => &args.run.output,
        Command::Sync(args) => &args.run.output,
        Command::Import(args) => &args.run.output,
        Command::Check(args) => &args.output,
        _ => return 10,
    };
    output.progress_interval.unwrap_or(10)
}
