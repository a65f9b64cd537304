//! The one place that runs other programs. Commands are built with xshell (argument vectors,
//! never shell strings), echoed at verbosity >= 2, and their output is captured so that a
//! child never writes into our stdout, which carries data.
//!
//! No child outlives the tool: each starts in a process group of its own (but an interactive
//! one, which needs the terminal), which is killed whole when the tool is interrupted (SIGINT,
//! SIGTERM, SIGHUP, or its reader gone: `tool 2>&1 | head -1`), and is sent SIGTERM by the
//! kernel when the tool dies any other way (PR_SET_PDEATHSIG).

use crate::fail::{Fail, Result};
use crate::log;
use camino::{Utf8Path, Utf8PathBuf};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Whether to stop: an interrupt, a reader gone, or this thread's scope told to stop.
pub use crate::scope::{interrupted, note_broken_pipe};

/// The time limit of a probe (a question to git, rsync, id, hostname): long enough for a slow
/// machine, short enough that a hung program is named instead of waited for.
pub const PROBE: Duration = Duration::from_secs(60);

/// `go version` may first fetch the toolchain GOTOOLCHAIN names.
pub const GO_PROBE: Duration = Duration::from_secs(300);

/// Makes SIGINT and SIGTERM set a flag instead of killing us, so a tool can stop its children
/// and clean up (containers) before it exits. Programs then running are killed by the poll loop.
pub fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            if let Err(e) = signal_hook::flag::register(sig, crate::scope::interrupt_flag().clone()) {
                log::warn(format!("cannot handle signal {sig}: {e}"));
            }
        }
    });
}

/// Ends the process group a child leads (every child but an interactive one leads its own).
fn kill_group(child: &mut std::process::Child) {
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for `child`, polling, so that an interrupt (or the time limit) kills it instead of
/// waiting forever.
fn wait_polling(
    child: &mut std::process::Child,
    interruptible: bool,
    limit: Option<(Duration, &str)>,
    mut tick: impl FnMut(),
) -> Result<ExitStatus> {
    let start = Instant::now();
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if interruptible && interrupted() {
            kill_group(child);
            return Err(Fail::interrupted());
        }
        if let Some((limit, what)) = limit.filter(|(l, _)| start.elapsed() >= *l) {
            kill_group(child);
            return Err(Fail::new(format!("`{what}` did not answer within {}; stopped it", log::human(limit))));
        }
        tick();
        std::thread::sleep(nap);
        // Capped low: most children here are short engine queries (about 75 ms), where a long
        // nap would be much of the call's cost.
        nap = (nap * 2).min(Duration::from_millis(5));
    }
}

thread_local! {
    /// The one xshell `Shell` of a thread (made on first use): every command is built from it,
    /// in the directory the command asks for.
    static SHELL: std::cell::RefCell<Option<xshell::Shell>> = const { std::cell::RefCell::new(None) };
}

/// A program invocation: program, arguments, environment changes and working directory.
#[derive(Debug, Clone)]
pub struct Proc {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    dir: Option<Utf8PathBuf>,
    /// Cleanup commands run even after an interrupt.
    uninterruptible: bool,
    /// A probe is stopped (and fails) after this long.
    timeout: Option<Duration>,
}

/// What a finished program left behind.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.status.success()
    }
    /// The first `n` non-empty lines of stderr (then stdout), for one-line error reports.
    pub fn first_lines(&self, n: usize) -> String {
        let text = if self.stderr.trim().is_empty() { &self.stdout } else { &self.stderr };
        text.lines().filter(|l| !l.trim().is_empty()).take(n).collect::<Vec<_>>().join("\n")
    }

    /// The first and the last non-empty lines of stderr (else stdout), `n` at most: a short
    /// error stays whole, and a long-winded program (docker build: a deprecation notice, its
    /// steps) still shows the line that says what went wrong, which comes last.
    pub fn error_lines(&self, n: usize) -> String {
        let text = if self.stderr.trim().is_empty() { &self.stdout } else { &self.stderr };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() <= n {
            return lines.join("\n");
        }
        let mut shown = vec![lines[0]];
        shown.extend(&lines[lines.len() - (n - 1).max(1)..]);
        shown.join("\n")
    }
}

