//! The trace format ifad-eval replays: JSON Lines, one host line, then events
//! sorted by time, ending with exactly one `end`.
//!
//! ```text
//! {"host": {"harts": 32, "files": 5, "numa": 2}}
//! {"t": 1.5, "op": "place", "vm": "a", "vcpus": 4, "class": "burstable", "devices": ["0000:01:00.0"], "priority": 0}
//! {"t": 2, "op": "rate", "vm": "a", "vcpu": 0, "irqs_per_s": 50000}
//! {"t": 9, "op": "release", "vm": "a"}
//! {"t": 12, "op": "halt", "vm": "a", "vcpu": 1}
//! {"t": 20, "op": "offline", "hart": 3}
//! {"t": 600, "op": "end"}
//! ```
//!
//! [`Trace::parse`] checks everything one line (plus the host and the time of
//! the line before) can tell: syntax, fields, ranges, order. Whether a VM was
//! placed, is still placed or has that vCPU is the replay's business: it skips
//! such ops, as it skips ops on a refused VM.

use std::io::BufRead;

use ifad::core::topology::MAX_VSFILES;
use ifad::core::{Bdf, Class, VmId};
use ifad::host::sim::SimSpec;
use ifad::host::sim::spec::MAX_SIM_HARTS;
use serde::{Deserialize, Serialize};

/// What is wrong with a trace, and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct TraceError {
    pub line: usize,
    pub reason: String,
}

impl TraceError {
    fn new(line: usize, reason: impl Into<String>) -> Self {
        TraceError {
            line,
            reason: reason.into(),
        }
    }
}

/// The simulated host the trace runs on (the `--simulate` shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub harts: u32,
    pub files: u8,
    #[serde(default = "one")]
    pub numa: u32,
}

fn one() -> u32 {
    1
}

impl HostSpec {
    /// The same host as the daemon's simulator takes it.
    pub fn sim_spec(&self) -> SimSpec {
        SimSpec {
            harts: self.harts,
            files: self.files,
            numa: self.numa,
        }
    }

    /// VS-files on the host when every hart is online.
    pub fn total_files(&self) -> u32 {
        self.harts * u32::from(self.files)
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=MAX_SIM_HARTS).contains(&self.harts) {
            return Err(format!(
                "host harts {} is out of range 1..={MAX_SIM_HARTS}",
                self.harts
            ));
        }
        if !(1..=MAX_VSFILES).contains(&self.files) {
            return Err(format!(
                "host files {} is out of range 1..={MAX_VSFILES}",
                self.files
            ));
        }
        if !(1..=self.harts).contains(&self.numa) {
            return Err(format!(
                "host numa {} is out of range 1..={} (at most one node per hart)",
                self.numa, self.harts
            ));
        }
        Ok(())
    }
}

/// The first line: `{"host": {...}}`. `files` is read wide so that 300 gets
/// the range message rather than serde's u8 one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostLine {
    host: RawHost,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    harts: u32,
    files: u32,
    #[serde(default = "one")]
    numa: u32,
}

#[derive(Serialize)]
struct HostLineOut<'a> {
    host: &'a HostSpec,
}

/// A VM asking to be placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOp {
    pub vm: String,
    pub vcpus: u32,
    pub class: Class,
    /// PCI addresses passed through to the VM (`0000:01:00.0`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// Harts the VM may run on; `None` is every hart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harts: Option<Vec<u32>>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// What happens at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    Place(PlaceOp),
    /// Interrupts per second this vCPU receives from now on (0 until said).
    Rate {
        vm: String,
        vcpu: u32,
        irqs_per_s: f64,
    },
    Release {
        vm: String,
    },
    Halt {
        vm: String,
        vcpu: u32,
    },
    Wake {
        vm: String,
        vcpu: u32,
    },
    Offline {
        hart: u32,
    },
    Online {
        hart: u32,
    },
    End,
}

impl Op {
    /// The VM the op is about, if any.
    pub fn vm(&self) -> Option<&str> {
        match self {
            Op::Place(p) => Some(&p.vm),
            Op::Rate { vm, .. }
            | Op::Release { vm }
            | Op::Halt { vm, .. }
            | Op::Wake { vm, .. } => Some(vm),
            Op::Offline { .. } | Op::Online { .. } | Op::End => None,
        }
    }

    /// What one line alone (and the host) can tell is wrong with the op.
    fn check(&self, host: &HostSpec) -> Result<(), String> {
        if let Some(vm) = self.vm() {
            VmId::parse(vm).map_err(|e| e.to_string())?;
        }
        let hart_in_range = |hart: u32| {
            if hart < host.harts {
                Ok(())
            } else {
                Err(format!(
                    "hart {hart} is out of range: the host has harts 0..={}",
                    host.harts - 1
                ))
            }
        };
        match self {
            Op::Place(p) => {
                if p.vcpus == 0 {
                    return Err(format!("vm {}: vcpus must be at least 1", p.vm));
                }
                for device in &p.devices {
                    device.parse::<Bdf>().map_err(|e| e.to_string())?;
                }
                if let Some(harts) = &p.harts {
                    if harts.is_empty() {
                        return Err(format!(
                            "vm {}: harts is empty (leave it out for every hart)",
                            p.vm
                        ));
                    }
                    harts.iter().try_for_each(|&h| hart_in_range(h))?;
                }
                Ok(())
            }
            Op::Rate { irqs_per_s, .. } => {
                if irqs_per_s.is_finite() && *irqs_per_s >= 0.0 {
                    Ok(())
                } else {
                    Err(format!(
                        "irqs_per_s {irqs_per_s} must be a finite number >= 0"
                    ))
                }
            }
            Op::Offline { hart } | Op::Online { hart } => hart_in_range(*hart),
            Op::Release { .. } | Op::Halt { .. } | Op::Wake { .. } | Op::End => Ok(()),
        }
    }
}

