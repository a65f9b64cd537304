//! Running the shares: each engine's run in a thread of its own, side by side in this process,
//! its log lines (and its programs') prefixed `[engine]` by its scope, one progress line per
//! engine, platform durations measured for the next split, and on a failure the other shares
//! stopped (each cleans up as on an interrupt) and their containers of this tree removed.

use super::durations::{load_durations, save_durations};
use super::engines::EngineSpec;
use crate::containers::Containers;
use crate::options::RunOptions;
use crate::result::{self, LastRun, Pending};
use crate::run::RunResult;
use crate::setup::{save_version_defs, Mode, Setup};
use crate::sync::{HostStamps, TreeSums};
use kube_tree::proc::Proc;
use kube_tree::scope::{self, Scope, Sink};
use kube_tree::{log, Fail, Tree};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// One engine's part of the plan.
pub struct Share {
    pub engine: EngineSpec,
    pub platforms: Vec<String>,
    /// Its run's options: the fan-out's, with this engine's share ([`crate::ShareOf`]).
    pub opts: RunOptions,
    /// The command it runs (`make cross` for a release target).
    pub cmd: Vec<String>,
}

impl Share {
    /// `ENGINE<TAB>PLATFORMS<TAB>COMMAND`, the dry run's line.
    pub fn plan_line(&self, tree: &Tree) -> String {
        format!("{}\t{}\t{}", self.engine.spec, self.platforms.join(" "), self.alone(tree).display())
    }

    /// The same build as a run of its own, as a user could start it by hand: this engine, its
    /// platforms and its rsync port (the dry run shows it; the fan-out runs the library).
    pub fn alone(&self, tree: &Tree) -> Proc {
        let mut p = Proc::new("run-dockerized").arg("--kube-root").arg(&tree.root).args(["--mode", "rsync"]);
        if self.engine.program() == "podman" {
            p = p.args(["--engine", "podman"]);
        }
        p = p.args(passed_on(&self.opts)).arg("--").args(&self.cmd);
        p = p.env("KUBE_BUILD_PLATFORMS", self.platforms.join(" "));
        if let Some(share) = &self.opts.share {
            p = p.env("KUBE_RSYNC_PORT", share.rsync_port.to_string());
        }
        for var in ["KUBE_BUILD_ENGINES", "KUBE_CONTAINER_ENGINE"] {
            p = p.env_remove(var);
        }
        self.engine.apply_env(p)
    }
}

/// The flags of `opts` a share's run would be given by hand (its engine, mode and platforms
/// are the share's own).
fn passed_on(opts: &RunOptions) -> Vec<String> {
    let mut pass = Vec::new();
    let cache = opts.cache.map(|c| c.name().to_string());
    for (flag, v) in [("--mirror", &opts.mirror), ("--cross-image", &opts.cross_image), ("--cache", &cache)] {
        if let Some(v) = v {
            pass.extend([flag.to_string(), v.clone()]);
        }
    }
    let flags = [
        ("--force", opts.force),
        ("--full-sync", opts.full_sync),
        ("--no-copy", !opts.copy),
        ("--mirror-short", opts.mirror_short),
    ];
    pass.extend(flags.iter().filter(|(_, on)| *on).map(|(flag, _)| flag.to_string()));
    pass
}

/// The end of a fan-out run.
pub struct Outcome {
    /// The engine that failed first, with its platforms and why.
    pub failed: Option<String>,
    pub interrupted: bool,
}

/// A platform being built, and since when.
struct Current {
    platform: String,
    since: Instant,
}

/// What one running share has said so far.
#[derive(Default)]
struct Watch {
    current: Option<Current>,
    begun: BTreeSet<String>,
    /// Seconds spent per platform (summed over `make cross`'s categories).
    spent: BTreeMap<String, f64>,
    last: VecDeque<String>,
}

