//! Starts the real `ifad` and `ifactl` binaries for end-to-end tests: each
//! daemon on a simulated host, its socket in a private temp dir, metrics on
//! an ephemeral loopback port, stopped when the test ends.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Where ifad keeps its state when `--state-dir` is not given; tests always
/// point it into a temp dir.
pub const STATE_DIR_ENV: &str = "IFAD_STATE_DIR";
/// The config file, unless `--config` names one; tests use /dev/null.
pub const CONFIG_ENV: &str = "IFAD_CONFIG";

/// How long a daemon may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a test waits for something it expects to happen soon (a log
/// line, a re-pin, a release): generous, so slow machines pass; it only
/// bounds a failure.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Polls `cond` every 10 ms until it holds; panics naming `what` if it
/// still does not after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Path of a workspace binary, built once per test process in the test's
/// own profile (cargo does not build other packages' binaries for tests).
pub fn bin(name: &str) -> PathBuf {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (ifad, ifactl) = BINS.get_or_init(|| {
        let build = |package: &str| {
            escargot::CargoBuild::new()
                .manifest_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
                .package(package)
                .bin(package)
                .current_release()
                .current_target()
                .run()
                .unwrap_or_else(|e| panic!("building {package}: {e}"))
                .path()
                .to_path_buf()
        };
        (build("ifad"), build("ifactl"))
    });
    match name {
        "ifad" => ifad.clone(),
        "ifactl" => ifactl.clone(),
        other => panic!("no binary {other}"),
    }
}

/// A running `ifad`; SIGTERM on drop.
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    pub metrics: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// `ifad --simulate <spec>` with its own socket and metrics port.
    pub fn simulate(spec: &str) -> Daemon {
        Daemon::start(&[&format!("--simulate={spec}")])
    }

    /// `ifad <args> --socket <tmp> --metrics-listen 127.0.0.1:0`.
    pub fn start(args: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("ifad.sock");
        let mut cmd = Command::new(bin("ifad"));
        cmd.args(args)
            .arg("--socket")
            .arg(&socket)
            .args(["--metrics-listen", "127.0.0.1:0"]);
        Daemon::spawn(cmd, socket, dir)
    }

    /// Starts a prepared command whose daemon will listen on `socket`.
    pub fn spawn(mut cmd: Command, socket: PathBuf, dir: tempfile::TempDir) -> Daemon {
        // Its own state dir, unless the test names one with --state-dir.
        cmd.env_remove(ifa_api::socket::SOCKET_ENV)
            .env(STATE_DIR_ENV, dir.path().join("state"))
            // Never this machine's /etc/ifad/ifad.toml.
            .env(CONFIG_ENV, "/dev/null")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ifad");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Kept before it is handed on: once `start` has seen
                // " ready", `log()` holds every line up to it.
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut daemon = Daemon {
            child,
            socket,
            metrics: None,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.ends_with(" ready") => return daemon,
                Ok(line) => {
                    if let Some(addr) = line
                        .split("serving metrics on http://")
                        .nth(1)
                        .and_then(|rest| rest.strip_suffix("/metrics"))
                    {
                        daemon.metrics = Some(addr.parse().expect("metrics address"));
                    }
                }
                Err(_) => panic!("ifad did not become ready:\n{}", daemon.log()),
            }
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits, bounded, until a logged line contains `text`: a line the
    /// daemon wrote reaches `log()` only once the stderr thread has read
    /// it. Panics with the log so far if it never comes.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        while !self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
            if Instant::now() >= deadline {
                panic!(
                    "no log line containing {text:?} within {WAIT_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `ifactl --socket <ours> <command>`; the command line is split
    /// on white space.
    pub fn ctl(&self, command: &str) -> Ctl {
        let mut cmd = Command::new(bin("ifactl"));
        cmd.env_remove(ifa_api::socket::SOCKET_ENV)
            .arg("--socket")
            .arg(&self.socket)
            .args(command.split_whitespace());
        Ctl::run(cmd)
    }

    /// Runs `ifactl -o json <command>`, which must succeed, and parses its
    /// output.
    pub fn json(&self, command: &str) -> Value {
        self.ctl(&format!("-o json {command}")).ok().json()
    }

    /// Stops the daemon with SIGTERM and waits, bounded, for it to exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Runs `ifad <args>` to completion (for starts that must fail, or
/// `--check-config`): its socket and state dir in a temp dir, no config
/// file, unless `args` or `env` say otherwise.
pub fn run_ifad(args: &[&str], env: &[(&str, &str)]) -> Ctl {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(bin("ifad"));
    cmd.env(ifa_api::socket::SOCKET_ENV, dir.path().join("ifad.sock"))
        .env(STATE_DIR_ENV, dir.path().join("state"))
        .env(CONFIG_ENV, "/dev/null")
        .envs(env.iter().copied())
        .args(args);
    Ctl::run(cmd)
}

/// The outcome of one `ifactl` run.
#[derive(Debug)]
pub struct Ctl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ctl {
    pub fn run(mut cmd: Command) -> Ctl {
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.stdin(Stdio::null()).output().expect("run ifactl");
        Ctl {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Asserts success.
    pub fn ok(self) -> Ctl {
        assert_eq!(self.code, 0, "ifactl failed: {self:?}");
        self
    }

    /// Asserts exit `code` and exactly one line on stderr; returns that line.
    pub fn fails(self, code: i32) -> String {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:?}");
        lines[0].to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Per hart: (vsfiles, used), from `ifactl harts -o json`.
pub fn occupancy(d: &Daemon) -> Vec<(u64, u64)> {
    d.json("harts")
        .as_array()
        .expect("harts is an array")
        .iter()
        .map(|h| (h["vsfiles"].as_u64().unwrap(), h["used"].as_u64().unwrap()))
        .collect()
}

/// Backings of a VM's vCPUs in vCPU order.
pub fn backings(vm: &Value) -> Vec<String> {
    vm["vcpus"]
        .as_array()
        .expect("vcpus is an array")
        .iter()
        .map(|v| v["backing"].as_str().unwrap().to_string())
        .collect()
}

/// A plain HTTP GET on loopback; returns the body.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    ureq::get(&format!("http://{addr}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .body_mut()
        .read_to_string()
        .expect("body")
}

/// A captured RISC-V host from daemon/tests/fixtures/hosts.
pub fn host_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../daemon/tests/fixtures/hosts")
        .join(name)
}

/// A copy of a captured host in a temporary directory, to edit into a
/// derived host.
pub fn derived_host(name: &str) -> tempfile::TempDir {
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let dest = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_tree(&entry.path(), &dest);
            } else {
                std::fs::copy(entry.path(), dest).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&host_fixture(name), dir.path());
    dir
}

/// ifad started as systemd starts a `Type=notify` service with a watchdog:
/// through a shell whose pid (the one `WATCHDOG_PID` names) exec hands on
/// to ifad. The caller adds ifad's arguments.
pub fn ifad_under_watchdog(notify: &Path, watchdog_usec: u64) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "export WATCHDOG_PID=$$; exec \"$0\" \"$@\""])
        .arg(bin("ifad"))
        .env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", watchdog_usec.to_string());
    cmd
}