/// One op at time `t` (seconds since the trace started).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub t: f64,
    pub op: Op,
}

#[derive(Serialize)]
struct EventOut<'a> {
    t: f64,
    #[serde(flatten)]
    op: &'a Op,
}

/// A whole trace: the host, then events sorted by time; the last is `End`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub host: HostSpec,
    pub events: Vec<Event>,
}

impl Trace {
    /// Reads and checks a trace; the error names the first bad line.
    pub fn parse(reader: impl BufRead) -> Result<Trace, TraceError> {
        let mut host: Option<HostSpec> = None;
        let mut events: Vec<Event> = Vec::new();
        let mut end_line: Option<usize> = None;
        let mut last_line = 0;
        for (index, line) in reader.lines().enumerate() {
            let number = index + 1;
            let line = line.map_err(|e| TraceError::new(number, format!("cannot read: {e}")))?;
            last_line = number;
            if line.trim().is_empty() {
                continue;
            }
            let err = |reason: String| TraceError::new(number, reason);
            let Some(host) = &host else {
                host = Some(parse_host(&line).map_err(err)?);
                continue;
            };
            if let Some(end) = end_line {
                return Err(err(format!("event after the end on line {end}")));
            }
            let event = parse_event(&line, host).map_err(err)?;
            if let Some(prev) = events.last().filter(|prev| event.t < prev.t) {
                return Err(err(format!(
                    "time goes backwards: t {} is before the previous event's t {}",
                    event.t, prev.t
                )));
            }
            if event.op == Op::End {
                end_line = Some(number);
            }
            events.push(event);
        }
        if host.is_none() {
            return Err(TraceError::new(
                last_line.max(1),
                "empty trace: the first line must be {\"host\": {\"harts\": N, \"files\": F}}",
            ));
        }
        if end_line.is_none() {
            return Err(TraceError::new(
                last_line,
                "the trace has no end: its last line must be {\"t\": T, \"op\": \"end\"}",
            ));
        }
        Ok(Trace {
            host: host.expect("checked above"),
            events,
        })
    }

    /// Parses a trace held in a string.
    pub fn parse_str(text: &str) -> Result<Trace, TraceError> {
        Trace::parse(text.as_bytes())
    }

    /// The time of the `end` event (the last one).
    pub fn end(&self) -> f64 {
        self.events.last().map_or(0.0, |e| e.t)
    }

    /// The trace as JSON Lines, one event a line, newline-terminated; it
    /// parses back to an equal `Trace`.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        let host = serde_json::to_string(&HostLineOut { host: &self.host })
            .expect("a host spec always serializes");
        out.push_str(&host);
        out.push('\n');
        for event in &self.events {
            let line = serde_json::to_string(&EventOut {
                t: event.t,
                op: &event.op,
            })
            .expect("an event always serializes");
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

fn parse_host(line: &str) -> Result<HostSpec, String> {
    let raw: HostLine = serde_json::from_str(line).map_err(|e| {
        format!(
            "bad host line (expected {{\"host\": {{\"harts\": N, \"files\": F, \"numa\": K}}}}): {}",
            json_error(&e)
        )
    })?;
    let RawHost { harts, files, numa } = raw.host;
    let files = u8::try_from(files)
        .map_err(|_| format!("host files {files} is out of range 1..={MAX_VSFILES}"))?;
    let host = HostSpec { harts, files, numa };
    host.check()?;
    Ok(host)
}

fn parse_event(line: &str, host: &HostSpec) -> Result<Event, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| json_error(&e))?;
    let serde_json::Value::Object(mut fields) = value else {
        return Err("an event must be a JSON object".into());
    };
    let t = match fields.remove("t") {
        None => return Err("missing field `t`".into()),
        Some(t) => t
            .as_f64()
            .ok_or_else(|| format!("t must be a number of seconds, not {t}"))?,
    };
    if !(t.is_finite() && t >= 0.0) {
        return Err(format!("t {t} must be a finite number >= 0"));
    }
    // A unit variant in an internally tagged enum ignores other fields, so
    // `end` is checked by hand.
    if fields.get("op").and_then(|op| op.as_str()) == Some("end") {
        if let Some(extra) = fields.keys().find(|k| *k != "op") {
            return Err(format!("unknown field `{extra}` for op end"));
        }
    }
    let op: Op =
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| json_error(&e))?;
    op.check(host)?;
    Ok(Event { t, op })
}

/// serde_json's message without its "at line 1 column N" (every line is
/// parsed on its own, so that line is always 1), the column kept when known.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => format!("{message} (column {})", e.column()),
        None => text,
    }
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
