//! build-shell: `build/shell.sh`, an interactive shell in the build container; output is not
//! copied back.

use dockerized::RunOptions;
use kube_tree::cli::{Ctx, Tool};
use kube_tree::{Fail, Status};

pub const TOOL: Tool = Tool {
    name: "build-shell",
    aliases: &["shell"],
    summary: "build/shell.sh: an interactive shell in the build container (output not copied back)",
    usage: "\
build-shell: an interactive shell (or the given command) in the build container (build/shell.sh)

Usage: build-shell [options] [--] [command...]",
    flags: RunOptions::FLAGS,
    notes: "\
The flags are run-dockerized's, but a shell never copies anything back and always starts. A tty
when stdin is a terminal; the sources are synced in first (rsync mode). --dry-run prints every
engine command (--json: one object with the plan); --json without --dry-run is refused.",
    run,
    takes_command: true,
};

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let mut opts = RunOptions::from_ctx(ctx)?;
    if ctx.json && !opts.dry_run {
        return Err(Fail::new(
            "--json is not supported for a shell: it prints no data (--dry-run --json prints its plan)",
        ));
    }
    opts.copy = false;
    let cmd = if ctx.command.is_empty() { vec!["bash".to_string()] } else { ctx.command.clone() };
    let tree = ctx.tree()?;
    let res = dockerized::run(tree, &opts, &cmd, true)?;
    if ctx.json {
        ctx.say(res.subject.plan_json(&cmd, &res.plan).render());
    } else {
        res.plan.iter().for_each(|l| ctx.say(l));
    }
    Ok(match res.status {
        Some(s) if !s.success() => Status::Problems(1),
        _ => Status::Ok,
    })
}
