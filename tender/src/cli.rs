//! The command line of §8: `tender [--mem=MiB] [module options] [--] KERNEL [ARGS...]`.
//!
//! Parsing follows upstream's two passes. This is the first: every argument
//! that starts with '-' before the kernel is an option (a bare "--" ends
//! them), and `--help`/`--version` among them end the tender at once. The
//! options are only understood in the second pass, once the kernel's notes
//! are read (`ModuleSet::parse_options`): module options name the
//! manifest's devices. (A general parser such as clap cannot express
//! `--net:NAME=IFACE`, whose names come from the kernel's manifest.)
//!
//! Arguments are kept as the bytes they are: a kernel path or a guest
//! argument need not be UTF-8.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use tender_core::error::{Error, Result};

/// What the first pass found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    Run(Invocation),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Options before the kernel, in order, without the "--" that may end
    /// them.
    pub options: Vec<OsString>,
    pub kernel: PathBuf,
    /// The guest's arguments (ARGS), after the kernel.
    pub args: Vec<OsString>,
}

impl Invocation {
    /// The guest command line (§4.2): ARGS joined with single spaces, as
    /// bytes. Its length is checked where it is written
    /// (`tender_core::boot_info`), after the modules' set-up, as upstream
    /// checks it.
    pub fn cmdline(&self) -> Vec<u8> {
        let mut line = Vec::new();
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                line.push(b' ');
            }
            line.extend_from_slice(arg.as_bytes());
        }
        line
    }
}

/// First pass (§8).
pub fn parse<S: AsRef<OsStr>>(args: &[S]) -> Result<Command> {
    let missing = || Error::Usage("Missing KERNEL operand".into());
    let mut options = Vec::new();
    let mut rest = args.iter().map(AsRef::as_ref);
    let kernel = loop {
        let arg = rest.next().ok_or_else(missing)?;
        match arg.as_bytes() {
            b"--" => break rest.next().ok_or_else(missing)?,
            b"--help" => return Ok(Command::Help),
            b"--version" => return Ok(Command::Version),
            [b'-', ..] => options.push(arg.to_owned()),
            _ => break arg,
        }
    };
    Ok(Command::Run(Invocation {
        options,
        kernel: PathBuf::from(kernel),
        args: rest.map(OsStr::to_owned).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn run(list: &[&str]) -> Invocation {
        match parse(list).unwrap() {
            Command::Run(invocation) => invocation,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finds_kernel_options_and_guest_args() {
        let cmd = run(&["--mem=64", "k.hvt", "--x", "a", "b"]);
        assert_eq!(cmd.options, ["--mem=64"]);
        assert_eq!(cmd.kernel, PathBuf::from("k.hvt"));
        assert_eq!(cmd.cmdline(), b"--x a b");
        assert_eq!(
            run(&["--", "--odd-name", "x"]).kernel,
            PathBuf::from("--odd-name")
        );
        assert_eq!(run(&["k"]).cmdline(), b"");
        assert_eq!(run(&["k", "", "a", ""]).cmdline(), b" a ");
    }

    #[test]
    fn any_argument_starting_with_a_dash_is_an_option() {
        let cmd = run(&["-x", "-", "--block:a=b", "k.hvt", "-y"]);
        assert_eq!(cmd.options, ["-x", "-", "--block:a=b"]);
        assert_eq!(cmd.kernel, PathBuf::from("k.hvt"));
        assert_eq!(cmd.cmdline(), b"-y");
        // "--" ends the options and is no option itself.
        let cmd = run(&["--mem=2", "--", "-k", "--help"]);
        assert_eq!(cmd.options, ["--mem=2"]);
        assert_eq!(cmd.kernel, PathBuf::from("-k"));
        assert_eq!(cmd.cmdline(), b"--help");
    }

    #[test]
    fn help_and_version_among_the_options_win() {
        assert_eq!(parse(&["--help", "k"]).unwrap(), Command::Help);
        assert_eq!(parse(&["--bogus", "--help"]).unwrap(), Command::Help);
        assert_eq!(parse(&["-x", "--version", "k"]).unwrap(), Command::Version);
        assert_eq!(parse(&["--version", "--help"]).unwrap(), Command::Version);
        // After the kernel, or after "--", they are the guest's.
        assert_eq!(run(&["k", "--help"]).cmdline(), b"--help");
        assert_eq!(run(&["--", "--version"]).kernel, PathBuf::from("--version"));
        // A near miss is an option like any other.
        assert_eq!(run(&["--help=1", "k"]).options, ["--help=1"]);
    }

    #[test]
    fn missing_kernel_is_a_usage_error() {
        for args in [
            &[][..],
            &["--mem=2"],
            &["--mem=2", "--"],
            &["-x", "-"],
            &["--"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.to_string(), "Missing KERNEL operand", "{args:?}");
            assert!(err.shows_usage());
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_pass_through() {
        let bad = |b: &[u8]| OsString::from_vec(b.to_vec());
        let args = [
            bad(b"--o\xff"),
            bad(b"k\xe9.hvt"),
            bad(b"caf\xe9"),
            bad(b"x"),
        ];
        let Command::Run(cmd) = parse(&args).unwrap() else {
            panic!("not a run");
        };
        assert_eq!(cmd.options, [bad(b"--o\xff")]);
        assert_eq!(cmd.kernel.as_os_str().as_bytes(), b"k\xe9.hvt");
        assert_eq!(cmd.cmdline(), b"caf\xe9 x");
    }

    #[test]
    fn the_command_line_is_not_limited_here() {
        // Upstream checks its length when it writes it, after the modules'
        // set-up: a bad option or kernel is reported first.
        let long = "a".repeat(10_000);
        assert_eq!(run(&["k", &long]).cmdline().len(), 10_000);
    }
}
