//! copy-output: `build/copy-output.sh`: the binaries and generated files out of this tree's
//! data container into the tree (mtimes kept; nothing else touched). Works after --no-copy.

use dockerized::Copied;
use kube_tree::cli::{Ctx, Tool};
use kube_tree::{log, Fail, Status};

pub const TOOL: Tool = Tool {
    name: "copy-output",
    aliases: &[],
    summary: "build/copy-output.sh: binaries and generated files out of the data container",
    usage: "\
copy-output: copy _output/dockerized/bin/** and the generated files (zz_generated.*,
generated.proto, *.pb.go, types.go, vendor) out of this tree's data container (build/copy-output.sh)

Usage: copy-output [--engine docker|podman] [--dry-run]

stdout: the binaries now under _output/dockerized/bin. In bind mode (era C) output is already in
the tree: nothing to copy.",
    run,
    flags: &["--dry-run", "--engine"],
    command_after: None,
};

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let engine_flag = ctx.opt_string("--engine")?;
    let dry_run = ctx.flag("--dry-run");
    ctx.finish()?;
    kube_tree::proc::install_interrupt_handler();
    let tree = ctx.tree()?;
    match dockerized::copy_output(tree, engine_flag, dry_run)? {
        Copied::BindMode => log::status("bind mode: the build writes into the tree itself; nothing to copy"),
        Copied::Planned(plan) => plan.iter().for_each(|l| ctx.say(l)),
        Copied::Binaries(bins) => bins.iter().for_each(|b| ctx.say(b.as_str())),
    }
    Ok(Status::Ok)
}
