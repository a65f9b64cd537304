//! `cargo xtask bench check-vendor`: check-vendor on the real tree against
//! `find vendor staging -type l`, interleaved in one run, several rounds; prints medians and ratio.

use camino::Utf8PathBuf;
use kube_tree::proc::Proc;
use kube_tree::{log, Fail};
use std::ffi::OsString;
use std::time::Duration;

pub fn run(args: Vec<OsString>) -> i32 {
    match bench(args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("xtask bench: error: {e}");
            2
        }
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times one command; it must succeed with the expected exit code.
fn time(p: &Proc, want_code: i32) -> Result<Duration, Fail> {
    let out = p.output()?;
    if out.status.code() != Some(want_code) {
        return Err(Fail::new(format!("`{}` exited {} (wanted {want_code}): {}", p.display(), out.status, out.first_lines(2))));
    }
    Ok(out.elapsed)
}

fn bench(args: Vec<OsString>) -> Result<bool, Fail> {
    let mut a = pico_args::Arguments::from_vec(args);
    let rounds: usize = a.opt_value_from_str("--rounds")?.unwrap_or(20);
    let tree: Option<Utf8PathBuf> = a.opt_value_from_str::<_, String>("--tree")?.map(Utf8PathBuf::from);
    let what: Option<String> = a.opt_free_from_str()?;
    let rest = a.finish();
    if what.as_deref() != Some("check-vendor") || !rest.is_empty() || rounds < 3 {
        return Err(Fail::new("usage: cargo xtask bench check-vendor [--rounds N>=3] [--tree DIR]"));
    }
    let tree = match tree {
        Some(t) => t,
        None => testkit::real_tree()?,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ws = manifest_dir.parent().expect("xtask lives in the workspace");
    let step = log::Step::start("building check-vendor (release)");
    Proc::new(&cargo).args(["build", "--release", "--locked", "-q", "-p", "check-vendor"]).dir(ws).read()?;
    step.done();
    let target = std::env::var("CARGO_TARGET_DIR").map(Utf8PathBuf::from).unwrap_or_else(|_| ws.join("target"));
    let bin = target.join("release/check-vendor");

    let find = Proc::new("find").args(["vendor", "staging", "-type", "l"]).dir(&tree);
    let ours = Proc::new(&bin).args(["-q", "--kube-root", tree.as_str()]).dir(&tree);
    // Warm the page cache for both before measuring.
    time(&find, 0)?;
    time(&ours, 0)?;
    let (mut tf, mut to) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        tf.push(time(&find, 0)?);
        to.push(time(&ours, 0)?);
    }
    let (mf, mo) = (median(&mut tf), median(&mut to));
    let ratio = mo.as_secs_f64() / mf.as_secs_f64();
    println!("tree\t{tree}");
    println!("rounds\t{rounds}");
    println!("find vendor staging -type l\tmedian {:.1} ms\tmin {:.1} ms", ms(mf), ms(tf[0]));
    println!("check-vendor\tmedian {:.1} ms\tmin {:.1} ms", ms(mo), ms(to[0]));
    println!("ratio check-vendor/find\t{ratio:.2}");
    let ok = ratio <= 2.0 && mo < Duration::from_millis(100);
    println!("target (<= 2x find, < 100 ms)\t{}", if ok { "met" } else { "MISSED" });
    Ok(ok)
}
