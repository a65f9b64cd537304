//! What every tool shares on the command line: `-h/--help`, `-q`, `-v`, `--kube-root DIR`,
//! `--explain-tree`, `--json`, and the exit-code contract (0 ok, 1 problems, 2 usage/environment).

use crate::fail::{Fail, Result, Status};
use crate::log;
use crate::tree::Tree;
use camino::Utf8PathBuf;
use std::ffi::OsString;

/// A tool of the kit: its names, help, and library entry point.
pub struct Tool {
    pub name: &'static str,
    /// Short names the user types (`bump-go` for bump-go-version).
    pub aliases: &'static [&'static str],
    /// One line for `cargo xtask` listings.
    pub summary: &'static str,
    /// Full help, printed by `--help` (the common flags are appended).
    pub usage: &'static str,
    pub run: fn(&mut Ctx) -> Result<Status>,
    /// Every flag of the tool's own (the common ones aside). The parser may read only these
    /// (a read of another panics), and a test holds them equal to the flags its usage names, so
    /// the help and the parser cannot drift apart.
    pub flags: &'static [&'static str],
    /// For tools that run a command (`run-dockerized make ...`): the flags that take a value.
    /// The first word that is not a flag (or everything after `--`) starts the command, which is
    /// never parsed as the tool's flags.
    pub command_after: Option<&'static [&'static str]>,
}

pub const COMMON_FLAGS: &str = "\
Common: --kube-root DIR (else KUBE_ROOT, the current directory, the tree `cargo xtask fetch-tree`
remembered, $GOPATH/src/k8s.io/kubernetes), --explain-tree, --json, -q/-v, -h/--help.
Exit status: 0 ok, 1 problems found, 2 usage or environment error.";

impl Tool {
    pub fn help(&self) -> String {
        format!(
            "{}\n\n{}\nHow it works: docs/{}.md in the kit's checkout.\n",
            self.usage.trim_end(),
            COMMON_FLAGS,
            self.name
        )
    }
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// Parsed common flags plus the arguments still to be read by the tool.
pub struct Ctx {
    pub tool: &'static str,
    /// The flags the tool declared ([`Tool::flags`]).
    pub declared: &'static [&'static str],
    pub args: pico_args::Arguments,
    pub kube_root: Option<Utf8PathBuf>,
    pub json: bool,
    /// The command to run, for tools with [`Tool::command_after`].
    pub command: Vec<String>,
    /// For the other tools, the words after `--` (never read as flags).
    pub after_dashes: Vec<String>,
    /// Data for stdout, written when the tool returns (a buffer, so tests can run tools in-process).
    pub out: String,
}

impl Ctx {
    /// Appends one line of data for stdout.
    pub fn say(&mut self, line: impl AsRef<str>) {
        self.out.push_str(line.as_ref());
        self.out.push('\n');
    }
    fn declared(&self, f: &str) {
        assert!(self.declared.contains(&f), "{}: reads `{f}`, which its Tool::flags does not declare", self.tool);
    }
    pub fn flag(&mut self, f: &'static str) -> bool {
        self.declared(f);
        let on = self.args.contains(f);
        if on && f == "--dry-run" {
            // A dry run's steps are its plan: said without timings.
            log::set_plan(true);
        }
        on
    }
    pub fn opt_string(&mut self, f: &'static str) -> Result<Option<String>> {
        self.declared(f);
        Ok(self.args.opt_value_from_str::<_, String>(f)?)
    }
    pub fn opt_path(&mut self, f: &'static str) -> Result<Option<Utf8PathBuf>> {
        Ok(self.opt_string(f)?.map(Utf8PathBuf::from))
    }
    /// The remaining free words (after every flag was read, then those after `--`), for
    /// make-style `KEY=VALUE` arguments.
    pub fn rest(&mut self) -> Vec<String> {
        let rest = std::mem::replace(&mut self.args, pico_args::Arguments::from_vec(Vec::new())).finish();
        let mut words: Vec<String> = rest.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
        words.append(&mut self.after_dashes);
        words
    }
    /// The next free word: before `--` (after every flag was read), else the first after it.
    pub fn free(&mut self) -> Result<Option<String>> {
        if let Some(w) = self.args.opt_free_from_str::<String>()? {
            // Before `--`, a word that looks like a flag is an unknown one, not a value.
            if w.starts_with('-') && w.len() > 1 {
                return Err(self.unexpected(&w));
            }
            return Ok(Some(w));
        }
        Ok((!self.after_dashes.is_empty()).then(|| self.after_dashes.remove(0)))
    }
    /// Rejects anything the tool did not read.
    pub fn finish(&mut self) -> Result<()> {
        let rest = self.rest();
        // An unknown flag is the likelier mistake to name than a stray word beside it.
        match rest.iter().find(|a| a.starts_with('-')).or(rest.first()) {
            None => Ok(()),
            Some(a) => Err(self.unexpected(a)),
        }
    }
    /// "unexpected argument", with the closest known flag when `word` looks like a typo of one.
    fn unexpected(&self, word: &str) -> Fail {
        let known = self.declared.iter().copied().chain(["--kube-root", "--explain-tree", "--json", "--help"]);
        let hint = if word.starts_with('-') { crate::suggest::did_you_mean(word, known) } else { String::new() };
        Fail::new(format!("unexpected argument `{}`{hint}; see --help", word.escape_debug()))
    }
    /// The Kubernetes tree this run is about.
    pub fn tree(&self) -> Result<Tree> {
        let t = Tree::discover(self.kube_root.as_deref())?;
        log::status_v(2, format!("tree {} (era {}, {})", t.root, t.era.name(), t.layout.name()));
        Ok(t)
    }
}

