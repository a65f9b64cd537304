//! make-clean: `build/make-clean.sh` without its side effects on other trees: removes `_output`
//! (module caches made writable first, symlinks removed and never followed), this tree's build,
//! rsync and data containers and its kube-build images. Dangling images only on request.

use dockerized::{apply_clean, clean_plan, Engine, Setup};
use kube_tree::cli::{Ctx, Tool};
use kube_tree::{log, Fail, Status};

pub const TOOL: Tool = Tool {
    name: "make-clean",
    aliases: &["clean"],
    summary: "build/make-clean.sh: _output and this tree's containers/images, nothing else",
    usage: "\
make-clean: remove _output and this tree's build containers and kube-build images

Usage: make-clean [--dry-run] [--all-dangling] [--engine docker|podman]

  --dry-run        list what would go (stdout: kind<TAB>name), remove nothing
  --all-dangling   also remove every dangling image on the engine (the scripts always did)

Another tree's containers and images, and unrelated images, are never touched. Refuses a root
that is /, $HOME or not a Kubernetes tree. Without a reachable engine only _output is removed.",
    run,
    flags: &["--all-dangling", "--dry-run", "--engine"],
    command_after: None,
};

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let dry_run = ctx.flag("--dry-run");
    let all_dangling = ctx.flag("--all-dangling");
    let engine_flag = ctx.opt_string("--engine")?;
    ctx.finish()?;
    let tree = ctx.tree()?;
    let home = std::env::var("HOME").ok().and_then(|h| std::fs::canonicalize(h).ok());
    if tree.root == "/" || home.as_deref() == Some(tree.root.as_std_path()) {
        return Err(Fail::new(format!("refusing to clean {}: not a place for a build tree", tree.root)));
    }
    kube_tree::proc::install_interrupt_handler();
    let engine = Engine::new(engine_flag, false)?;
    let reachable = match engine.check() {
        Ok(()) => true,
        Err(e) => {
            log::warn(format!("{}; removing _output only", e.msg));
            false
        }
    };
    let setup = Setup::new(tree, &engine, Some("rsync"), None)?;
    let plan = clean_plan(reachable.then_some(&engine), &setup, all_dangling)?;
    let mut lines = Vec::new();
    lines.extend(plan.containers.iter().map(|c| format!("container\t{c}")));
    lines.extend(plan.images.iter().map(|i| format!("image\t{i}")));
    lines.extend(plan.dangling.iter().map(|i| format!("dangling\t{i}")));
    lines.extend(plan.output.iter().map(|o| format!("dir\t{o}")));
    for l in &lines {
        ctx.say(l);
    }
    if dry_run {
        log::status(format!("would remove {} item(s)", lines.len()));
        return Ok(Status::Ok);
    }
    apply_clean(reachable.then_some(&engine), &plan)?;
    log::status(format!(
        "removed {} container(s), {} image(s){}{}",
        plan.containers.len(),
        plan.images.len() + plan.dangling.len(),
        if plan.output.is_some() { ", _output" } else { "" },
        if reachable { "" } else { " (engine unreachable)" }
    ));
    Ok(Status::Ok)
}
