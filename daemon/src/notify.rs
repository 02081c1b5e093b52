//! systemd's notify protocol (Type=notify): READY once restored and
//! reconciled, WATCHDOG from the control loop itself, STOPPING on the way
//! out. Without $NOTIFY_SOCKET every call does nothing.

use sd_notify::NotifyState;
use tracing::warn;

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        warn!("sd_notify: {e}");
    }
}

pub fn ready() {
    notify(&[NotifyState::Ready]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// Whether systemd expects watchdog pings (WatchdogSec= is set for us).
pub fn watchdog_enabled() -> bool {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec)
}

pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}
