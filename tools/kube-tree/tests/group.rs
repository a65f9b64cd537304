//! No child outlives an interrupted tool: the interrupt (here, a reader gone, as under
//! `tool 2>&1 | head -1`) ends the child's whole process group, grandchildren too. A test binary
//! of its own: the interrupt flag is process-wide, and would stop the other tests' programs.

use kube_tree::proc::{note_broken_pipe, Proc};
use std::time::{Duration, Instant};

/// Whether `pid` has ended (gone, or a zombie waiting for init to reap it).
fn ended(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    matches!(stat.rsplit(") ").next().and_then(|r| r.chars().next()), None | Some('Z'))
}

#[test]
fn a_broken_pipe_ends_the_whole_group_grandchildren_too() {
    let dir = std::env::temp_dir().join(format!("kube-tree-group-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("grandchild");
    // The child starts a grandchild in the background, writes its pid, and waits for it.
    let script = format!("sleep 300 & echo $! > '{}.tmp' && mv '{0}.tmp' '{0}'; wait", pidfile.display());
    let waiter = std::thread::spawn(move || Proc::new("sh").args(["-c", &script]).output());
    let grandchild = loop {
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            break pid.trim().to_string();
        }
        assert!(!waiter.is_finished(), "the child ended before it started its grandchild");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(!ended(&grandchild));
    note_broken_pipe();
    let res = waiter.join().unwrap();
    assert!(res.unwrap_err().msg.contains("interrupted"));
    // A deadline for a hung test, not a measure: the sleep would otherwise live 300 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ended(&grandchild) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ended(&grandchild), "the grandchild {grandchild} outlived the interrupt");
}