/// Splits `args` into the tool's own and the command (see [`Tool::command_after`]).
pub fn split_command(args: Vec<OsString>, value_flags: &[&str]) -> (Vec<OsString>, Vec<String>) {
    let mut own = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        if s == "--" {
            return (own, it.map(|a| a.to_string_lossy().into_owned()).collect());
        }
        if !s.starts_with('-') {
            let mut cmd = vec![s];
            cmd.extend(it.map(|a| a.to_string_lossy().into_owned()));
            return (own, cmd);
        }
        let takes_value = value_flags.contains(&s.as_str());
        own.push(a);
        if takes_value {
            if let Some(v) = it.next() {
                own.push(v);
            }
        }
    }
    (own, Vec::new())
}

fn parse_common(tool: &Tool, args: Vec<OsString>) -> Result<std::result::Result<(Ctx, bool), i32>> {
    let (args, command, after_dashes) = match tool.command_after {
        Some(vf) => {
            let mut vf: Vec<&str> = vf.to_vec();
            vf.push("--kube-root");
            let (own, cmd) = split_command(args, &vf);
            (own, cmd, Vec::new())
        }
        // `--` ends the options of every tool: what follows is never a flag.
        None => match args.iter().position(|a| a == "--") {
            Some(i) => {
                let mut own = args;
                let after = own.split_off(i + 1);
                own.pop();
                (own, Vec::new(), after.into_iter().map(|a| a.to_string_lossy().into_owned()).collect())
            }
            None => (args, Vec::new(), Vec::new()),
        },
    };
    // A run is a dry run only once the tool reads --dry-run (tests run several tools in one process).
    log::set_plan(false);
    let mut a = pico_args::Arguments::from_vec(args);
    if a.contains(["-h", "--help"]) {
        return Ok(Err(0));
    }
    let mut level = log::level();
    while a.contains("-v") {
        level += 1;
    }
    if a.contains("-q") {
        level = 0;
    }
    log::set_level(level);
    let kube_root = a.opt_value_from_str::<_, String>("--kube-root")?.map(Utf8PathBuf::from);
    let explain = a.contains("--explain-tree");
    let json = a.contains("--json");
    Ok(Ok((
        Ctx {
            tool: tool.name,
            declared: tool.flags,
            args: a,
            kube_root,
            json,
            command,
            after_dashes,
            out: String::new(),
        },
        explain,
    )))
}

/// Runs `tool` on `args` (without the program name); returns the exit code and the stdout data.
/// On an error the data is dropped: exit 2 promises nothing on stdout.
pub fn invoke(tool: &Tool, args: Vec<OsString>) -> (i32, String) {
    let mut out = String::new();
    let res = (|| -> Result<i32> {
        let (mut ctx, explain) = match parse_common(tool, args)? {
            Ok(x) => x,
            Err(code) => {
                out = tool.help();
                return Ok(code);
            }
        };
        if explain {
            ctx.finish()?;
            let t = ctx.tree()?;
            out = if ctx.json { format!("{}\n", t.to_json().render()) } else { t.explain() };
            return Ok(0);
        }
        let code = (tool.run)(&mut ctx)?.exit_code();
        out = std::mem::take(&mut ctx.out);
        Ok(code)
    })();
    match res {
        Ok(code) => (code, out),
        Err(f) => {
            crate::log::line(format_args!("{}: error: {}", tool.name, crate::log::shown(&f.msg)));
            (f.exit_code(), String::new())
        }
    }
}

/// [`invoke`] with string arguments, for tests.
pub fn invoke_str(tool: &Tool, args: &[&str]) -> (i32, String) {
    invoke(tool, args.iter().map(OsString::from).collect())
}

/// Runs the tool and writes its data to stdout; returns the exit code.
pub fn main(tool: &Tool, args: Vec<OsString>) -> i32 {
    use std::io::Write;
    let (code, out) = invoke(tool, args);
    let mut so = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting, but it is not success either.
    match so.write_all(out.as_bytes()).and_then(|_| so.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && code == 0 => 141,
        _ => code,
    }
}

/// The body of every tool's `main.rs`.
pub fn exit_with(tool: &Tool) -> ! {
    let code = main(tool, std::env::args_os().skip(1).collect());
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn command_words_are_never_taken_as_flags() {
        let (own, cmd) = split_command(v(&["--mode", "bind", "-v", "make", "test", "-v", "--dry-run"]), &["--mode"]);
        assert_eq!(own, v(&["--mode", "bind", "-v"]));
        assert_eq!(cmd, ["make", "test", "-v", "--dry-run"]);
        let (own, cmd) = split_command(v(&["--dry-run", "--", "--weird", "x"]), &[]);
        assert_eq!((own, cmd), (v(&["--dry-run"]), vec!["--weird".to_string(), "x".to_string()]));
        assert_eq!(split_command(v(&["-q"]), &[]), (v(&["-q"]), vec![]));
    }
}
