//! The opening of a run: what it learns before deciding anything, asked side by side.

use crate::containers::Containers;
use crate::image::{CrossSource, ImageFacts};
use crate::job::Job;
use crate::options::RunOptions;
use crate::setup::Mode;
use crate::sync::HostStamps;
use kube_tree::{log, Fail};
use std::thread::JoinHandle;

/// What a run learned before deciding anything: the images, the containers, kube-cross's ID,
/// and the tree's stamps being taken meanwhile (rsync mode).
pub(crate) struct Opening {
    pub facts: ImageFacts,
    pub containers: Containers,
    pub cross_id: String,
    pub stamps: Option<JoinHandle<Result<HostStamps, Fail>>>,
}

impl Opening {
    /// The opening questions, side by side: is the engine there, what images and containers
    /// does it hold (everything up to the build container is decided from these answers), and
    /// meanwhile, the stamps of the tree for the sync record. Then kube-cross, pulled if missing.
    pub(crate) fn ask(job: Job, opts: &RunOptions) -> Result<Opening, Fail> {
        let (engine, setup) = (job.engine, job.setup);
        let stamps = (setup.mode == Mode::Rsync && !opts.dry_run).then(|| {
            let root = setup.tree.root.clone();
            std::thread::spawn(move || HostStamps::take(&root))
        });
        let mut questions = vec![engine.info_cmd(), ImageFacts::cmd(setup), Containers::cmd(engine.kind())];
        questions.extend(engine.context_cmd());
        let answers = engine.query_all(&questions)?;
        engine.take_info(answers[0].as_ref())?;
        engine.take_context(answers.get(3).and_then(Option::as_ref));
        log::status(format!(
            "{} mode, image {}, tree hash {}",
            setup.mode.name(),
            match setup.mode {
                Mode::Rsync => &setup.names.image,
                Mode::Bind => &setup.cross_image,
            },
            setup.names.hash
        ));
        let facts = ImageFacts::read(engine, setup, answers[1].as_ref())?;
        let containers = Containers::read(engine.kind(), answers[2].as_ref())?;
        let source = CrossSource {
            mirror: opts.mirror.clone(),
            short: opts.mirror_short,
            given: if opts.cross_image.is_some() {
                Some("--cross-image")
            } else {
                std::env::var("KUBE_CROSS_IMAGE").ok().filter(|s| !s.is_empty()).map(|_| "KUBE_CROSS_IMAGE")
            },
        };
        let cross_id = job.ensure_cross_image(&source, facts.cross_id.clone())?;
        Ok(Opening { facts, containers, cross_id, stamps })
    }
}
