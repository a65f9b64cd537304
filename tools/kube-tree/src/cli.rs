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
    /// The head of `--help`: what the tool does in one line, the synopsis, examples. The flag
    /// lines are generated from [`Tool::flags`]; a flag named here must be declared there.
    pub usage: &'static str,
    /// The tool's own flags (the common ones aside), each declared once: the parser may read only
    /// these (a read of another panics), and `--help` and `docs/<tool>.md` list them.
    pub flags: &'static [Flag],
    /// The foot of `--help`: what the flags do together, what stdout carries.
    pub notes: &'static str,
    pub run: fn(&mut Ctx) -> Result<Status>,
    /// For tools that run a command (`run-dockerized make ...`): the first word that is not a
    /// flag or a flag's value (or everything after `--`) starts the command, which is never
    /// parsed as the tool's flags.
    pub takes_command: bool,
}

/// One command-line flag: the parser, the help and the tool's page all come from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag {
    pub name: &'static str,
    /// What the flag's value is called (`IMG`, `auto|host|PATH`); None for a switch.
    pub value: Option<&'static str>,
    /// What it does, in a line or two (the help wraps it).
    pub help: &'static str,
    /// The environment variable that does the same when the flag is not given.
    pub env: Option<&'static str>,
}

impl Flag {
    /// A flag that takes no value.
    pub const fn switch(name: &'static str, help: &'static str) -> Flag {
        Flag { name, value: None, help, env: None }
    }
    /// A flag followed by a value, called `value` in the help.
    pub const fn value(name: &'static str, value: &'static str, help: &'static str) -> Flag {
        Flag { name, value: Some(value), help, env: None }
    }
    /// The same, also set by the environment variable `env` (said in the help).
    pub const fn env(self, env: &'static str) -> Flag {
        Flag { env: Some(env), ..self }
    }
    /// How the flag is written: `--mirror URL`.
    pub fn synopsis(&self) -> String {
        match self.value {
            Some(v) => format!("{} {v}", self.name),
            None => self.name.to_string(),
        }
    }
    /// The help with its environment variable.
    pub fn full_help(&self) -> String {
        match self.env {
            Some(e) => format!("{} [env: {e}]", self.help.trim_end()),
            None => self.help.trim_end().to_string(),
        }
    }
}

/// `--kube-root`, the one common flag that takes a value (the command split needs it).
pub const KUBE_ROOT: Flag = Flag::value(
    "--kube-root",
    "DIR",
    "the Kubernetes tree (else KUBE_ROOT, the current directory and its parents, the tree \
     `cargo xtask fetch-tree` remembered, $GOPATH/src/k8s.io/kubernetes, ~/go/src/k8s.io/kubernetes)",
);

/// The flags every tool takes, read before the tool's own.
pub const COMMON: &[Flag] = &[
    KUBE_ROOT,
    Flag::switch("--explain-tree", "print the tree's root, its era and the evidence it was read from; nothing else"),
    Flag::switch("--json", "the data on stdout as JSON"),
    Flag::switch("-q", "quiet: warnings and errors only on stderr"),
    Flag::switch("-v", "more on stderr (the tree found, the commands run); repeatable").env("KUBE_VERBOSE"),
    Flag::switch("-h/--help", "print the help; do nothing else"),
    Flag::switch("--", "what follows is never read as a flag (bump-go -- 1.15.8)"),
];

/// Said under the common flags, in the help and on every page.
pub const EXIT_STATUS: &str = "Exit status: 0 ok, 1 problems found, 2 usage or environment error, 130 interrupted.";

/// Where the help's lines end.
const HELP_WIDTH: usize = 100;

