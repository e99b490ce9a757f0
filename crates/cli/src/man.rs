//! `dsync man`: man pages generated from the clap definition. clap_mangen's own rendering
//! is kept for the name, synopsis, description, options and subcommands; the after-help
//! texts (locations, settings, exit status, examples), laid out in columns for a terminal,
//! become sections of their own in no-fill mode, which roff would otherwise refill into
//! one paragraph. There is no `help` subcommand page: `dsync VERB --help` is the way.

use std::fmt::Write as _;
use std::path::Path;

use clap::CommandFactory;

use crate::args::Cli;
use crate::exit::CliError;
use crate::stdout;

/// Prints `dsync.1`, or writes it and a page per verb into `dir`.
pub(crate) fn run(dir: Option<&Path>) -> Result<u8, CliError> {
    let output_error =
        |error: std::io::Error| CliError::Output(format!("cannot write the man page: {error}"));
    let mut command = without_help_subcommand(Cli::command());
    // Global options reach the verbs' pages, and each page gets its full name.
    command.build();
    let Some(dir) = dir else {
        stdout::write_bytes(&page(command, "DSYNC")).map_err(output_error)?;
        return Ok(0);
    };
    std::fs::create_dir_all(dir).map_err(output_error)?;
    let mut pages = vec![("dsync".to_owned(), command.clone())];
    for sub in command.get_subcommands() {
        let name = format!("dsync-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().display_name(name)));
        for nested in sub.get_subcommands() {
            let name = format!("dsync-{}-{}", sub.get_name(), nested.get_name());
            pages.push((name.clone(), nested.clone().display_name(name)));
        }
    }
    for (name, command) in pages {
        let title = name.to_uppercase();
        std::fs::write(dir.join(format!("{name}.1")), page(command, &title))
            .map_err(output_error)?;
    }
    Ok(0)
}

/// `command` and its verbs without clap's `help` subcommand (no page is written for it).
fn without_help_subcommand(mut command: clap::Command) -> clap::Command {
    let names: Vec<String> =
        command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    for name in names {
        command = command.mut_subcommand(name, without_help_subcommand);
    }
    command.disable_help_subcommand(true)
}

/// One man page in roff.
fn page(command: clap::Command, title: &str) -> Vec<u8> {
    let after_help = command.get_after_help().map(ToString::to_string);
    let has_options = command.get_arguments().any(|arg| !arg.is_hide_set());
    let has_subcommands = command.get_subcommands().any(|sub| !sub.is_hide_set());
    let man = clap_mangen::Man::new(command).title(title);
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    if has_options {
        let _ = man.render_options_section(&mut out);
    }
    if has_subcommands {
        let _ = man.render_subcommands_section(&mut out);
    }
    if let Some(text) = after_help {
        out.extend_from_slice(preformatted_sections(&text).as_bytes());
    }
    let _ = man.render_version_section(&mut out);
    out
}

/// The after-help text as roff sections: each block (separated by a blank line) that
/// starts with a heading (`Locations:`, `Exit status (…):`, `Certificates: …`) opens a
/// section named after it; other blocks continue the section before. Lines keep their
/// layout (`.nf`).
fn preformatted_sections(text: &str) -> String {
    let mut out = String::new();
    let mut open = false;
    for block in text.split("\n\n") {
        let block = block.trim_end_matches('\n');
        let first = block.lines().next().unwrap_or_default();
        let body = if let Some(title) = heading(first) {
            if open {
                out.push_str(".fi\n");
            }
            let _ = write!(out, ".SH \"{title}\"\n.nf\n");
            open = true;
            // A line that is only the heading is not repeated under it.
            if first.trim_end().ends_with(':') {
                block.split_once('\n').map_or("", |(_, rest)| rest)
            } else {
                block
            }
        } else {
            if open {
                out.push('\n');
            } else {
                out.push_str(".SH NOTES\n.nf\n");
                open = true;
            }
            block
        };
        for line in body.lines() {
            out.push_str(&roff_line(line));
            out.push('\n');
        }
    }
    if open {
        out.push_str(".fi\n");
    }
    out
}

/// The section title a block's first line announces: the words before its first `:` or
/// `(`, when they are a few words and nothing else (`Exit status (as doveadm's):`).
fn heading(line: &str) -> Option<String> {
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    let end = line.find([':', '('])?;
    let words = line[..end].trim();
    let plain = !words.is_empty()
        && words.len() <= 30
        && words.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '-');
    plain.then(|| words.to_uppercase())
}

/// A line of text as roff shows it literally: backslashes escaped, hyphens as the ASCII
/// hyphen-minus (options stay copyable), and no control line.
fn roff_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    if line.starts_with(['.', '\'']) {
        out.push_str("\\&");
    }
    for c in line.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings() {
        assert_eq!(heading("Locations:").as_deref(), Some("LOCATIONS"));
        assert_eq!(heading("Exit status (as doveadm's):").as_deref(), Some("EXIT STATUS"));
        assert_eq!(
            heading("Certificates: the built-in (Mozilla) roots").as_deref(),
            Some("CERTIFICATES")
        );
        assert_eq!(
            heading("Search query (doveadm-search-query(7), one").as_deref(),
            Some("SEARCH QUERY")
        );
        assert_eq!(heading("  maildir:PATH    a Maildir"), None);
        assert_eq!(heading("An OR makes its whole list alternatives, as in doveadm: x"), None);
    }

    #[test]
    fn lines_keep_their_layout_and_escape_roff() {
        let text = "Locations:\n  maildir:PATH   a Maildir\n  a\\b -x\n.dot\n\nMore text.";
        let roff = preformatted_sections(text);
        assert_eq!(
            roff,
            ".SH \"LOCATIONS\"\n.nf\n  maildir:PATH   a Maildir\n  a\\eb \\-x\n\\&.dot\n\nMore text.\n.fi\n"
        );
    }
}
