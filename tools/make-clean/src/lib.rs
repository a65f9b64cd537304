//! make-clean: `build/make-clean.sh` without its side effects on other trees: removes `_output`
//! (module caches made writable first, symlinks removed and never followed), this tree's build,
//! rsync and data containers and its kube-build images. Dangling images only on request.

use dockerized::{all_trees_plan, apply_clean, clean_plan, sizes, CleanPlan, Engine, EngineChoice, Mode, Setup};
use kube_tree::cli::{Ctx, Flag, Tool};
use kube_tree::json::Json;
use kube_tree::{log, Fail, Status};

pub const TOOL: Tool = Tool {
    name: "make-clean",
    aliases: &["clean"],
    summary: "build/make-clean.sh: _output and this tree's containers/images, nothing else",
    usage: "\
make-clean: remove _output and this tree's build containers and kube-build images

Usage: make-clean [--dry-run] [--all-dangling] [--cache] [--engine docker|podman]
       make-clean --all-trees [--yes] [--dry-run] [--cache] [--engine docker|podman]",
    flags: &[
        Flag::switch("--dry-run", "list what would go, with sizes (kind<TAB>name<TAB>bytes); remove nothing"),
        Flag::switch("--all-dangling", "also remove every dangling image on the engine (the scripts always did)"),
        Flag::switch(
            "--all-trees",
            "the kit's containers and kube-build images of every tree on the engine, never anything else; \
             no tree needed, no _output touched",
        ),
        Flag::switch(
            "--cache",
            "also remove the shared Go build cache volume (k8s-build-kit-go-cache, or KUBE_KIT_CACHE_VOLUME), \
             only if labelled as the kit's",
        ),
        Flag::switch("--yes", "with --all-trees: do not ask (without a terminal to ask on, it is required)"),
        Flag::value("--engine", "docker|podman", "the engine to clean (default docker)").env("KUBE_CONTAINER_ENGINE"),
    ],
    notes: "\
Another tree's containers and images are never touched (but with --all-trees). Refuses a root
that is /, $HOME or not a Kubernetes tree. stdout: what was removed, kind<TAB>name per line.",
    run,
    takes_command: false,
};

/// One thing a plan removes.
struct Item {
    kind: &'static str,
    name: String,
    /// None when the engine does not say.
    bytes: Option<u64>,
}

/// A plan's items in the order they are removed; sizes only when asked for (a dry run).
fn items(plan: &CleanPlan, size: Option<&std::collections::HashMap<String, u64>>) -> Vec<Item> {
    let named = |kind: &'static str, names: &[String]| {
        names.iter().map(move |n| Item { kind, name: n.clone(), bytes: None }).collect::<Vec<_>>()
    };
    let mut out = named("container", &plan.containers);
    out.extend(named("image", &plan.images));
    out.extend(named("dangling", &plan.dangling));
    out.extend(plan.output.iter().map(|o| Item { kind: "dir", name: o.to_string(), bytes: None }));
    out.extend(plan.cache.iter().map(|v| Item { kind: "volume", name: v.clone(), bytes: None }));
    for i in &mut out {
        i.bytes = size.and_then(|s| s.get(&i.name).copied());
    }
    out
}

/// The items on stdout: TSV lines (`kind<TAB>name[<TAB>bytes]`, control characters in a
/// name escaped so that each line keeps its fields) or one JSON object.
fn say_items(ctx: &mut Ctx, items: &[Item], dry_run: bool) {
    for l in item_lines(items, dry_run, ctx.json) {
        ctx.say(l);
    }
}

/// The lines [`say_items`] prints.
fn item_lines(items: &[Item], dry_run: bool, json: bool) -> Vec<String> {
    if json {
        let arr = items.iter().map(|i| {
            Json::obj([
                ("kind", Json::str(i.kind)),
                ("name", Json::str(&i.name)),
                ("bytes", i.bytes.map(|b| Json::Num(b as f64)).unwrap_or(Json::Null)),
            ])
        });
        let total: u64 = items.iter().filter_map(|i| i.bytes).sum();
        let j = Json::obj([
            ("dry_run", Json::Bool(dry_run)),
            ("items", Json::Arr(arr.collect())),
            ("total_bytes", Json::Num(total as f64)),
        ]);
        return vec![j.render()];
    }
    let line = |i: &Item| {
        let name = log::printable(&i.name);
        if dry_run {
            let bytes = i.bytes.map(|b| b.to_string()).unwrap_or_else(|| "?".into());
            format!("{}\t{name}\t{bytes}", i.kind)
        } else {
            format!("{}\t{name}", i.kind)
        }
    };
    items.iter().map(line).collect()
}

/// `--dry-run`'s listing: kind, name and size per line; the total on stderr.
fn list(ctx: &mut Ctx, engine: Option<&Engine>, plan: &CleanPlan) {
    let size = sizes(engine, plan);
    let items = items(plan, Some(&size));
    let total: u64 = items.iter().filter_map(|i| i.bytes).sum();
    say_items(ctx, &items, true);
    log::status(format!("would remove {} item(s), {:.2} GB", items.len(), total as f64 / 1e9));
    if let (Some(e), None) = (engine, &plan.cache) {
        say_kept_cache(e);
    }
}