impl Tool {
    pub fn help(&self) -> String {
        let mut s = format!("{}\n\n", self.usage.trim_end());
        s += &flag_lines(self.flags);
        let common: Vec<String> = COMMON.iter().map(Flag::synopsis).collect();
        s += &format!("\n{}\n", wrap(&format!("Common: {}", common.join(", ")), HELP_WIDTH, "").join("\n"));
        if !self.notes.trim().is_empty() {
            s += &format!("\n{}\n", self.notes.trim());
        }
        s += &format!("\n{EXIT_STATUS}\nHow it works: docs/{}.md in the kit's checkout.\n", self.name);
        s
    }
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
    /// The flags that take a value, the common one included (where a command cannot start).
    pub fn value_flags(&self) -> Vec<&'static str> {
        self.flags.iter().chain([&KUBE_ROOT]).filter(|f| f.value.is_some()).map(|f| f.name).collect()
    }
    /// What is wrong with the declaration: a flag declared twice or as a common one, one without
    /// help, and a `--flag` the usage or notes name that is not declared (a renamed or dropped
    /// flag left behind in the prose).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, f) in self.flags.iter().enumerate() {
            if !f.name.starts_with('-') || f.help.trim().is_empty() {
                out.push(format!("{}: `{}` needs a leading dash and a help", self.name, f.name));
            }
            if self.flags[..i].iter().any(|g| g.name == f.name) || COMMON.iter().any(|g| g.name == f.name) {
                out.push(format!("{}: `{}` is declared twice", self.name, f.name));
            }
        }
        for named in named_flags(&format!("{}\n{}", self.usage, self.notes)) {
            let common = COMMON.iter().any(|c| c.name.split('/').any(|n| n == named));
            if !common && !self.flags.iter().any(|f| f.name == named) {
                out.push(format!("{}: its help names `{named}`, which it does not declare", self.name));
            }
        }
        out
    }
}

/// One aligned line per flag (more when its help wraps).
pub fn flag_lines(flags: &[Flag]) -> String {
    let col = flags.iter().map(|f| f.synopsis().len() + 4).max().unwrap_or(0).min(26);
    let indent = " ".repeat(col);
    let mut s = String::new();
    for f in flags {
        // The environment variable stays whole: on the help's last line, or one of its own.
        let mut lines = wrap(f.help, HELP_WIDTH - col, "");
        if let (Some(e), Some(last)) = (f.env, lines.last_mut()) {
            let env = format!("[env: {e}]");
            match last.len() + 1 + env.len() > HELP_WIDTH - col {
                true => lines.push(env),
                false => *last = format!("{last} {env}"),
            }
        }
        let mut lines = lines.into_iter();
        let head = format!("  {}", f.synopsis());
        if head.len() + 2 > col {
            s += &format!("{head}\n");
        } else if let Some(first) = lines.next() {
            s += &format!("{head:<col$}{first}\n");
        }
        for l in lines {
            s += &format!("{indent}{l}\n");
        }
    }
    s
}

/// `text` (spaces and newlines alike) in lines of at most `width` columns, each after `prefix`.
pub fn wrap(text: &str, width: usize, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(format!("{prefix}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += word;
    }
    if !line.is_empty() {
        lines.push(format!("{prefix}{line}"));
    }
    lines
}

/// The `--flag` words (and `-z`) a text names: a dash that does not follow a word character.
fn named_flags(text: &str) -> std::collections::BTreeSet<String> {
    let mut named = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices('-') {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || "-=_/.".contains(c)) {
            continue;
        }
        let word: String =
            text[i..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '-' || c.is_ascii_digit()).collect();
        let flag = word.trim_end_matches('-');
        let short = flag.len() == 2 && flag.as_bytes()[1].is_ascii_lowercase();
        if flag.len() > 2 && flag.starts_with("--") || short {
            named.insert(flag.to_string());
        }
    }
    named
}

