//! The command line of §8: `tender [--mem=MiB] [module options] [--] KERNEL [ARGS...]`.
//!
//! Parsing follows upstream's two passes: the first finds the kernel and
//! honours `--help`/`--version`; module options are only understood after
//! the kernel's manifest is read, so they are kept as text for the second.
//! (A general parser such as clap cannot express `--net:NAME=IFACE`, whose
//! names come from the kernel's manifest.)

use hvt_abi::layout::CMDLINE_SIZE;

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
    /// Options before the kernel, in order.
    pub options: Vec<String>,
    pub kernel: String,
    /// The guest command line: ARGS joined with single spaces.
    pub cmdline: String,
}

/// First pass (§8).
pub fn parse(args: &[String]) -> Result<Command> {
    let mut options = Vec::new();
    let mut rest = args.iter();
    let kernel = loop {
        match rest.next().map(String::as_str) {
            None => return Err(Error::Usage("Missing KERNEL operand".into())),
            Some("--help") => return Ok(Command::Help),
            Some("--version") => return Ok(Command::Version),
            Some("--") => match rest.next() {
                Some(kernel) => break kernel.clone(),
                None => return Err(Error::Usage("Missing KERNEL operand".into())),
            },
            Some(option) if option.starts_with("--") => options.push(option.to_owned()),
            Some(kernel) => break kernel.to_owned(),
        }
    };
    let cmdline = rest.map(String::as_str).collect::<Vec<_>>().join(" ");
    if cmdline.len() >= CMDLINE_SIZE {
        return Err(Error::Argument(format!(
            "Guest command line too long (max={} characters)",
            CMDLINE_SIZE - 1
        )));
    }
    Ok(Command::Run(Invocation {
        options,
        kernel,
        cmdline,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_kernel_options_and_guest_args() {
        let cmd = parse(&args(&["--mem=64", "k.hvt", "--x", "a", "b"])).unwrap();
        assert_eq!(
            cmd,
            Command::Run(Invocation {
                options: vec!["--mem=64".into()],
                kernel: "k.hvt".into(),
                cmdline: "--x a b".into()
            })
        );
        let cmd = parse(&args(&["--", "--odd-name", "x"])).unwrap();
        assert!(
            matches!(cmd, Command::Run(Invocation { ref kernel, .. }) if kernel == "--odd-name")
        );
        assert_eq!(parse(&args(&["--help", "k"])).unwrap(), Command::Help);
        assert_eq!(parse(&args(&["--version"])).unwrap(), Command::Version);
    }

    #[test]
    fn missing_kernel_and_long_cmdline_are_errors() {
        assert_eq!(
            parse(&[]).unwrap_err().to_string(),
            "Missing KERNEL operand"
        );
        assert_eq!(
            parse(&args(&["--mem=2", "--"])).unwrap_err().to_string(),
            "Missing KERNEL operand"
        );
        let ok = "a".repeat(8191);
        assert!(parse(&args(&["k", &ok])).is_ok());
        let long = "a".repeat(8192);
        assert_eq!(
            parse(&args(&["k", &long])).unwrap_err().to_string(),
            "Guest command line too long (max=8191 characters)"
        );
    }
}
