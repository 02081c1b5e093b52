//! `ifactl watch`: the event stream as it happens, resumable, and never in
//! the way of a shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ifa_e2e::{Daemon, bin};
use serde_json::Value;

/// A running `ifactl <args> watch ...`, its stdout lines arriving on a channel.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(d: &Daemon, args: &str) -> Watcher {
        let mut child = Command::new(bin("ifactl"))
            .env_remove(ifa_api::socket::SOCKET_ENV)
            .arg("--socket")
            .arg(&d.socket)
            .args(args.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Watcher { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from ifactl watch")
    }

    /// Waits, bounded, for it to exit; its exit code.
    fn exit_code(mut self) -> i32 {
        for _ in 0..500 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("ifactl watch did not exit");
    }
}

fn kind_and_vm(line: &str) -> (String, String) {
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[2].to_string(), f[3].to_string())
}

#[test]
fn events_arrive_as_they_happen_and_a_watcher_resumes_without_a_gap() {
    let d = Daemon::start(&["--simulate=harts=2,files=2", "--min-move-interval", "0"]);
    let w = Watcher::start(&d, "watch --count 5");
    assert!(
        w.line().starts_with("SEQ "),
        "the header: the stream is open"
    );
    d.ctl("place --vm b --vcpus 4 --class burstable").ok();
    d.ctl("place --vm g --vcpus 2 --class guaranteed").ok();
    d.ctl("release --vm g").ok();
    let lines: Vec<String> = (0..5).map(|_| w.line()).collect();
    let got: Vec<(String, String)> = lines.iter().map(|l| kind_and_vm(l)).collect();
    let want = [
        ("placed", "b"),
        ("demoted", "b"),
        ("demoted", "b"),
        ("placed", "g"),
        ("released", "g"),
    ];
    assert_eq!(
        got,
        want.map(|(k, v)| (k.to_string(), v.to_string())),
        "{lines:#?}"
    );
    assert!(lines[1].contains("for guaranteed vm g"), "{}", lines[1]);
    assert_eq!(w.exit_code(), 0, "--count 5 ends it");

    // Resume after the first event: the rest replays, numbered without a
    // gap, then the promotions that followed the release, live.
    let first: u64 = lines[0].split_whitespace().next().unwrap().parse().unwrap();
    let r = Watcher::start(&d, &format!("-o json watch --after {first} --count 6"));
    let events: Vec<Value> = (0..6)
        .map(|_| serde_json::from_str(&r.line()).unwrap())
        .collect();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], first + 1 + i as u64, "{events:#?}");
    }
    assert_eq!(events[0]["kind"], "demoted");
    assert_eq!(events[0]["vm"], "b");
    assert_eq!(events[0]["backing"], "mrif");
    assert_eq!(events[3]["kind"], "released");
    assert_eq!(events[4]["kind"], "promoted", "{events:#?}");
    assert_eq!(events[4]["backing"], "vsfile");
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn a_refusal_is_an_event_too() {
    let d = Daemon::simulate("harts=2,files=2");
    let w = Watcher::start(&d, "-o json watch --count 1");
    // JSON mode prints no header, so nothing says when the stream is open:
    // refuse again until the event shows (bounded). Each try is refused the
    // same way, and --count 1 takes the first one the stream saw.
    let deadline = Instant::now() + Duration::from_secs(15);
    let line = loop {
        d.ctl("place --vm big --vcpus 9 --class guaranteed")
            .fails(1);
        match w.lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => break line,
            Err(_) if Instant::now() < deadline => {}
            Err(e) => panic!("no refusal event from ifactl watch: {e}"),
        }
    };
    let e: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["kind"], "refused");
    assert_eq!(e["vm"], "big");
    assert_eq!(e["class"], "guaranteed");
    assert!(e["message"].as_str().unwrap().contains("needs 9"), "{e}");
    assert_eq!(w.exit_code(), 0, "--count 1 ends it");
}

#[test]
fn an_expired_resume_point_is_refused_by_name() {
    let d = Daemon::simulate("harts=2,files=2");
    let line = d.ctl("watch --after 1").fails(2);
    assert!(line.contains("has expired"), "{line}");
}

#[test]
fn a_watcher_never_holds_the_daemon_up() {
    let mut d = Daemon::simulate("harts=2,files=2");
    let w = Watcher::start(&d, "watch");
    assert!(w.line().starts_with("SEQ "));
    let status = d
        .stop()
        .expect("stopped within the timeout despite the watcher");
    assert!(status.success());
    w.exit_code();
}
