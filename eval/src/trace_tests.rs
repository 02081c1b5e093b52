use super::*;

const HOST: &str = r#"{"host": {"harts": 32, "files": 5, "numa": 2}}"#;

fn parse(text: &str) -> Result<Trace, TraceError> {
    Trace::parse_str(text)
}

/// `HOST`, then `lines`, one per line (the host is line 1).
fn with_host(lines: &[&str]) -> String {
    let mut text = format!("{HOST}\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Asserts the trace fails on `line` with a reason containing `needle`.
#[track_caller]
fn fails(text: &str, line: usize, needle: &str) {
    let err = parse(text).expect_err("should fail");
    assert_eq!(err.line, line, "wrong line for {err}");
    assert!(
        err.reason.contains(needle),
        "reason {:?} should mention {needle:?}",
        err.reason
    );
    assert_eq!(err.to_string(), format!("line {line}: {}", err.reason));
}

const EVERY_OP: &[&str] = &[
    r#"{"t": 1.5, "op": "place", "vm": "a", "vcpus": 4, "class": "burstable", "devices": ["0000:01:00.0"], "priority": 0}"#,
    r#"{"t": 1.5, "op": "place", "vm": "b", "vcpus": 2, "class": "guaranteed", "priority": -3, "harts": [0, 1]}"#,
    r#"{"t": 1.75, "op": "place", "vm": "c", "vcpus": 1, "class": "best-effort"}"#,
    r#"{"t": 2, "op": "rate", "vm": "a", "vcpu": 0, "irqs_per_s": 50000}"#,
    r#"{"t": 9, "op": "release", "vm": "a"}"#,
    r#"{"t": 12, "op": "halt", "vm": "b", "vcpu": 1}"#,
    r#"{"t": 13, "op": "wake", "vm": "b", "vcpu": 1}"#,
    r#"{"t": 20, "op": "offline", "hart": 3}"#,
    r#"{"t": 21, "op": "online", "hart": 31}"#,
    r#"{"t": 600, "op": "end"}"#,
];

#[test]
fn parses_every_op() {
    let trace = parse(&with_host(EVERY_OP)).unwrap();
    assert_eq!(
        trace.host,
        HostSpec {
            harts: 32,
            files: 5,
            numa: 2
        }
    );
    assert_eq!(trace.events.len(), 10);
    assert_eq!(
        trace.events[0],
        Event {
            t: 1.5,
            op: Op::Place(PlaceOp {
                vm: "a".into(),
                vcpus: 4,
                class: Class::Burstable,
                devices: vec!["0000:01:00.0".into()],
                priority: 0,
                harts: None,
            }),
        }
    );
    assert_eq!(
        trace.events[1].op,
        Op::Place(PlaceOp {
            vm: "b".into(),
            vcpus: 2,
            class: Class::Guaranteed,
            devices: vec![],
            priority: -3,
            harts: Some(vec![0, 1]),
        })
    );
    let Op::Place(c) = &trace.events[2].op else {
        panic!("not a place");
    };
    assert_eq!(c.class, Class::BestEffort);
    assert_eq!(
        trace.events[3],
        Event {
            t: 2.0,
            op: Op::Rate {
                vm: "a".into(),
                vcpu: 0,
                irqs_per_s: 50000.0
            }
        }
    );
    assert_eq!(trace.events[4].op, Op::Release { vm: "a".into() });
    assert_eq!(
        trace.events[5].op,
        Op::Halt {
            vm: "b".into(),
            vcpu: 1
        }
    );
    assert_eq!(
        trace.events[6].op,
        Op::Wake {
            vm: "b".into(),
            vcpu: 1
        }
    );
    assert_eq!(trace.events[7].op, Op::Offline { hart: 3 });
    assert_eq!(trace.events[8].op, Op::Online { hart: 31 });
    assert_eq!(
        trace.events[9],
        Event {
            t: 600.0,
            op: Op::End
        }
    );
    assert_eq!(trace.end(), 600.0);
}

#[test]
fn numa_defaults_to_one_and_blank_lines_are_skipped() {
    let text = "{\"host\": {\"harts\": 8, \"files\": 5}}\n\n{\"t\": 0, \"op\": \"end\"}\n\n";
    let trace = parse(text).unwrap();
    assert_eq!(trace.host.numa, 1);
    assert_eq!(
        trace.events,
        vec![Event {
            t: 0.0,
            op: Op::End
        }]
    );
}

#[test]
fn to_jsonl_round_trips() {
    let trace = parse(&with_host(EVERY_OP)).unwrap();
    let text = trace.to_jsonl();
    assert_eq!(text.lines().count(), 11);
    assert!(text.ends_with("{\"t\":600.0,\"op\":\"end\"}\n"), "{text}");
    assert!(
        text.starts_with("{\"host\":{\"harts\":32,\"files\":5,\"numa\":2}}\n"),
        "{text}"
    );
    assert_eq!(parse(&text).unwrap(), trace);
}

#[test]
fn to_jsonl_leaves_out_defaults() {
    let trace = parse(&with_host(EVERY_OP)).unwrap();
    let text = trace.to_jsonl();
    let c = text.lines().nth(3).unwrap();
    assert_eq!(
        c,
        r#"{"t":1.75,"op":"place","vm":"c","vcpus":1,"class":"best-effort"}"#
    );
}

#[test]
fn bad_json_names_its_line() {
    fails(
        &with_host(&[r#"{"t": 1, "op": "release", "vm": "a""#]),
        2,
        "EOF",
    );
    fails(
        "{\"host\": {\"harts\": 8, \"files\": 5}\n",
        1,
        "bad host line",
    );
    fails(&with_host(&["[1, 2]"]), 2, "JSON object");
}

#[test]
fn unknown_op_is_an_error() {
    fails(
        &with_host(&[r#"{"t": 600, "op": "end"}"#]).replace("\"end\"", "\"stop\""),
        2,
        "unknown variant `stop`",
    );
}

#[test]
fn unknown_fields_are_errors() {
    fails(
        &with_host(&[
            r#"{"t": 1, "op": "place", "vm": "a", "vcpus": 1, "class": "burstable", "colour": "red"}"#,
        ]),
        2,
        "unknown field `colour`",
    );
    fails(
        &with_host(&[r#"{"t": 1, "op": "release", "vm": "a", "vcpu": 0}"#]),
        2,
        "unknown field `vcpu`",
    );
    fails(
        &with_host(&[
            r#"{"t": 1, "op": "offline", "hart": 0}"#,
            r#"{"t": 600, "op": "end", "why": 1}"#,
        ]),
        3,
        "unknown field `why`",
    );
    fails(
        r#"{"host": {"harts": 8, "files": 5, "smt": 2}}"#,
        1,
        "unknown field `smt`",
    );
    fails(
        r#"{"host": {"harts": 8, "files": 5}, "name": "x"}"#,
        1,
        "unknown field `name`",
    );
}

#[test]
fn missing_fields_are_errors() {
    fails(
        &with_host(&[r#"{"t": 1, "op": "place", "vm": "a", "class": "burstable"}"#]),
        2,
        "missing field `vcpus`",
    );
    fails(
        &with_host(&[r#"{"op": "release", "vm": "a"}"#]),
        2,
        "missing field `t`",
    );
    fails(
        &with_host(&[r#"{"t": 1, "vm": "a"}"#]),
        2,
        "missing field `op`",
    );
    fails(
        &with_host(&[r#"{"t": 1, "op": "rate", "vm": "a", "vcpu": 0}"#]),
        2,
        "missing field `irqs_per_s`",
    );
    fails(r#"{"host": {"files": 5}}"#, 1, "missing field `harts`");
}

#[test]
fn bad_values_are_errors() {
    fails(
        &with_host(&[r#"{"t": 1, "op": "place", "vm": "a", "vcpus": 1, "class": "gold"}"#]),
        2,
        "unknown variant `gold`",
    );
    fails(
        &with_host(&[r#"{"t": "soon", "op": "end"}"#]),
        2,
        "t must be a number",
    );
    fails(&with_host(&[r#"{"t": -1, "op": "end"}"#]), 2, ">= 0");
    fails(
        &with_host(&[r#"{"t": 1, "op": "rate", "vm": "a", "vcpu": 0, "irqs_per_s": -5}"#]),
        2,
        "irqs_per_s",
    );
    fails(
        &with_host(&[r#"{"t": 1, "op": "release", "vm": "a/b"}"#]),
        2,
        "vm:",
    );
    fails(
        &with_host(&[
            r#"{"t": 1, "op": "place", "vm": "a", "vcpus": 1, "class": "burstable", "devices": ["01:00"]}"#,
        ]),
        2,
        "PCI address",
    );
    fails(
        &with_host(&[
            r#"{"t": 1, "op": "place", "vm": "a", "vcpus": 1, "class": "burstable", "harts": []}"#,
        ]),
        2,
        "harts is empty",
    );
}

#[test]
fn vcpus_zero_is_an_error() {
    fails(
        &with_host(&[
            r#"{"t": 0, "op": "offline", "hart": 1}"#,
            r#"{"t": 1, "op": "place", "vm": "a", "vcpus": 0, "class": "burstable"}"#,
        ]),
        3,
        "vcpus must be at least 1",
    );
}

#[test]
fn hart_out_of_range_is_an_error() {
    fails(
        &with_host(&[r#"{"t": 1, "op": "offline", "hart": 32}"#]),
        2,
        "hart 32 is out of range",
    );
    fails(
        &with_host(&[r#"{"t": 1, "op": "online", "hart": 40}"#]),
        2,
        "hart 40 is out of range",
    );
    fails(
        &with_host(&[
            r#"{"t": 1, "op": "place", "vm": "a", "vcpus": 1, "class": "burstable", "harts": [0, 32]}"#,
        ]),
        2,
        "hart 32 is out of range",
    );
}

#[test]
fn time_going_backwards_is_an_error() {
    fails(
        &with_host(&[
            r#"{"t": 5, "op": "offline", "hart": 1}"#,
            r#"{"t": 5, "op": "online", "hart": 1}"#,
            r#"{"t": 4.5, "op": "end"}"#,
        ]),
        4,
        "time goes backwards",
    );
}

#[test]
fn event_after_end_is_an_error() {
    fails(
        &with_host(&[
            r#"{"t": 600, "op": "end"}"#,
            r#"{"t": 601, "op": "offline", "hart": 1}"#,
        ]),
        3,
        "after the end on line 2",
    );
    fails(
        &with_host(&[r#"{"t": 600, "op": "end"}"#, r#"{"t": 600, "op": "end"}"#]),
        3,
        "after the end",
    );
}

#[test]
fn no_end_is_an_error_on_the_last_line() {
    fails(
        &with_host(&[
            r#"{"t": 1, "op": "offline", "hart": 1}"#,
            r#"{"t": 2, "op": "online", "hart": 1}"#,
        ]),
        3,
        "no end",
    );
    fails(HOST, 1, "no end");
    fails("", 1, "empty trace");
}

#[test]
fn host_ranges_are_checked() {
    fails(r#"{"host": {"harts": 0, "files": 5}}"#, 1, "harts 0");
    fails(r#"{"host": {"harts": 8, "files": 0}}"#, 1, "files 0");
    fails(r#"{"host": {"harts": 8, "files": 64}}"#, 1, "files 64");
    fails(r#"{"host": {"harts": 8, "files": 300}}"#, 1, "files 300");
    fails(
        r#"{"host": {"harts": 8, "files": 5, "numa": 0}}"#,
        1,
        "numa 0",
    );
    fails(
        r#"{"host": {"harts": 2, "files": 5, "numa": 3}}"#,
        1,
        "numa 3",
    );
    let ok =
        parse("{\"host\": {\"harts\": 1, \"files\": 63}}\n{\"t\": 0, \"op\": \"end\"}").unwrap();
    assert_eq!(ok.host.sim_spec().files, 63);
    assert_eq!(ok.host.total_files(), 63);
}

#[test]
fn replay_semantics_are_not_checked_here() {
    // Never placed, vcpu beyond any count, released twice: the replay skips them.
    let trace = parse(&with_host(&[
        r#"{"t": 1, "op": "rate", "vm": "ghost", "vcpu": 99, "irqs_per_s": 1}"#,
        r#"{"t": 2, "op": "release", "vm": "ghost"}"#,
        r#"{"t": 2, "op": "release", "vm": "ghost"}"#,
        r#"{"t": 3, "op": "halt", "vm": "ghost", "vcpu": 7}"#,
        r#"{"t": 600, "op": "end"}"#,
    ]))
    .unwrap();
    assert_eq!(trace.events.len(), 5);
}