impl Watch {
    fn line(&mut self, line: &str) {
        if self.last.len() == 12 {
            self.last.pop_front();
        }
        self.last.push_back(line.to_string());
        // hack/lib/golang.sh: "Building go targets for linux/arm64:" (one platform at a time;
        // the parallel form names several and is not attributed).
        if let Some(rest) = line.split("Building go targets for ").nth(1) {
            let platform = rest.trim().trim_end_matches(':');
            if !platform.contains(' ') && !platform.is_empty() {
                self.close(Instant::now());
                self.begun.insert(platform.to_string());
                self.current = Some(Current { platform: platform.to_string(), since: Instant::now() });
            }
        }
    }

    fn close(&mut self, now: Instant) {
        if let Some(c) = self.current.take() {
            *self.spent.entry(c.platform).or_default() += now.duration_since(c.since).as_secs_f64();
        }
    }
}

/// Runs every share at once; see the module comment.
pub fn execute(tree: &Tree, shares: &[Share]) -> Result<Outcome> {
    kube_tree::proc::install_interrupt_handler();
    // The tree before any share syncs it (with the file each share would write first), for
    // settling the shares' records at the end.
    save_version_defs(tree)?;
    let before = HostStamps::take(&tree.root)?;
    let watches: Vec<Arc<Mutex<Watch>>> = shares.iter().map(|_| Arc::default()).collect();
    let mut running = Vec::new();
    for (share, watch) in shares.iter().zip(&watches) {
        match start(tree, share, watch.clone()) {
            Ok(r) => running.push(r),
            Err(e) => {
                stop_all(&mut running);
                return Err(e);
            }
        }
    }
    let end = wait_all(shares, &watches, running);
    let interrupted = kube_tree::proc::interrupted();
    if end.failed.is_some() || interrupted {
        for (i, share) in shares.iter().enumerate() {
            if end.stopped[i] || !end.done[i] || end.failed.as_ref().is_some_and(|f| f.share == i) {
                remove_tree_containers(tree, &share.engine);
            }
        }
    } else {
        record_durations(tree, shares, &watches)?;
        settle_records(tree, shares, before)?;
    }
    Ok(Outcome { failed: end.failed.map(|f| f.why), interrupted })
}

/// A share's run under way: its thread, and the flag that stops it.
struct Running {
    thread: Option<JoinHandle<Result<RunResult>>>,
    stop: Arc<AtomicBool>,
}

/// Starts a share's run in a thread of its own, under a scope that prefixes its lines with
/// `[engine]` (and watches them) and a stop flag of its own.
fn start(tree: &Tree, share: &Share, watch: Arc<Mutex<Watch>>) -> Result<Running> {
    let prefix = format!("[{}]", share.engine.spec);
    log::status(format!("{prefix} building {} ({})", share.platforms.join(" "), share.engine.program()));
    let stop = Arc::new(AtomicBool::new(false));
    let sink: Sink = Arc::new(move |line: &str| {
        // A program's line escaped too: a carriage return or an escape sequence in it could
        // otherwise draw over the prefix on a terminal.
        log::to_stderr(format_args!("{prefix} {}", log::printable(line)));
        watch.lock().unwrap_or_else(|e| e.into_inner()).line(line);
    });
    let scope = Scope { sink: Some(sink), stop: Some(stop.clone()) };
    let (tree, opts, cmd) = (tree.clone(), share.opts.clone(), share.cmd.clone());
    let thread = std::thread::Builder::new()
        .name(format!("share {}", share.engine.spec))
        .spawn(move || scope.enter(|| crate::run::run(tree, &opts, &cmd, false)))
        .map_err(|e| Fail::new(format!("cannot start the share of {}: {e}", share.engine.spec)))?;
    Ok(Running { thread: Some(thread), stop })
}

/// The share that failed first, and how.
struct FirstFailure {
    share: usize,
    why: String,
}

/// How the shares ended, each by its index.
struct Ending {
    failed: Option<FirstFailure>,
    /// Stopped by us (after another's failure, or an interrupt).
    stopped: Vec<bool>,
    /// Ended on its own or after being stopped.
    done: Vec<bool>,
}

