//! `dsync`: migrate and synchronise mailboxes with Dovecot dsync semantics.
//!
//! This binary stays thin: argument parsing, the config file, credentials, progress, logs
//! and mapping results to doveadm's exit codes. Everything else is in the `dsync-core`
//! library.

// Argument docs double as `--help` text, where `[...]` means "optional", not a doc link.
#![allow(rustdoc::broken_intra_doc_links)]

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
mod job;
mod location;
mod logging;
mod open;
mod output;
mod progress;
mod settings;
mod state_file;
mod verify;
mod workers;

use std::io::Write as _;
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
            let code = match error.kind() {
                ClapErrorKind::DisplayHelp
                | ClapErrorKind::DisplayVersion
                | ClapErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
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
            clap_complete::generate(*shell, &mut Cli::command(), "dsync", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir } => man(dir.as_deref()),
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

/// Prints `dsync.1`, or writes it and a page per verb into `dir`.
fn man(dir: Option<&std::path::Path>) -> Result<u8, CliError> {
    let command = Cli::command();
    let output_error =
        |error: std::io::Error| CliError::Output(format!("cannot write the man page: {error}"));
    let Some(dir) = dir else {
        let mut stdout = std::io::stdout().lock();
        clap_mangen::Man::new(command).render(&mut stdout).map_err(output_error)?;
        stdout.flush().map_err(output_error)?;
        return Ok(0);
    };
    std::fs::create_dir_all(dir).map_err(output_error)?;
    let mut pages = vec![("dsync".to_owned(), command.clone())];
    for sub in command.get_subcommands() {
        let name = format!("dsync-{}", sub.get_name());
        pages.push((name, sub.clone()));
        for nested in sub.get_subcommands() {
            let name = format!("dsync-{}-{}", sub.get_name(), nested.get_name());
            pages.push((name, nested.clone()));
        }
    }
    for (name, page) in pages {
        let mut file =
            std::fs::File::create(dir.join(format!("{name}.1"))).map_err(output_error)?;
        let title = name.to_uppercase();
        clap_mangen::Man::new(page).title(title).render(&mut file).map_err(output_error)?;
    }
    Ok(0)
}
