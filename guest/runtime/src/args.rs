//! The application's command line.

/// The guest command line, with the `--solo5:` log options removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    cmdline: &'static str,
}

impl Args {
    pub fn new(cmdline: &'static str) -> Args {
        Args { cmdline }
    }

    /// The whole line.
    pub fn as_str(&self) -> &'static str {
        self.cmdline
    }

    /// The arguments, split on spaces.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> {
        self.cmdline.split(' ').filter(|a| !a.is_empty())
    }

    /// The `i`-th argument.
    pub fn get(&self, i: usize) -> Option<&'static str> {
        self.iter().nth(i)
    }

    /// The value of `--name=value`, if given.
    pub fn value(&self, name: &str) -> Option<&'static str> {
        self.iter()
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
    }

    /// True if the flag `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.iter().any(|a| a == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_finds_values() {
        let args = Args::new(" a  --n=5 --flag ");
        assert_eq!(
            args.iter().collect::<alloc::vec::Vec<_>>(),
            ["a", "--n=5", "--flag"]
        );
        assert_eq!(args.get(1), Some("--n=5"));
        assert_eq!(args.value("--n"), Some("5"));
        assert_eq!(args.value("--m"), None);
        assert!(args.has("--flag") && !args.has("--fla"));
    }
}
