use std::io::Write;

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn parse_with(f: &tempfile::NamedTempFile, flags: &[&str]) -> Result<Loaded, ConfigError> {
    let mut argv: Vec<OsString> = vec!["ifad".into(), "--config".into(), f.path().into()];
    argv.extend(flags.iter().map(OsString::from));
    parse(argv)
}

#[test]
fn the_file_sets_what_flags_do_not_and_flags_win() {
    let f = file(
        "min-move-interval = 7\nno-kprobes = true\nsimulate = \"harts=4,files=2\"\n\
         vcpu-thread-pattern = [\"vcpu{n}\", \"CPU {n}/KVM\"]\n",
    );
    let l = parse_with(&f, &[]).unwrap();
    assert_eq!(l.file.as_deref(), Some(f.path()));
    assert_eq!(l.args.min_move_interval, 7);
    assert!(l.args.no_kprobes);
    assert_eq!(l.args.simulate.unwrap().harts, 4);
    assert_eq!(l.args.vcpu_thread_patterns, ["vcpu{n}", "CPU {n}/KVM"]);
    let l = parse_with(&f, &["--min-move-interval", "9"]).unwrap();
    assert_eq!(l.args.min_move_interval, 9);
}

#[test]
fn an_unknown_key_is_refused_by_file_and_name() {
    let f = file("metrics-listen = \"127.0.0.1:1\"\nmetric-listen = \"x\"\n");
    let err = parse_with(&f, &[]).err().unwrap().to_string();
    let path = f.path().display().to_string();
    assert!(err.starts_with(&path), "{err}");
    assert!(err.contains("key `metric-listen`: unknown key"), "{err}");
}

#[test]
fn a_bad_value_is_refused_with_its_reason() {
    let f = file("metrics-listen = \"nowhere\"\n");
    let err = parse_with(&f, &[]).err().unwrap().to_string();
    assert!(err.contains("key `metrics-listen`"), "{err}");
    assert!(err.contains("neither host:port nor off"), "{err}");
    // Even when a flag overrides it: a broken file is broken.
    assert!(parse_with(&f, &["--metrics-listen", "off"]).is_err());
    let f = file("min-move-interval = { seconds = 3 }\n");
    let err = parse_with(&f, &[]).err().unwrap().to_string();
    assert!(
        err.contains("expected a string or a number, found table"),
        "{err}"
    );
    let f = file("metrics-listen = false\n");
    let err = parse_with(&f, &[]).err().unwrap().to_string();
    assert!(
        err.contains("key `metrics-listen`: expected a value"),
        "{err}"
    );
    let f = file("no-kprobes = \"yes\"\n");
    let err = parse_with(&f, &[]).err().unwrap().to_string();
    assert!(err.contains("key `no-kprobes`"), "{err}");
}

#[test]
fn command_line_only_keys_and_broken_toml_are_refused() {
    let f = file("config = \"/etc/other.toml\"\n");
    let err = parse_with(&f, &[]).err().unwrap().to_string();
    assert!(err.contains("key `config`: unknown key"), "{err}");
    let f = file("metrics-listen = \n");
    let err = parse_with(&f, &[]).err().unwrap();
    assert!(matches!(err, ConfigError::File { .. }), "{err}");
}

#[test]
fn a_named_file_that_is_missing_is_an_error() {
    let argv: Vec<OsString> = ["ifad", "--config", "/nonexistent/ifad.toml"]
        .iter()
        .map(OsString::from)
        .collect();
    let err = parse(argv).err().unwrap().to_string();
    assert!(err.starts_with("/nonexistent/ifad.toml: "), "{err}");
}

#[test]
fn min_move_interval_sets_the_engines_interval_in_milliseconds() {
    let empty = file("");
    let interval = |f: &tempfile::NamedTempFile, flags: &[&str]| {
        parse_with(f, flags)
            .unwrap()
            .args
            .engine_config()
            .min_move_interval
    };
    assert_eq!(interval(&empty, &[]), 30_000, "default: 30 s");
    assert_eq!(interval(&empty, &["--min-move-interval", "0"]), 0);
    assert_eq!(interval(&empty, &["--min-move-interval=45"]), 45_000);
    let largest = crate::args::MAX_MIN_MOVE_INTERVAL.to_string();
    assert_eq!(
        interval(&empty, &["--min-move-interval", &largest]),
        crate::args::MAX_MIN_MOVE_INTERVAL * 1000
    );
    let f = file("min-move-interval = 7\n");
    assert_eq!(interval(&f, &[]), 7_000, "the file's key");
    assert_eq!(
        interval(&f, &["--min-move-interval", "9"]),
        9_000,
        "the flag wins"
    );
    let f = file("min-move-interval = \"12\"\n");
    assert_eq!(interval(&f, &[]), 12_000, "a string holding a number");
}

#[test]
fn a_bad_min_move_interval_is_refused_naming_the_flag_or_the_key() {
    let empty = file("");
    // One second more than the engine's milliseconds can hold.
    let too_long = (u64::MAX / 1000 + 1).to_string();
    for bad in ["soon", "-1", "1.5", "", too_long.as_str()] {
        let flag = format!("--min-move-interval={bad}");
        match parse_with(&empty, &[&flag]) {
            Err(ConfigError::Flags(reason)) => {
                assert!(reason.contains("--min-move-interval"), "{bad:?}: {reason}")
            }
            Err(other) => panic!("{bad:?}: {other}"),
            Ok(l) => panic!("{bad:?} accepted as {}", l.args.min_move_interval),
        }
        let f = file(&format!("min-move-interval = \"{bad}\"\n"));
        match parse_with(&f, &[]) {
            Err(e @ ConfigError::Key { .. }) => {
                let e = e.to_string();
                assert!(e.contains("key `min-move-interval`"), "{bad:?}: {e}")
            }
            Err(other) => panic!("{bad:?}: {other}"),
            Ok(l) => panic!("{bad:?} accepted as {}", l.args.min_move_interval),
        }
    }
    for bad in ["-5", too_long.as_str()] {
        let f = file(&format!("min-move-interval = {bad}\n"));
        let err = parse_with(&f, &[]).err().unwrap().to_string();
        assert!(err.contains("key `min-move-interval`"), "{bad}: {err}");
    }
}
