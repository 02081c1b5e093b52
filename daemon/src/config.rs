//! The config file (`/etc/ifad/ifad.toml` or `--config`): its keys are the
//! flags' long names, and it ranks lowest: environment variables override
//! it, flags override both. Unknown keys and bad values are refused with
//! the file, the key and the reason, before anything starts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::args::Args;

pub const DEFAULT_PATH: &str = "/etc/ifad/ifad.toml";

/// Keys that only make sense on the command line.
const NOT_IN_FILE: [&str; 4] = ["config", "check-config", "help", "version"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Flags(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: key `{key}`: {reason}")]
    Key {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// What was parsed, and from which file (if any).
pub struct Loaded {
    pub args: Args,
    pub file: Option<PathBuf>,
}

fn clap_reason(e: &clap::Error) -> String {
    ifa_api::cli::one_line(&e.to_string())
}

/// The flag tokens a TOML value stands for (`--key=value`, repeated for a
/// list, alone for `true`).
fn tokens(key: &str, value: &toml::Value) -> Result<Vec<String>, String> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        other => Err(format!(
            "expected a string or a number, found {}",
            other.type_str()
        )),
    };
    match value {
        toml::Value::Boolean(true) => Ok(vec![format!("--{key}")]),
        toml::Value::Boolean(false) => Ok(Vec::new()),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| scalar(v).map(|s| format!("--{key}={s}")))
            .collect(),
        v => Ok(vec![format!("--{key}={}", scalar(v)?)]),
    }
}

/// Parses the command line and the config file together.
pub fn parse(argv: Vec<OsString>) -> Result<Loaded, ConfigError> {
    let flags = Args::command()
        .try_get_matches_from(&argv)
        .map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                e.exit()
            }
            _ => ConfigError::Flags(clap_reason(&e)),
        })?;
    let named = flags.get_one::<PathBuf>("config").cloned();
    let path = match named {
        Some(p) => Some(p),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    };
    let Some(path) = path else {
        let args =
            Args::from_arg_matches(&flags).map_err(|e| ConfigError::Flags(clap_reason(&e)))?;
        return Ok(Loaded { args, file: None });
    };
    let file_tokens = file_tokens(&path, &flags)?;
    let mut merged: Vec<OsString> = argv.iter().take(1).cloned().collect();
    merged.extend(file_tokens.into_iter().map(OsString::from));
    merged.extend(argv.iter().skip(1).cloned());
    let matches = Args::command()
        .try_get_matches_from(&merged)
        .map_err(|e| ConfigError::File {
            path: path.clone(),
            reason: clap_reason(&e),
        })?;
    let args = Args::from_arg_matches(&matches).map_err(|e| ConfigError::File {
        path: path.clone(),
        reason: clap_reason(&e),
    })?;
    Ok(Loaded {
        args,
        file: Some(path),
    })
}

/// The file's settings as flags, each checked alone so an error names its
/// key; settings the environment or a flag gives are left out.
fn file_tokens(path: &Path, flags: &clap::ArgMatches) -> Result<Vec<String>, ConfigError> {
    let file_err = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_err(ifa_api::cli::one_line(&e.to_string())))?;
    let command = Args::command();
    let mut out = Vec::new();
    for (key, value) in &table {
        let key_err = |reason: String| ConfigError::Key {
            path: path.to_path_buf(),
            key: key.clone(),
            reason,
        };
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
            .filter(|_| !NOT_IN_FILE.contains(&key.as_str()))
            .ok_or_else(|| {
                key_err("unknown key (keys are ifad's flag names, e.g. metrics-listen)".into())
            })?;
        let given = matches!(
            flags.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if value.is_bool() && arg.get_action().takes_values() {
            return Err(key_err(format!(
                "expected a value, not {value} (this flag is not a switch)"
            )));
        }
        let toks = tokens(key, value).map_err(key_err)?;
        let mut alone = vec!["ifad".to_string()];
        alone.extend(toks.iter().cloned());
        let checked = Args::command()
            .try_get_matches_from(&alone)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                Args::from_arg_matches(&m)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        checked.map_err(|e| key_err(ifa_api::cli::one_line(&e)))?;
        if !given {
            out.extend(toks);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
