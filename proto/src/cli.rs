//! Command-line conventions shared by `ifad` and `ifactl`.

use clap::Parser;
use clap::error::ErrorKind;

/// Exit code for bad input, as clap and most CLIs use.
pub const EXIT_USAGE: i32 = 2;

/// Parses the command line; bad input prints one line on stderr
/// (`prog: what is wrong`) and exits 2. `--help` and `--version` print as usual.
pub fn parse_or_exit<T: Parser>(prog: &str) -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            eprintln!("{prog}: {}", one_line(&e.to_string()));
            std::process::exit(EXIT_USAGE);
        }
    }
}

/// Folds clap's multi-line message into one line without its usage hints.
pub fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:")
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_clap_errors_into_one_line() {
        let rendered = "error: invalid value 'gold' for '--class <CLASS>'\n  \
                        [possible values: guaranteed, burstable, best-effort]\n\n\
                        For more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "invalid value 'gold' for '--class <CLASS>' [possible values: guaranteed, burstable, best-effort]"
        );
        let rendered = "error: the following required arguments were not provided:\n  --vm <ID>\n\n\
                        Usage: ifactl place --vm <ID>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "the following required arguments were not provided: --vm <ID>"
        );
    }
}