/// The notify datagrams received on `sock` until one has the line `want`;
/// panics, naming what it saw, if none does within `within`.
pub fn wait_for_notify(sock: &UnixDatagram, want: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = msg.lines().any(|l| l == want);
                seen.push(msg);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {want} within {within:?}; got {seen:?}");
}

/// The value of one sample line of a Prometheus exposition, e.g.
/// `ifad_vsfiles` or `ifad_vcpus{backing="mrif"}`.
pub fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
        .parse()
        .unwrap()
}

/// A running `fake-vmm` (tests/bin/fake_vmm.rs) with `CPU <n>/KVM` threads,
/// killed and reaped on drop. `exe` is `env!("CARGO_BIN_EXE_fake-vmm")`,
/// which cargo sets only for the package's own tests. Its stdout after the
/// `ready` line arrives on `lines`.
pub struct FakeVmm {
    child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl FakeVmm {
    pub fn start(exe: &str, vcpus: u32, env: &[(&str, &str)]) -> FakeVmm {
        let mut child = Command::new(exe)
            .arg(vcpus.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn fake-vmm");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        FakeVmm { child, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process and reaps it: its pid names nothing afterwards.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeVmm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CPUs a thread may run on, as the kernel says.
pub fn affinity(tid: u64) -> Vec<usize> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(tid as i32)).unwrap();
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap())
        .collect()
}

/// Lets a thread run on `cpus`, as someone other than ifad would.
pub fn set_affinity(tid: u64, cpus: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c).unwrap();
    }
    nix::sched::sched_setaffinity(Pid::from_raw(tid as i32), &set).unwrap();
}

/// The value of `series` on the daemon's `/metrics` (0 when absent).
pub fn metric(d: &Daemon, series: &str) -> f64 {
    let body = http_get(d.metrics.expect("metrics on"), "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}
