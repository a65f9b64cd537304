//! What a thread works under: where its log lines go, and a flag that stops the programs it
//! runs as an interrupt would; and the process's own interrupt flag, which stops every thread. A fan-out runs each engine's share of a build in a thread of its
//! own under one, so that the share's lines (its own and its programs') carry the engine's
//! prefix, and a failure on another engine stops it and lets it clean up. A thread without one
//! logs to stderr and stops on an interrupt only.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where a thread's log lines go instead of stderr: each line, without its newline.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// A thread's sink and stop flag (see the module).
#[derive(Clone, Default)]
pub struct Scope {
    pub sink: Option<Sink>,
    pub stop: Option<Arc<AtomicBool>>,
}

thread_local! {
    static CURRENT: RefCell<Scope> = RefCell::new(Scope::default());
}

impl Scope {
    /// The scope of this thread (the default one: stderr, no stop flag).
    pub fn current() -> Scope {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Runs `f` on this thread under this scope; the thread's own comes back afterwards, a
    /// panic included.
    pub fn enter<R>(self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Scope>);
        impl Drop for Restore {
            fn drop(&mut self) {
                if let Some(s) = self.0.take() {
                    CURRENT.with(|c| *c.borrow_mut() = s);
                }
            }
        }
        let _restore = Restore(Some(CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), self))));
        f()
    }
}

/// The process's interrupt flag: SIGINT, SIGTERM and SIGHUP raise it once
/// [`crate::proc::install_interrupt_handler`] has run, and so does a reader gone.
static INTERRUPTED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

pub(crate) fn interrupt_flag() -> &'static Arc<AtomicBool> {
    INTERRUPTED.get_or_init(Default::default)
}

/// Our reader went away (a write to stderr or stdout failed with EPIPE: `tool | head -1`):
/// stop as on an interrupt, so the children are ended and the tool exits (Rust ignores
/// SIGPIPE, and a panic there would leave them running).
pub fn note_broken_pipe() {
    interrupt_flag().store(true, Ordering::SeqCst);
}

/// Whether an interrupt arrived, our reader went away ([`note_broken_pipe`]), or this thread's
/// scope was told to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst)) || stopped()
}

/// This thread's sink, if it has one.
pub(crate) fn sink() -> Option<Sink> {
    CURRENT.with(|c| c.borrow().sink.clone())
}

/// Whether this thread's stop flag is up.
pub(crate) fn stopped() -> bool {
    CURRENT.with(|c| c.borrow().stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)))
}

/// `std::thread::spawn` that carries this thread's scope into the new one: a thread a share
/// starts (its build container's wait) logs and stops as the share does.
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let scope = Scope::current();
    std::thread::spawn(move || scope.enter(f))
}

/// What a thread's panic said (its payload is a `&str` or a `String` when it said anything), so
/// whoever joins it can say it beside the thread's name.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let said = payload.downcast_ref::<&str>().map(|s| s.to_string());
    said.or_else(|| payload.downcast_ref::<String>().cloned()).unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_scope_holds_for_its_thread_and_what_it_spawns_then_goes() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let scope = Scope {
            sink: Some(Arc::new(move |l: &str| s.lock().unwrap().push(l.to_string()))),
            stop: Some(stop.clone()),
        };
        scope.enter(|| {
            crate::log::line(format_args!("one"));
            assert!(!crate::proc::interrupted());
            stop.store(true, Ordering::SeqCst);
            assert!(crate::proc::interrupted(), "the stop flag reads as an interrupt in the scope");
            spawn(|| {
                crate::log::line(format_args!("two"));
                assert!(crate::proc::interrupted(), "and in a thread it spawned");
            })
            .join()
            .unwrap();
            stop.store(false, Ordering::SeqCst);
            // A streamed program's lines, stdout and stderr, go to the sink too.
            let p = crate::proc::Proc::new("sh").args(["-c", "echo out; echo err >&2"]);
            assert!(p.run_streaming("sh").unwrap().success());
        });
        assert!(sink().is_none() && !stopped(), "the thread's own scope is back");
        let said = std::thread::spawn(|| panic!("share {} broke", 7)).join().unwrap_err();
        let plain = std::thread::spawn(|| std::panic::panic_any(3u8)).join().unwrap_err();
        assert_eq!(panic_message(said.as_ref()), "share 7 broke");
        assert_eq!(panic_message(plain.as_ref()), "no message");
        let mut seen = seen.lock().unwrap().clone();
        seen[2..].sort();
        assert_eq!(seen, ["one", "two", "err", "out"]);
        // Another thread never saw it.
        std::thread::spawn(|| assert!(sink().is_none() && !stopped())).join().unwrap();
    }
}
