//! make-clean: `build/make-clean.sh` without its side effects on other trees: removes `_output`
//! (module caches made writable first, symlinks removed and never followed), this tree's build,
//! rsync and data containers and its kube-build images. Dangling images only on request.

use dockerized::{all_trees_plan, apply_clean, clean_plan, sizes, CleanPlan, Engine, Setup};
use kube_tree::cli::{Ctx, Tool};
use kube_tree::{log, Fail, Status};

pub const TOOL: Tool = Tool {
    name: "make-clean",
    aliases: &["clean"],
    summary: "build/make-clean.sh: _output and this tree's containers/images, nothing else",
    usage: "\
make-clean: remove _output and this tree's build containers and kube-build images

Usage: make-clean [--dry-run] [--all-dangling] [--engine docker|podman]
       make-clean --all-trees [--yes] [--dry-run] [--engine docker|podman]

  --dry-run        list what would go (stdout: kind<TAB>name<TAB>bytes, `?` when the engine does
                   not say), remove nothing; stderr sums it up
  --all-dangling   also remove every dangling image on the engine (the scripts always did)
  --all-trees      the kit's containers and kube-build images of every tree on the engine (by the
                   io.k8s-build-kit labels and by the scripts' kube-build-<hash>-... naming),
                   never anything else; no tree needed, no _output touched
  --yes            with --all-trees: do not ask (without a terminal to ask on, it is required)

Another tree's containers and images, and unrelated images, are never touched (but with
--all-trees). Refuses a root that is /, $HOME or not a Kubernetes tree. Without a reachable
engine only _output is removed.",
    run,
    flags: &["--all-dangling", "--all-trees", "--dry-run", "--engine", "--yes"],
    command_after: None,
};

/// `--dry-run`'s listing: kind, name and size per line; the total on stderr.
fn list(ctx: &mut Ctx, engine: Option<&Engine>, plan: &CleanPlan) {
    let size = sizes(engine, plan);
    let mut total = 0;
    let mut n = 0;
    let mut say = |kind: &str, name: String| {
        let bytes = size.get(&name).copied();
        total += bytes.unwrap_or(0);
        n += 1;
        ctx.say(format!("{kind}\t{name}\t{}", bytes.map(|b| b.to_string()).unwrap_or_else(|| "?".into())));
    };
    plan.containers.iter().for_each(|c| say("container", c.clone()));
    plan.images.iter().for_each(|i| say("image", i.clone()));
    plan.dangling.iter().for_each(|i| say("dangling", i.clone()));
    plan.output.iter().for_each(|o| say("dir", o.to_string()));
    log::status(format!("would remove {n} item(s), {:.2} GB", total as f64 / 1e9));
}

/// What a real run removes, one `kind<TAB>name` line each.
fn say_removed(ctx: &mut Ctx, plan: &CleanPlan) {
    plan.containers.iter().for_each(|c| ctx.say(format!("container\t{c}")));
    plan.images.iter().for_each(|i| ctx.say(format!("image\t{i}")));
    plan.dangling.iter().for_each(|i| ctx.say(format!("dangling\t{i}")));
    plan.output.iter().for_each(|o| ctx.say(format!("dir\t{o}")));
}

/// `--all-trees`: the kit's objects of every tree on the engine.
fn every_tree(ctx: &mut Ctx, engine_flag: Option<String>, dry_run: bool, yes: bool) -> Result<Status, Fail> {
    kube_tree::proc::install_interrupt_handler();
    let engine = Engine::new(engine_flag, false)?;
    engine.check()?;
    let (plan, trees) = all_trees_plan(&engine)?;
    if dry_run {
        list(ctx, Some(&engine), &plan);
        return Ok(Status::Ok);
    }
    let what = format!("{} container(s) and {} image(s) of {trees} tree(s)", plan.containers.len(), plan.images.len());
    if plan.containers.is_empty() && plan.images.is_empty() {
        log::status("nothing of the kit's on the engine");
        return Ok(Status::Ok);
    }
    if !yes {
        use std::io::{BufRead, IsTerminal, Write};
        if !std::io::stdin().is_terminal() {
            return Err(Fail::new(format!(
                "--all-trees would remove {what}: pass --yes to confirm (or --dry-run to list them)"
            )));
        }
        eprint!("remove {what}? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") && !answer.trim().eq_ignore_ascii_case("yes") {
            log::status("nothing removed");
            return Ok(Status::Ok);
        }
    }
    say_removed(ctx, &plan);
    apply_clean(Some(&engine), &plan)?;
    log::status(format!("removed {what}"));
    Ok(Status::Ok)
}

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let dry_run = ctx.flag("--dry-run");
    let all_dangling = ctx.flag("--all-dangling");
    let all_trees = ctx.flag("--all-trees");
    let yes = ctx.flag("--yes");
    let engine_flag = ctx.opt_string("--engine")?;
    ctx.finish()?;
    if yes && !all_trees {
        return Err(Fail::new("--yes goes with --all-trees"));
    }
    if all_trees {
        return every_tree(ctx, engine_flag, dry_run, yes);
    }
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
    if dry_run {
        list(ctx, reachable.then_some(&engine), &plan);
        return Ok(Status::Ok);
    }
    say_removed(ctx, &plan);
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