/// A dry run without --cache: the shared Go cache stays; how big it is.
fn say_kept_cache(engine: &Engine) {
    let Ok(volume) = dockerized::cache::volume_name() else { return };
    if dockerized::cache::cache_exists(engine, &volume).unwrap_or(false) {
        let size = dockerized::cache::cache_size(engine, &volume)
            .map_or_else(|| "size unknown".to_string(), |n| format!("{:.2} GB", n as f64 / 1e9));
        log::status(format!("kept: the shared Go cache {volume} ({size}) of every tree; --cache removes it"));
    }
}

/// What a real run removes, one `kind<TAB>name` line each.
fn say_removed(ctx: &mut Ctx, plan: &CleanPlan) {
    say_items(ctx, &items(plan, None), false);
}

/// `--all-trees`: the kit's objects of every tree on the engine.
fn every_tree(ctx: &mut Ctx, engine_flag: Option<EngineChoice>, flags: Flags) -> Result<Status, Fail> {
    let Flags { dry_run, yes, cache } = flags;
    kube_tree::proc::install_interrupt_handler();
    let engine = Engine::new(engine_flag, false)?;
    engine.check()?;
    let (mut plan, trees) = all_trees_plan(&engine)?;
    if cache {
        plan.with_cache(&engine)?;
    }
    if dry_run {
        list(ctx, Some(&engine), &plan);
        return Ok(Status::Ok);
    }
    let what = format!(
        "{} container(s) and {} image(s) of {trees} tree(s){}",
        plan.containers.len(),
        plan.images.len(),
        if plan.cache.is_some() { " and the shared Go cache" } else { "" }
    );
    if plan.containers.is_empty() && plan.images.is_empty() && plan.cache.is_none() {
        log::status("nothing of the kit's on the engine");
        say_removed(ctx, &plan);
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
            say_items(ctx, &[], false);
            return Ok(Status::Ok);
        }
    }
    say_removed(ctx, &plan);
    apply_clean(Some(&engine), &plan)?;
    log::status(format!("removed {what}"));
    Ok(Status::Ok)
}

/// The --all-trees run's switches.
#[derive(Clone, Copy)]
struct Flags {
    dry_run: bool,
    yes: bool,
    cache: bool,
}

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let cache = ctx.flag("--cache");
    let dry_run = ctx.flag("--dry-run");
    let all_dangling = ctx.flag("--all-dangling");
    let all_trees = ctx.flag("--all-trees");
    let yes = ctx.flag("--yes");
    let engine_flag = dockerized::engine_flag(ctx)?;
    ctx.finish()?;
    if yes && !all_trees {
        return Err(Fail::new("--yes goes with --all-trees"));
    }
    if all_trees {
        return every_tree(ctx, engine_flag, Flags { dry_run, yes, cache });
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
    let setup = Setup::new(tree, &engine, Some(Mode::Rsync), None)?;
    let mut plan = clean_plan(reachable.then_some(&engine), &setup, all_dangling)?;
    if cache && reachable {
        plan.with_cache(&engine)?;
    }
    if dry_run {
        list(ctx, reachable.then_some(&engine), &plan);
        return Ok(Status::Ok);
    }
    say_removed(ctx, &plan);
    apply_clean(reachable.then_some(&engine), &plan)?;
    log::status(format!(
        "removed {} container(s), {} image(s){}{}{}",
        plan.containers.len(),
        plan.images.len() + plan.dangling.len(),
        if plan.output.is_some() { ", _output" } else { "" },
        if plan.cache.is_some() { ", the shared Go cache" } else { "" },
        if reachable { "" } else { " (engine unreachable)" }
    ));
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::{item_lines, Item};

    #[test]
    fn a_name_with_control_characters_keeps_its_line_and_fields() {
        let items = [
            Item { kind: "dir", name: "/src/a\tb\nc/_output".into(), bytes: Some(12) },
            Item { kind: "image", name: "kube-build:build-0123456789-6".into(), bytes: None },
        ];
        assert_eq!(
            item_lines(&items, true, false),
            ["dir\t/src/a\\tb\\nc/_output\t12", "image\tkube-build:build-0123456789-6\t?"]
        );
        assert!(item_lines(&items, false, false).iter().all(|l| l.split('\t').count() == 2 && !l.contains('\n')));
        // JSON keeps the name exactly (in its own escapes); a size not known is null.
        assert_eq!(
            item_lines(&items, true, true),
            [
                r#"{"dry_run":true,"items":[{"kind":"dir","name":"/src/a\tb\nc/_output","bytes":12},{"kind":"image","name":"kube-build:build-0123456789-6","bytes":null}],"total_bytes":12}"#
            ]
        );
    }
}
