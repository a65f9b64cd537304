//! Status lines on stderr in the Kubernetes style: `+++ [MMDD HH:MM:SS] message`.
//!
//! Verbosity starts at `KUBE_VERBOSE` (default 1, as in the Makefile); `-q` sets 0, each `-v` adds 1.
//! 0: warnings and errors only; 1: status lines; 2: commands run and details.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const UNSET: i32 = i32::MIN;
static LEVEL: AtomicI32 = AtomicI32::new(UNSET);

/// Current verbosity, initialised from `KUBE_VERBOSE` on first use.
pub fn level() -> i32 {
    let l = LEVEL.load(Ordering::Relaxed);
    if l != UNSET {
        return l;
    }
    let from_env = std::env::var("KUBE_VERBOSE").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(1);
    LEVEL.store(from_env, Ordering::Relaxed);
    from_env
}

pub fn set_level(l: i32) {
    LEVEL.store(l, Ordering::Relaxed);
}

/// `[MMDD HH:MM:SS]` in UTC (the scripts use local time; UTC needs no tz database).
pub fn stamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (_, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("[{:02}{:02} {:02}:{:02}:{:02}]", month, day, rem / 3600, rem / 60 % 60, rem % 60)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (what `date -u +%Y-%m-%dT%H:%M:%SZ` prints).
pub fn utc_iso(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Writes one line to stderr, or to this thread's sink ([`crate::scope`]). When the reader has
/// gone (`tool 2>&1 | head -1`), the tool stops as on an interrupt instead of panicking (which
/// `eprintln!` does) and leaving its children.
pub fn line(text: std::fmt::Arguments) {
    match crate::scope::sink() {
        Some(sink) => sink(&text.to_string()),
        None => to_stderr(text),
    }
}

/// Writes one line to stderr whatever this thread's sink (for the sink itself).
pub fn to_stderr(text: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stderr().lock(), "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            crate::scope::note_broken_pipe();
        }
    }
}

/// A status line, shown at verbosity >= 1.
pub fn status(msg: impl AsRef<str>) {
    status_v(1, msg)
}

/// A status line shown only at verbosity >= `v`.
pub fn status_v(v: i32, msg: impl AsRef<str>) {
    if level() >= v {
        line(format_args!("+++ {} {}", stamp(), shown(msg.as_ref())));
    }
}

/// A warning, shown unless the level is below 0.
pub fn warn(msg: impl AsRef<str>) {
    if level() >= 0 {
        line(format_args!("!!! {} {}", stamp(), shown(msg.as_ref())));
    }
}

/// A message as every log and error line shows it: passwords in URLs masked
/// ([`crate::values::masked`]), control characters escaped ([`printable`]).
pub fn shown(text: &str) -> String {
    printable(&crate::values::masked(text)).into_owned()
}

/// `text` with every control character escaped (`\n`, `\t`, `\u{1b}`): a name taken from disk
/// or the environment cannot split a log line or a TSV row, or drive the terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Human-readable elapsed time: `850ms`, `12.3s`, `2m05s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    }
}

static PLAN: AtomicBool = AtomicBool::new(false);

/// Marks this run a dry run: a [`Step`] then says what would be done, and no time.
pub fn set_plan(on: bool) {
    PLAN.store(on, Ordering::Relaxed);
}

/// Whether this run is a dry run ([`set_plan`]).
pub fn planning() -> bool {
    PLAN.load(Ordering::Relaxed)
}

/// A long step: logs its start, and its end with the elapsed time (in a dry run, one line
/// "would be: ..." and no time: nothing was done, so no time is worth telling).
pub struct Step {
    what: String,
    start: Instant,
}

impl Step {
    pub fn start(what: impl Into<String>) -> Step {
        let what = what.into();
        if planning() {
            status(format!("would be: {what}"));
        } else {
            status(format!("{what} ..."));
        }
        Step { what, start: Instant::now() }
    }
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
    pub fn done(self) -> Duration {
        let e = self.start.elapsed();
        if !planning() {
            status(format!("{} done in {}", self.what, human(e)));
        }
        e
    }
}

/// The progress line of a program being waited for: `LABEL: still running (TIME)` once every
/// `every`, from whichever loop polls it (one child or several).
pub struct Heartbeat {
    label: String,
    every: Duration,
    next: Duration,
    start: Instant,
}

impl Heartbeat {
    pub fn new(label: impl Into<String>, every: Duration) -> Heartbeat {
        Heartbeat { label: label.into(), every, next: every, start: Instant::now() }
    }

    /// Says the line when its time has come.
    pub fn tick(&mut self) {
        let elapsed = self.start.elapsed();
        if elapsed >= self.next {
            status(format!("{}: still running ({})", self.label, human(elapsed)));
            self.next += self.every;
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_kept() {
        assert_eq!(printable("/src/k8s.io/kubernetes"), "/src/k8s.io/kubernetes");
        assert_eq!(printable("go1.15.5\nx\ty\u{1b}[2J"), "go1.15.5\\nx\\ty\\u{1b}[2J");
    }

    #[test]
    fn shown_lines_mask_passwords_and_escape_controls() {
        assert_eq!(shown("cannot reach http://u:pw@h:9/x\u{1b}[2J"), "cannot reach http://u:***@h:9/x\\u{1b}[2J");
        assert_eq!(shown("plain"), "plain");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn iso_dates() {
        assert_eq!(utc_iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_iso(1_610_582_400 + 3661), "2021-01-14T01:01:01Z");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn stamp_shape() {
        let s = stamp();
        assert_eq!(s.len(), "[1126 01:50:06]".len(), "{s}");
        assert!(s.starts_with('[') && s.ends_with(']') && s.as_bytes()[5] == b' ');
    }
}