/// Why a share that ended did not succeed (None: it did), in its own words or its last lines.
fn failure_of(share: &Share, ended: std::thread::Result<Result<RunResult>>, last: &VecDeque<String>) -> Option<String> {
    let what = format!("engine {} failed building {}", share.engine.spec, share.platforms.join(" "));
    match ended {
        Ok(Ok(res)) => match res.status {
            Some(st) if !st.success() => {
                let last: Vec<&str> = last.iter().rev().take(3).rev().map(String::as_str).collect();
                Some(format!("{what} ({st}); its last lines: {}", last.join(" | ")))
            }
            _ => None,
        },
        Ok(Err(e)) => Some(format!("{what}: {}", e.msg)),
        Err(payload) => Some(format!("{what}: its run panicked ({})", scope::panic_message(payload.as_ref()))),
    }
}

/// Waits for every share, a progress line every 15 s; on the first failure or an interrupt,
/// stops the others (each removes its build and rsync containers as on an interrupt).
fn wait_all(shares: &[Share], watches: &[Arc<Mutex<Watch>>], mut running: Vec<Running>) -> Ending {
    let start = Instant::now();
    let mut next_progress = Duration::from_secs(15);
    let mut end = Ending { failed: None, stopped: vec![false; shares.len()], done: vec![false; shares.len()] };
    loop {
        for (i, r) in running.iter_mut().enumerate() {
            let Some(thread) = r.thread.take_if(|t| t.is_finished()) else { continue };
            end.done[i] = true;
            let mut w = watches[i].lock().unwrap_or_else(|e| e.into_inner());
            w.close(Instant::now());
            let took = log::human(start.elapsed());
            match failure_of(&shares[i], thread.join(), &w.last) {
                None => log::status(format!(
                    "[{}] done: {} in {took}",
                    shares[i].engine.spec,
                    shares[i].platforms.join(" ")
                )),
                Some(why) if end.failed.is_none() && !end.stopped[i] => {
                    end.failed = Some(FirstFailure { share: i, why })
                }
                Some(_) => {}
            }
        }
        if end.failed.is_some() || kube_tree::proc::interrupted() {
            for (i, r) in running.iter().enumerate() {
                if r.thread.is_some() {
                    end.stopped[i] = true;
                    r.stop.store(true, Ordering::SeqCst);
                }
            }
        }
        if running.iter().all(|r| r.thread.is_none()) {
            return end;
        }
        if start.elapsed() >= next_progress {
            progress(shares, watches, &end.done, start);
            next_progress += Duration::from_secs(15);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One line per engine still running: what it is building, how far, for how long.
fn progress(shares: &[Share], watches: &[Arc<Mutex<Watch>>], done: &[bool], start: Instant) {
    for (i, share) in shares.iter().enumerate() {
        if done[i] {
            continue;
        }
        let w = watches[i].lock().unwrap_or_else(|e| e.into_inner());
        let state = match &w.current {
            Some(c) => format!("building {}", c.platform),
            None => "preparing".to_string(),
        };
        log::status(format!(
            "[{}] {state}: {}/{} platforms begun, {}",
            share.engine.spec,
            w.begun.len().min(share.platforms.len()),
            share.platforms.len(),
            log::human(start.elapsed())
        ));
    }
}

/// Keeps each platform's measured time per engine for the next split: the time between its
/// "Building go targets" line and the next, else the share's whole time over its platforms.
fn record_durations(tree: &Tree, shares: &[Share], watches: &[Arc<Mutex<Watch>>]) -> Result<()> {
    let mut known = load_durations(tree)?;
    for (share, watch) in shares.iter().zip(watches) {
        let w = watch.lock().unwrap_or_else(|e| e.into_inner());
        let entry = known.entry(share.engine.spec.clone()).or_default();
        for p in &share.platforms {
            if let Some(s) = w.spent.get(p) {
                entry.insert(p.clone(), (*s * 10.0).round() / 10.0);
            }
        }
    }
    save_durations(tree, &known)
}

/// Each share's record of this success, for its no-change skip next time. A share cannot write
/// it: the copy-outs of the others, before or after its own, rewrite files of the tree (the
/// generated code every share makes, the other platforms' binaries). Once all have copied out,
/// the tree must be what it was before the run with every share's copy-out applied; then each
/// share's request is recorded against the tree as it is now. Anything else changed the tree
/// while the shares ran, and no share is recorded.
fn settle_records(tree: &Tree, shares: &[Share], mut expected: HostStamps) -> Result<()> {
    let before = expected.sum;
    let mut keys = Vec::new();
    for share in shares {
        let tag = share.engine.tag();
        match Pending::take(tree, &tag)? {
            Some(p) => {
                expected.follow(&tree.root, &p.copied);
                keys.push((tag, p.key));
            }
            // It found nothing changed and did not run (a share that runs forgets its record
            // first): its record stands for the tree as it was before this run.
            None => match LastRun::load(tree, Some(&tag)) {
                Some(last) if last.host == before => keys.push((tag, last.key)),
                _ => log::status_v(2, format!("[{}] left no record of its run", share.engine.spec)),
            },
        }
    }
    if keys.len() != shares.len() {
        return Ok(());
    }
    let now = HostStamps::take(&tree.root)?;
    if now.sum != expected.sum {
        log::status("the tree changed while the engines built (besides their copy-outs): the next run builds again");
        return Ok(());
    }
    let outputs = result::outputs(tree);
    for (tag, key) in keys {
        LastRun { key, host: now.sum, outputs: outputs.clone() }.save(tree, Some(&tag))?;
    }
    Ok(())
}

/// The shares' records after the packaging: it ran the tree's scripts on the tree, and v1.20's
/// hard-link build/nsswitch.conf into each server image's context and chmod it, which moves
/// that file's ctime and nothing else. When the tree differs from what the records hold
/// (`from`) by ctimes alone, each record follows it (`to`); any other change means the tree
/// changed while the packaging ran, and the next run builds.
pub(crate) fn follow_packaging(tree: &Tree, shares: &[Share], from: TreeSums, to: TreeSums) -> Result<()> {
    if from.all == to.all {
        return Ok(());
    }
    if from.without_ctimes != to.without_ctimes {
        log::status("the tree changed while it was packaged: the next run builds again");
        return Ok(());
    }
    for share in shares {
        let tag = share.engine.tag();
        if let Some(last) = LastRun::load(tree, Some(&tag)).filter(|l| l.host == from.all) {
            LastRun { host: to.all, ..last }.save(tree, Some(&tag))?;
        }
    }
    log::status_v(2, "the packaging changed ctimes only (its hard links): the shares' records follow");
    Ok(())
}

/// After a failure: this branch's containers on `engine` go (the build, the rsync daemon and the
/// data container), so that nothing of the stopped run is left there. An engine that is gone
/// is skipped after its time limit.
fn remove_tree_containers(tree: &Tree, engine: &EngineSpec) {
    let removed = (|| -> Result<Vec<String>> {
        let e = engine.engine(false)?;
        let setup = Setup::new(tree.clone(), &e, Some(Mode::Rsync), None)?;
        let names = Containers::list(&e)?.of_branch(&setup);
        for n in &names {
            e.destroy(n);
        }
        Ok(names)
    })();
    match removed {
        Ok(n) if !n.is_empty() => log::status(format!("[{}] removed {}", engine.spec, n.join(" "))),
        Ok(_) => {}
        Err(e) => log::warn(format!("[{}] could not remove this tree's containers: {}", engine.spec, e.msg)),
    }
}

/// Stops the shares started so far and waits for them (each cleans up first).
fn stop_all(running: &mut [Running]) {
    for r in running.iter() {
        r.stop.store(true, Ordering::SeqCst);
    }
    for r in running.iter_mut() {
        if let Some(t) = r.thread.take() {
            let _ = t.join();
        }
    }
}
