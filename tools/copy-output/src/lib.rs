//! copy-output: `build/copy-output.sh`: the binaries and generated files out of this tree's
//! data container into the tree (mtimes kept; nothing else touched). Works after --no-copy.

use dockerized::{
    built_binaries, copy_out, keep_rsyncd, rsyncd_key, start_rsyncd, Cleanup, Containers, CopyOut, Engine, Mode, Setup,
};
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
    command_after: None,
};

fn run(ctx: &mut Ctx) -> Result<Status, Fail> {
    let engine_flag = ctx.opt_string("--engine")?;
    let dry_run = ctx.flag("--dry-run");
    ctx.finish()?;
    kube_tree::proc::install_interrupt_handler();
    let tree = ctx.tree()?;
    let engine = Engine::new(engine_flag, dry_run)?;
    let setup = Setup::new(tree, &engine, None, None)?;
    if setup.mode == Mode::Bind {
        engine.check()?;
        log::status("bind mode: the build writes into the tree itself; nothing to copy");
        return Ok(Status::Ok);
    }
    let image = ["image", "inspect", "--format", "{{.Id}}", &setup.names.image].map(String::from).to_vec();
    let answers = engine.query_all(&[Engine::info_cmd(), image, Containers::cmd()])?;
    engine.take_info(answers[0].as_ref())?;
    let image_id = answers[1].as_ref().filter(|a| a.success()).map(|a| a.stdout.trim().to_string()).unwrap_or_default();
    let containers = Containers::read(answers[2].as_ref())?;
    let data_id = match containers.get(&setup.names.data) {
        Some(d) => d.id.clone(),
        None if dry_run => String::new(),
        None => {
            return Err(Fail::new(format!(
                "no data container {} for this tree: nothing was built in a container here (run-dockerized first)",
                setup.names.data
            )))
        }
    };
    let mut cleanup = Cleanup::new(&engine);
    let key = rsyncd_key(&image_id, &data_id, &setup.user);
    let rsyncd = start_rsyncd(&engine, &setup, &key, Some(&containers), &mut cleanup)?;
    copy_out(&setup, &rsyncd, &engine, CopyOut::Full)?;
    if keep_rsyncd() && !kube_tree::proc::interrupted() {
        cleanup.keep(&setup.names.rsync);
    }
    drop(cleanup);
    if dry_run {
        for l in engine.plan.borrow().iter() {
            ctx.say(l);
        }
        return Ok(Status::Ok);
    }
    for b in built_binaries(&setup.tree) {
        ctx.say(b.as_str());
    }
    Ok(Status::Ok)
}
