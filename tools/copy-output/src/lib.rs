//! copy-output: `build/copy-output.sh`: the binaries and generated files out of this tree's
//! data container into the tree (mtimes kept; nothing else touched). Works after --no-copy.

use dockerized::{copy_json, Copied, Mode};
use kube_tree::cli::{Ctx, Flag, Tool};
use kube_tree::{log, Fail, Status};

pub const TOOL: Tool = Tool {
    name: "copy-output",
    aliases: &[],
    summary: "build/copy-output.sh: binaries and generated files out of the data container",
    usage: "\
copy-output: copy _output/dockerized/bin/** and the generated files (zz_generated.*,
generated.proto, *.pb.go, types.go, vendor) out of this tree's data container (build/copy-output.sh)

Usage: copy-output [--engine docker|podman] [--dry-run]",
    flags: &[
        Flag::value("--engine", "docker|podman", "the engine holding the data container (default docker)")
            .env("KUBE_CONTAINER_ENGINE"),
        Flag::switch("--dry-run", "print the engine and rsync commands, in order; run none"),
    ],
    notes: "\
stdout: the binaries now under _output/dockerized/bin (--dry-run: the engine and rsync commands,
in order). In bind mode (era C) output is already in the tree: nothing to copy. With --json one
object: tree, mode, and `commands` (--dry-run) or `binaries`.",
    run,
    takes_command: false,
};

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let engine_flag = dockerized::engine_flag(ctx)?;
    let dry_run = ctx.flag("--dry-run");
    ctx.finish()?;
    kube_tree::proc::install_interrupt_handler();
    let tree = ctx.tree()?;
    let root = tree.root.clone();
    let copied = dockerized::copy_output(tree, engine_flag, dry_run)?;
    if ctx.json {
        let j = match &copied {
            Copied::BindMode => copy_json(&root, Mode::Bind, None, &[]),
            Copied::Planned(plan) => copy_json(&root, Mode::Rsync, Some(plan), &[]),
            Copied::Binaries(bins) => copy_json(&root, Mode::Rsync, None, bins),
        };
        ctx.say(j.render());
    }
    match copied {
        Copied::BindMode => log::status("bind mode: the build writes into the tree itself; nothing to copy"),
        _ if ctx.json => {}
        Copied::Planned(plan) => plan.iter().for_each(|l| ctx.say(l)),
        Copied::Binaries(bins) => bins.iter().for_each(|b| ctx.say(log::printable(b.as_str()))),
    }
    Ok(Status::Ok)
}
