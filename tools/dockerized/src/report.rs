//! What the tools print with `--json`: a run's plan (a dry run's engine and rsync commands, in
//! order) and a run's outcome, each one JSON object on stdout.

use crate::engine::Engine;
use crate::setup::{Mode, Setup};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::json::Json;

/// What a containerized run is about: the tree, the engine, the mode and the images.
#[derive(Debug, Clone)]
pub struct RunSubject {
    pub tree: Utf8PathBuf,
    pub engine: String,
    pub mode: Mode,
    /// The image the build container runs: the tree's kube-build image (rsync mode) or
    /// kube-cross (bind mode).
    pub image: String,
    pub cross_image: String,
    /// The scripts' hash of the tree (the part every container and image name carries).
    pub tree_hash: String,
}

impl RunSubject {
    pub(crate) fn of(engine: &Engine, setup: &Setup) -> RunSubject {
        RunSubject {
            tree: setup.tree.root.clone(),
            engine: engine.program.clone(),
            mode: setup.mode,
            image: match setup.mode {
                Mode::Rsync => setup.names.image.clone(),
                Mode::Bind => setup.cross_image.clone(),
            },
            cross_image: setup.cross_image.clone(),
            tree_hash: setup.names.hash.clone(),
        }
    }

    fn fields(&self, cmd: &[String]) -> Vec<(&'static str, Json)> {
        vec![
            ("tree", Json::str(self.tree.as_str())),
            ("engine", Json::str(&self.engine)),
            ("mode", Json::str(self.mode.name())),
            ("image", Json::str(&self.image)),
            ("cross_image", Json::str(&self.cross_image)),
            ("tree_hash", Json::str(&self.tree_hash)),
            ("command", Json::strs(cmd.iter().cloned())),
        ]
    }

    /// A dry run's plan: every command it would run, in order, as a shell would take it
    /// (passwords masked).
    pub fn plan_json(&self, cmd: &[String], plan: &[String]) -> Json {
        let mut f = self.fields(cmd);
        f.extend([("dry_run", Json::Bool(true)), ("commands", Json::strs(plan.iter().cloned()))]);
        Json::obj(f)
    }

    /// A run's outcome: whether the command succeeded, where its output went, the binaries.
    pub fn outcome_json(&self, cmd: &[String], ok: bool, output: &str, binaries: &[Utf8PathBuf]) -> Json {
        let mut f = self.fields(cmd);
        f.extend([
            ("dry_run", Json::Bool(false)),
            ("ok", Json::Bool(ok)),
            ("output", Json::str(output)),
            ("binaries", binaries_json(binaries)),
        ]);
        Json::obj(f)
    }
}

/// Paths as a JSON array of strings.
pub fn binaries_json(paths: &[Utf8PathBuf]) -> Json {
    Json::strs(paths.iter().map(|p| p.to_string()))
}

/// copy-output's answer: the tree, its mode, and the commands it would run (a dry run) or the
/// binaries now under `_output/dockerized/bin` (none in bind mode: nothing is copied).
pub fn copy_json(tree: &Utf8Path, mode: Mode, plan: Option<&[String]>, binaries: &[Utf8PathBuf]) -> Json {
    let mut f = vec![("tree", Json::str(tree.as_str())), ("mode", Json::str(mode.name()))];
    match plan {
        Some(p) => f.extend([("dry_run", Json::Bool(true)), ("commands", Json::strs(p.iter().cloned()))]),
        None => f.extend([("dry_run", Json::Bool(false)), ("binaries", binaries_json(binaries))]),
    }
    Json::obj(f)
}

#[cfg(test)]
mod tests {
    use super::{copy_json, RunSubject};
    use crate::setup::Mode;
    use camino::{Utf8Path, Utf8PathBuf};

    #[test]
    fn plans_and_outcomes_are_one_object_each() {
        let s = RunSubject {
            tree: "/src/kubernetes".into(),
            engine: "docker".into(),
            mode: Mode::Rsync,
            image: "kube-build:build-0123456789-5-v1".into(),
            cross_image: "k8s.gcr.io/kube-cross:v1".into(),
            tree_hash: "0123456789".into(),
        };
        let cmd = ["make".to_string(), "WHAT=cmd/kubectl".to_string()];
        let plan = s.plan_json(&cmd, &["docker info".into(), "docker run 'a b'".into()]).render();
        assert_eq!(
            plan,
            r#"{"tree":"/src/kubernetes","engine":"docker","mode":"rsync","image":"kube-build:build-0123456789-5-v1","cross_image":"k8s.gcr.io/kube-cross:v1","tree_hash":"0123456789","command":["make","WHAT=cmd/kubectl"],"dry_run":true,"commands":["docker info","docker run 'a b'"]}"#
        );
        let bins = [Utf8PathBuf::from("/src/kubernetes/_output/dockerized/bin/linux/amd64/kubectl")];
        let out = s.outcome_json(&cmd, true, "copied back", &bins).render();
        assert!(out.ends_with(r#""dry_run":false,"ok":true,"output":"copied back","binaries":["/src/kubernetes/_output/dockerized/bin/linux/amd64/kubectl"]}"#), "{out}");
        let root = Utf8Path::new("/t");
        assert_eq!(
            copy_json(root, Mode::Bind, None, &[]).render(),
            r#"{"tree":"/t","mode":"bind","dry_run":false,"binaries":[]}"#
        );
        assert_eq!(
            copy_json(root, Mode::Rsync, Some(&["rsync x".into()]), &[]).render(),
            r#"{"tree":"/t","mode":"rsync","dry_run":true,"commands":["rsync x"]}"#
        );
    }
}
