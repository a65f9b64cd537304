//! rsync's itemized lines (`-ii --out-format='%i %n'`): what a sync or a copy-out did to each
//! entry, read in one place for the records, the settle check and the arrival-timed dating.

/// One line: rsync's change code (`>f.st......`, `.d          `, `*deleting`) and the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Item<'a> {
    /// The code, its padding trimmed.
    pub code: &'a str,
    /// The entry as rsync names it: relative, a directory with a trailing `/`, the root `./`.
    pub name: &'a str,
}

impl<'a> Item<'a> {
    /// `%i` is always 11 characters wide, then one space: a name may itself start with spaces.
    /// A line of another shape (a message) is none.
    pub(crate) fn parse(line: &'a str) -> Option<Item<'a>> {
        let code = line.get(..11)?;
        let name = line.get(11..)?.strip_prefix(' ')?;
        let mut c = code.chars();
        let shaped = match (c.next(), c.next()) {
            (Some('*'), _) => code.trim_end() == "*deleting",
            (Some('<' | '>' | 'c' | 'h' | '.'), Some('f' | 'd' | 'L' | 'D' | 'S')) => true,
            _ => false,
        };
        (shaped && !name.is_empty()).then_some(Item { code: code.trim_end(), name })
    }

    /// Every item of an itemized answer.
    pub(crate) fn all(text: &'a str) -> impl Iterator<Item = Item<'a>> {
        text.lines().filter_map(Item::parse)
    }

    /// The entry without a directory's trailing slash (`./` is `.`).
    pub(crate) fn path(&self) -> &'a str {
        self.name.trim_end_matches('/')
    }

    /// A regular file.
    pub(crate) fn is_file(&self) -> bool {
        self.code.get(1..2) == Some("f")
    }

    /// Its content went across, either way (`<` sent, `>` received).
    pub(crate) fn transferred(&self) -> bool {
        self.code.starts_with(['<', '>'])
    }

    /// Written on this side: received (`>`) or made locally (`c`, a directory or a link).
    pub(crate) fn rewritten(&self) -> bool {
        self.code.starts_with(['>', 'c'])
    }

    /// New on the receiving side (`+` in every attribute column).
    pub(crate) fn is_new(&self) -> bool {
        self.code.contains('+')
    }
}

#[cfg(test)]
mod tests {
    use super::Item;

    #[test]
    fn reads_rsyncs_fixed_width_lines() {
        let text = "*deleting   gone\n.d          ./\n>f+++++++++  two spaces\n<f.st...... pkg/a/zz_generated.go\n\
                    cd+++++++++ pkg/b/\nskipping non-regular file \"x\"\n.f\nrsync error: some files could not be transferred\n";
        let items: Vec<Item> = Item::all(text).collect();
        let names: Vec<&str> = items.iter().map(Item::path).collect();
        assert_eq!(names, ["gone", ".", " two spaces", "pkg/a/zz_generated.go", "pkg/b"]);
        assert_eq!(items[0].code, "*deleting");
        assert!(items[2].is_file() && items[2].is_new() && items[2].transferred() && items[2].rewritten());
        assert!(items[3].transferred() && !items[3].rewritten() && !items[3].is_new());
        assert!(!items[4].is_file() && items[4].rewritten());
    }
}