impl Proc {
    pub fn new(program: impl AsRef<OsStr>) -> Proc {
        Proc {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
            uninterruptible: false,
            timeout: None,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Proc {
        self.args.push(a.as_ref().to_owned());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Proc {
        self.envs.push((k.as_ref().to_owned(), Some(v.as_ref().to_owned())));
        self
    }
    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Proc {
        self.envs.push((k.as_ref().to_owned(), None));
        self
    }
    pub fn dir(mut self, d: impl AsRef<Utf8Path>) -> Proc {
        self.dir = Some(d.as_ref().to_owned());
        self
    }

    /// Stops the program after `limit` and fails, naming it: every external probe has one.
    pub fn timeout(mut self, limit: Duration) -> Proc {
        self.timeout = Some(limit);
        self
    }

    fn limit(&self) -> Option<(Duration, String)> {
        self.timeout.map(|t| (t, self.display()))
    }

    /// Runs to completion even after SIGINT/SIGTERM (for cleanup).
    pub fn uninterruptible(mut self) -> Proc {
        self.uninterruptible = true;
        self
    }

    /// The command line as a user could paste it (environment changes first), any password in
    /// a URL masked (`user:***@`): every log line, plan and error that shows a command uses this.
    pub fn display(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in &self.envs {
            match v {
                Some(v) => parts.push(format!("{}={}", k.to_string_lossy(), quote(&v.to_string_lossy()))),
                None => parts.push(format!("-u {}", k.to_string_lossy())),
            }
        }
        parts.push(quote(&self.program.to_string_lossy()));
        parts.extend(self.args.iter().map(|a| quote(&a.to_string_lossy())));
        crate::values::masked(&parts.join(" "))
    }

    /// The command, in a process group of its own unless it is `interactive` (see the module).
    fn command(&self, interactive: bool) -> Result<Command> {
        SHELL.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(xshell::Shell::new().map_err(|e| Fail::new(format!("cannot set up a shell: {e}")))?);
            }
            let sh = slot.as_ref().expect("just made");
            // The directory is the command's own: pushed for it, popped when the guard goes.
            let _dir = self.dir.as_ref().map(|d| sh.push_dir(d));
            let mut cmd = sh.cmd(&self.program).args(&self.args);
            for (k, v) in &self.envs {
                cmd = match v {
                    Some(v) => cmd.env(k, v),
                    None => cmd.env_remove(k),
                };
            }
            let mut cmd = Command::from(cmd);
            die_with_us(&mut cmd, interactive);
            Ok(cmd)
        })
    }

    /// Runs to completion with stdout and stderr captured; a non-zero exit is not an error here.
    pub fn output(&self) -> Result<Captured> {
        self.spawn_capture(None)
    }

    /// Like [`Proc::output`] but logs "still running" with the elapsed time every `every`.
    pub fn output_with_progress(&self, label: &str, every: Duration) -> Result<Captured> {
        self.spawn_capture(Some((label, every)))
    }

    /// Runs and returns stdout; a non-zero exit becomes a [`Fail`] quoting the first error lines.
    pub fn read(&self) -> Result<String> {
        let out = self.output()?;
        if !out.success() {
            return Err(Fail::new(format!("`{}` failed ({}): {}", self.display(), out.status, out.first_lines(3))));
        }
        Ok(out.stdout)
    }

    /// Started with stdin closed and stdout and stderr piped to us (echoed at verbosity >= 2).
    fn spawn_piped(&self) -> Result<std::process::Child> {
        log::status_v(2, format!("$ {}", self.display()));
        self.command(false)?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(&self.program, e))
    }

    fn spawn_capture(&self, progress: Option<(&str, Duration)>) -> Result<Captured> {
        let start = Instant::now();
        let mut child = self.spawn_piped()?;
        // Drain both pipes on threads so a chatty child never blocks on a full pipe.
        let mut so = child.stdout.take().expect("piped stdout");
        let mut se = child.stderr.take().expect("piped stderr");
        let t_out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = so.read_to_end(&mut b);
            b
        });
        let t_err = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = se.read_to_end(&mut b);
            b
        });
        let mut beat = progress.map(|(label, every)| log::Heartbeat::new(label, every));
        let limit = self.limit();
        let status =
            wait_polling(&mut child, !self.uninterruptible, limit.as_ref().map(|(t, w)| (*t, w.as_str())), || {
                beat.iter_mut().for_each(log::Heartbeat::tick)
            })?;
        let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
        Ok(Captured { status, stdout, stderr, elapsed: start.elapsed() })
    }
}