/// Parsed common flags plus the arguments still to be read by the tool.
pub struct Ctx {
    pub tool: &'static str,
    /// The flags the tool declared ([`Tool::flags`]).
    pub declared: &'static [Flag],
    pub args: pico_args::Arguments,
    pub kube_root: Option<Utf8PathBuf>,
    pub json: bool,
    /// The command to run, for tools with [`Tool::takes_command`].
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
    /// A read must match its declaration (name and whether it takes a value), so the code
    /// cannot drift from the help.
    fn declared(&self, f: &str, takes_value: bool) {
        let Some(d) = self.declared.iter().find(|d| d.name == f) else {
            panic!("{}: reads `{f}`, which its Tool::flags does not declare", self.tool)
        };
        assert_eq!(d.value.is_some(), takes_value, "{}: `{f}` is read as its declaration does not say", self.tool);
    }
    pub fn flag(&mut self, f: &'static str) -> bool {
        self.declared(f, false);
        let on = self.args.contains(f);
        if on && f == "--dry-run" {
            // A dry run's steps are its plan: said without timings.
            log::set_plan(true);
        }
        on
    }
    pub fn opt_string(&mut self, f: &'static str) -> Result<Option<String>> {
        self.declared(f, true);
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
        let known = self.declared.iter().chain(COMMON).map(|f| f.name).chain(["--help"]);
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

/// Splits `args` into the tool's own and the command (see [`Tool::takes_command`]).
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
    let (args, command, after_dashes) = match tool.takes_command {
        true => {
            let (own, cmd) = split_command(args, &tool.value_flags());
            (own, cmd, Vec::new())
        }
        // `--` ends the options of every tool: what follows is never a flag.
        false => match args.iter().position(|a| a == "--") {
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
    let kube_root = a.opt_value_from_str::<_, String>(KUBE_ROOT.name)?.map(Utf8PathBuf::from);
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

    fn ok(_: &mut Ctx) -> Result<Status> {
        Ok(Status::Ok)
    }

    const SAMPLE: Tool = Tool {
        name: "sample",
        aliases: &[],
        summary: "",
        usage: "sample: a tool for tests\n\nUsage: sample [--mode M] [--fast] <command...>",
        flags: &[
            Flag::value(
                "--mode",
                "M",
                "how it runs, said at length so that the help has to wrap this line onto the next",
            )
            .env("SAMPLE_MODE"),
            Flag::switch("--fast", "go fast"),
        ],
        notes: "stdout: nothing",
        run: ok,
        takes_command: true,
    };

    #[test]
    fn the_help_is_generated_from_the_declarations() {
        let help = SAMPLE.help();
        let lines: Vec<&str> = help.lines().collect();
        let mode = lines.iter().position(|l| l.starts_with("  --mode M  ")).expect(&help);
        // Aligned: both helps start in one column; the long one wraps under itself, its
        // environment variable whole.
        let col = lines[mode].find("how").unwrap();
        assert_eq!(lines[mode + 1].find(|c: char| c != ' '), Some(col), "{help}");
        assert!(help.contains("[env: SAMPLE_MODE]") && lines.iter().all(|l| l.len() <= HELP_WIDTH), "{help}");
        assert_eq!(lines.iter().find(|l| l.starts_with("  --fast")).unwrap().find("go fast"), Some(col));
        assert!(help.contains("Common: --kube-root DIR, --explain-tree") && help.contains("stdout: nothing"), "{help}");
        assert_eq!(SAMPLE.problems(), Vec::<String>::new());
    }

    #[test]
    fn a_flag_the_prose_names_must_be_declared() {
        let t = Tool { notes: "with --fast and --slow, -z", ..SAMPLE };
        let p = t.problems();
        assert!(p.len() == 2 && p[0].contains("`--slow`") && p[1].contains("`-z`"), "{p:?}");
        const AGAIN: &[Flag] = &[Flag::switch("--json", "again")];
        let twice = Tool { flags: AGAIN, ..SAMPLE };
        assert!(twice.problems()[0].contains("declared twice"), "{:?}", twice.problems());
    }

    #[test]
    fn value_flags_come_from_the_declarations() {
        assert_eq!(SAMPLE.value_flags(), ["--mode", "--kube-root"]);
        let xy = Tool { run: |c| Ok(Status::from_count(usize::from(c.command != ["x", "y"]))), ..SAMPLE };
        assert_eq!(invoke_str(&xy, &["--mode", "make", "x", "y"]).0, 0, "--mode takes `make`: the command is x y");
        assert_eq!(invoke_str(&xy, &["--fast", "x", "y"]).0, 0, "--fast takes no value");
        assert_eq!(invoke_str(&xy, &["--fast", "make", "x", "y"]).0, 1);
    }

    #[test]
    #[should_panic(expected = "does not declare")]
    fn reading_an_undeclared_flag_panics() {
        let _ = invoke_str(&Tool { run: |c| Ok(Status::from_count(usize::from(c.flag("--slow")))), ..SAMPLE }, &[]);
    }

    #[test]
    #[should_panic(expected = "as its declaration does not say")]
    fn reading_a_switch_as_a_value_panics() {
        let _ = invoke_str(&Tool { run: |c| c.opt_string("--fast").map(|_| Status::Ok), ..SAMPLE }, &[]);
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