impl Proc {
    /// Runs with the child's stdout and stderr both going to our stderr as they come (our stdout
    /// carries data), showing a heartbeat with the elapsed time. Under a scope with a sink
    /// ([`crate::scope`]), every line of both goes there instead.
    pub fn run_streaming(&self, label: &str) -> Result<ExitStatus> {
        let mut started = match crate::scope::sink() {
            Some(sink) => self.start_lines(move |_, line| sink(line))?,
            None => {
                log::status_v(2, format!("$ {}", self.display()));
                let child = self
                    .command(false)?
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(std::io::stderr()))
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| spawn_error(&self.program, e))?;
                Started { child, readers: Vec::new(), start: Instant::now() }
            }
        };
        let mut beat = log::Heartbeat::new(label, Duration::from_secs(60));
        let limit = self.limit();
        let polled = limit.as_ref().map(|(t, w)| (*t, w.as_str()));
        let status = wait_polling(&mut started.child, !self.uninterruptible, polled, || beat.tick());
        for r in started.readers.drain(..) {
            let _ = r.join();
        }
        status
    }

    /// Starts the program without waiting: each line of its stdout (`false`) and stderr
    /// (`true`) goes to `on_line` as it comes, from reader threads. For a caller that watches
    /// several children at once (a fan-out over engines).
    pub fn start_lines(&self, on_line: impl Fn(bool, &str) + Send + Sync + 'static) -> Result<Started> {
        use std::io::BufRead;
        let mut child = self.spawn_piped()?;
        let on_line = std::sync::Arc::new(on_line);
        let mut readers = Vec::new();
        let pipes: [(bool, Box<dyn Read + Send>); 2] = [
            (false, Box::new(child.stdout.take().expect("piped stdout"))),
            (true, Box::new(child.stderr.take().expect("piped stderr"))),
        ];
        for (is_err, pipe) in pipes {
            let f = on_line.clone();
            readers.push(std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).split(b'\n').map_while(|l| l.ok()) {
                    f(is_err, String::from_utf8_lossy(&line).trim_end_matches('\r'));
                }
            }));
        }
        Ok(Started { child, readers, start: Instant::now() })
    }

    /// Runs attached to our terminal (stdin, stdout, stderr inherited): interactive shells.
    pub fn run_interactive(&self) -> Result<ExitStatus> {
        log::status_v(2, format!("$ {}", self.display()));
        let mut child = self.command(true)?.spawn().map_err(|e| spawn_error(&self.program, e))?;
        Ok(child.wait()?)
    }
}

/// A program started by [`Proc::start_lines`].
pub struct Started {
    child: std::process::Child,
    readers: Vec<std::thread::JoinHandle<()>>,
    pub start: Instant,
}

impl Started {
    /// Its exit status once it has ended (all its output read by then).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.try_wait()? {
            Some(st) => {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                Ok(Some(st))
            }
            None => Ok(None),
        }
    }

    /// Waits for its end with `beat`'s progress lines; an interrupt asks it to stop (once) and
    /// waits on, so that it can clean up, then is the error.
    pub fn wait_watched(&mut self, beat: &mut log::Heartbeat) -> Result<ExitStatus> {
        let mut stopping = false;
        let status = loop {
            if let Some(s) = self.try_wait()? {
                break s;
            }
            if interrupted() && !stopping {
                self.terminate();
                stopping = true;
            }
            beat.tick();
            std::thread::sleep(Duration::from_millis(100));
        };
        if interrupted() {
            return Err(Fail::interrupted());
        }
        Ok(status)
    }

    /// Asks it to stop (SIGTERM to its whole process group: a script's background jobs too),
    /// so that it can clean up as on an interrupt.
    pub fn terminate(&self) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGTERM);
        }
    }
}

/// Makes `cmd`'s child lead a process group of its own (unless `interactive`: it must stay in
/// the terminal's foreground group to read it) and receive SIGTERM when this process dies.
fn die_with_us(cmd: &mut Command, interactive: bool) {
    use std::os::unix::process::CommandExt;
    if !interactive {
        cmd.process_group(0);
    }
    // SAFETY: getpid before the fork; after it only async-signal-safe calls (prctl, getppid).
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between the fork and the prctl: stop now.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

fn spawn_error(program: &OsStr, e: std::io::Error) -> Fail {
    if e.kind() == std::io::ErrorKind::NotFound {
        Fail::new(format!("cannot run `{}`: not found in PATH", program.to_string_lossy()))
    } else {
        Fail::new(format!("cannot run `{}`: {e}", program.to_string_lossy()))
    }
}

/// Single-quotes a word for a POSIX shell when it needs it.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Finds `name` in PATH (the way a shell would), without running it.
pub fn which(name: &str) -> Option<Utf8PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(name);
        if let Ok(md) = std::fs::metadata(&cand) {
            use std::os::unix::fs::PermissionsExt;
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Utf8PathBuf::from_path_buf(cand).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_programs_hand_over_their_lines_and_can_be_stopped() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut p = Proc::new("sh")
            .args(["-c", "echo out; echo err >&2; printf 'no newline'; exit 3"])
            .start_lines(move |is_err, l| s.lock().unwrap().push((is_err, l.to_string())))
            .unwrap();
        let status = loop {
            if let Some(st) = p.try_wait().unwrap() {
                break st;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(status.code(), Some(3));
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, [(false, "no newline".to_string()), (false, "out".to_string()), (true, "err".to_string())]);
        // SIGTERM reaches it.
        let mut p = Proc::new("sleep").arg("3600").start_lines(|_, _| {}).unwrap();
        p.terminate();
        let t = Instant::now();
        let status = loop {
            if let Some(st) = p.try_wait().unwrap() {
                break st;
            }
            // A guard against a hang; the exit by signal 15 below is the proof.
            assert!(t.elapsed() < Duration::from_secs(300), "SIGTERM did not stop it");
            std::thread::sleep(Duration::from_millis(5));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15));
    }

    /// A script's background job goes with it when it runs in a group of its own.
    #[test]
    fn a_group_is_stopped_whole() {
        let pid = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let p2 = pid.clone();
        let mut p = Proc::new("bash")
            .args(["-c", "sleep 3600 & echo $!; wait"])
            .start_lines(move |is_err, l| {
                if !is_err {
                    *p2.lock().unwrap() = l.to_string();
                }
            })
            .unwrap();
        let t = Instant::now();
        while pid.lock().unwrap().is_empty() {
            assert!(t.elapsed() < Duration::from_secs(10), "no pid");
            std::thread::sleep(Duration::from_millis(5));
        }
        let job = pid.lock().unwrap().clone();
        p.terminate();
        // try_wait reads the output to its end: a job that lives on holds it open. The job
        // sleeps an hour, so only the group's signal ends it while the test runs; the deadline
        // is a guard against a hang, not a claim about time.
        let stopping = Instant::now();
        while p.try_wait().unwrap().is_none() {
            assert!(stopping.elapsed() < Duration::from_secs(300), "the group did not stop (its job held the pipe)");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Its pipe is closed before the kernel marks it a zombie: wait for gone or a zombie,
        // which only the group's signal brings long before the job's hour (the deadline is a
        // guard against a hang, not a claim about time).
        let ended = || {
            let stat = std::fs::read_to_string(format!("/proc/{job}/stat")).unwrap_or_default();
            stat.is_empty() || stat.contains(") Z ")
        };
        while !ended() && stopping.elapsed() < Duration::from_secs(300) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(ended(), "the background job lives on");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("go"), "go");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn error_lines_keep_the_first_and_the_last() {
        use std::os::unix::process::ExitStatusExt;
        let c = |stderr: &str| Captured {
            status: ExitStatus::from_raw(256),
            stdout: String::new(),
            stderr: stderr.into(),
            elapsed: Duration::ZERO,
        };
        assert_eq!(c("a\n\nb\n").error_lines(2), "a\nb");
        assert_eq!(
            c("DEPRECATED\nStep 1\nStep 2\nerror: layer gone\n").error_lines(2),
            "DEPRECATED\nerror: layer gone"
        );
    }

    #[test]
    fn runs_and_captures_with_env_and_dir() {
        let out = Proc::new("sh")
            .args(["-c", "echo \"$X\" ; pwd; echo err >&2; exit 3"])
            .env("X", "hello")
            .dir("/")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "hello\n/\n");
        assert_eq!(out.first_lines(1), "err");
    }

    #[test]
    fn read_fails_with_first_lines() {
        let e = Proc::new("sh").args(["-c", "echo boom >&2; exit 1"]).read().unwrap_err();
        assert!(e.msg.contains("boom"), "{e}");
        let e = Proc::new("no-such-program-here").read().unwrap_err();
        assert!(e.msg.contains("not found in PATH"), "{e}");
    }

    #[test]
    fn a_hung_probe_is_stopped_and_named() {
        let t = Instant::now();
        let e = Proc::new("sleep").arg("30").timeout(Duration::from_millis(200)).output().unwrap_err();
        assert!(e.msg.contains("`sleep 30` did not answer within"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn env_remove_hides_variable() {
        let out = Proc::new("sh").args(["-c", "echo ${HOME-unset}"]).env_remove("HOME").read().unwrap();
        assert_eq!(out, "unset\n");
    }
}
