//! Confining the tender once its guest is set up, just before the first
//! `KVM_RUN` (`tender_core::sandbox` has the filters; `docs/security.md`
//! the whole story):
//!
//! 1. descriptors inherited from the parent that no device uses are closed
//!    (the kernel image was closed once loaded);
//! 2. with `--chroot=DIR` and `--user=UID[:GID]` (root only), the tender
//!    has changed its root and dropped its privileges already, before its
//!    modules started any thread ([`drop_privileges`]);
//! 3. the vCPU thread installs its seccomp filter: `KVM_RUN` and the two
//!    register reads of a fault report on the vCPU's descriptor, and what
//!    each module's hypercalls need (`Module::vcpu_rules`), with
//!    `NO_NEW_PRIVS`. Module threads installed their own filters when they
//!    started.

use std::collections::BTreeSet;
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, RawFd};

use kvm_bindings::KVMIO;
use tender_core::error::{Error, Result};
use tender_core::lifecycle::ModuleSet;
use tender_core::sandbox::{Allowlist, SeccompMode};
use vmm_sys_util::ioctl::ioctl_expr;
use vmm_sys_util::ioctl::{_IOC_NONE, _IOC_READ, _IOC_WRITE};

use crate::vstate::vcpu::KvmVcpu;

/// How the tender confines itself (`--seccomp`, `--user`, `--chroot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    pub seccomp: SeccompMode,
    /// `--user=UID[:GID]`.
    pub user: Option<(libc::uid_t, libc::gid_t)>,
    /// `--chroot=DIR`.
    pub chroot: Option<String>,
}

impl Default for Confinement {
    fn default() -> Self {
        Confinement {
            seccomp: SeccompMode::Enforce,
            user: None,
            chroot: None,
        }
    }
}

impl Confinement {
    /// Takes the tender's own options out of `options`; the rest are the
    /// modules'.
    pub fn take_options(options: &mut Vec<OsString>) -> Result<Confinement> {
        let mut confinement = Confinement::default();
        let mut rest = Vec::with_capacity(options.len());
        for raw in options.drain(..) {
            let option = raw.to_string_lossy();
            // Named as it was given, like the modules' refusals.
            let invalid = || Error::InvalidOption {
                option: raw.clone(),
                why: None,
            };
            if let Some(mode) = option.strip_prefix("--seccomp=") {
                confinement.seccomp = SeccompMode::parse(mode).ok_or_else(invalid)?;
            } else if let Some(user) = option.strip_prefix("--user=") {
                confinement.user = Some(parse_user(user).ok_or_else(invalid)?);
            } else if let Some(dir) = option.strip_prefix("--chroot=") {
                if dir.is_empty() {
                    return Err(invalid());
                }
                confinement.chroot = Some(dir.to_owned());
            } else {
                rest.push(raw);
            }
        }
        *options = rest;
        if (confinement.user.is_some() || confinement.chroot.is_some())
            // SAFETY: geteuid has no arguments and cannot fail.
            && unsafe { libc::geteuid() } != 0
        {
            return Err(Error::Argument(
                "--user and --chroot need the tender to run as root".into(),
            ));
        }
        Ok(confinement)
    }
}

/// `UID` or `UID:GID` (numbers; the group defaults to the user's number).
fn parse_user(text: &str) -> Option<(libc::uid_t, libc::gid_t)> {
    let number = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match text.split_once(':') {
        Some((uid, gid)) => Some((number(uid)?, number(gid)?)),
        None => number(text).map(|uid| (uid, uid)),
    }
}

/// The descriptors open now, above stderr: what the parent passed on.
pub fn open_fds() -> BTreeSet<RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return BTreeSet::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &RawFd| fd > libc::STDERR_FILENO)
        .collect()
}

/// `KVM_RUN`, `KVM_GET_REGS` and `KVM_GET_SREGS`: what the vCPU thread asks
/// of KVM once the guest runs (the register reads for fault reports and
/// modules' `vm_exit` hooks).
fn vcpu_ioctls() -> [u64; 3] {
    let size = |bytes: usize| u32::try_from(bytes).unwrap_or(0);
    [
        ioctl_expr(_IOC_NONE, KVMIO, 0x80, 0),
        ioctl_expr(
            _IOC_READ,
            KVMIO,
            0x81,
            size(std::mem::size_of::<kvm_bindings::kvm_regs>()),
        ),
        ioctl_expr(
            _IOC_READ,
            KVMIO,
            0x83,
            size(std::mem::size_of::<kvm_bindings::kvm_sregs>()),
        ),
    ]
}

/// `KVM_SET_REGS`, `KVM_SET_SREGS`, `KVM_SET_GUEST_DEBUG`, `KVM_GET_FPU`,
/// `KVM_SET_FPU` and `KVM_GET_XSAVE` (for MXCSR, which the FPU pair leaves
/// out): what a debugger module (`--gdb`) asks of KVM at a stop.
fn vcpu_debug_ioctls() -> [u64; 6] {
    let size = |bytes: usize| u32::try_from(bytes).unwrap_or(0);
    let fpu = size(std::mem::size_of::<kvm_bindings::kvm_fpu>());
    let xsave = size(std::mem::size_of::<kvm_bindings::kvm_xsave>());
    [
        ioctl_expr(_IOC_READ, KVMIO, 0x8c, fpu),
        ioctl_expr(_IOC_WRITE, KVMIO, 0x8d, fpu),
        ioctl_expr(_IOC_READ, KVMIO, 0xa4, xsave),
        ioctl_expr(
            _IOC_WRITE,
            KVMIO,
            0x82,
            size(std::mem::size_of::<kvm_bindings::kvm_regs>()),
        ),
        ioctl_expr(
            _IOC_WRITE,
            KVMIO,
            0x84,
            size(std::mem::size_of::<kvm_bindings::kvm_sregs>()),
        ),
        ioctl_expr(
            _IOC_WRITE,
            KVMIO,
            0x9b,
            size(std::mem::size_of::<kvm_bindings::kvm_guest_debug>()),
        ),
    ]
}

/// The vCPU thread's allow-list: the KVM ioctls, the heap's growth (error
/// messages are formatted after the sandbox is on), and every module's
/// rules.
pub fn vcpu_allowlist(vcpu: &KvmVcpu, modules: &ModuleSet) -> Allowlist {
    let mut list = Allowlist::new("vcpu");
    list.allow_ioctls(vcpu.fd.as_raw_fd(), &vcpu_ioctls())
        .allow(libc::SYS_brk);
    if modules.vcpu_debug() {
        list.allow_ioctls(vcpu.fd.as_raw_fd(), &vcpu_debug_ioctls());
    }
    modules.vcpu_rules(&mut list);
    list
}

/// With `--chroot` and `--user`: changes the root and drops privileges. It
/// runs once every device is open and before any module starts a thread
/// (glibc changes credentials thread by thread, and a confined thread may
/// not), so every thread of the tender runs unprivileged.
pub fn drop_privileges(confinement: &Confinement) -> Result<()> {
    if let Some(dir) = &confinement.chroot {
        let path = CString::new(dir.as_str())
            .map_err(|_| Error::Argument(format!("--chroot={dir}: not a path")))?;
        // SAFETY: chroot and chdir with a NUL-terminated path we own.
        let rc = unsafe { libc::chroot(path.as_ptr()) };
        // SAFETY: as above, with a literal.
        if rc != 0 || unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
            return Err(Error::Other(format!(
                "Could not change root to {dir}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    if let Some((uid, gid)) = confinement.user {
        // SAFETY: plain credential calls; each result is checked. Groups
        // first, then the group, then the user (after which none of this
        // would be allowed any more).
        let dropped = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(gid, gid, gid) == 0
                && libc::setresuid(uid, uid, uid) == 0
        };
        if !dropped {
            return Err(Error::Other(format!(
                "Could not switch to user {uid}:{gid}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// Confines the process as `confinement` says; `inherited` are the
/// descriptors the process had when it started.
pub fn confine(
    confinement: &Confinement,
    vcpu: &KvmVcpu,
    modules: &ModuleSet,
    inherited: &BTreeSet<RawFd>,
) -> Result<()> {
    let vcpu_list = vcpu_allowlist(vcpu, modules);
    // Descriptors a device uses (an `@FD` tap) stay; the rest of what the
    // parent passed on goes. Unconfined (`--seccomp=off`), the tender may
    // run inside someone else's process (a test), whose descriptors are not
    // its to close.
    if confinement.seccomp != SeccompMode::Off {
        let mut used = vcpu_list.fds();
        for list in modules.thread_rules() {
            used.extend(list.fds());
        }
        for &fd in inherited.difference(&used) {
            // SAFETY: closes a descriptor the tender does not own or use
            // (the parent's); nothing in the tender refers to it.
            unsafe { libc::close(fd) };
        }
    }
    vcpu_list.compile(confinement.seccomp)?.apply()?;
    #[cfg(debug_assertions)]
    tender_core::sandbox::selftest_forbidden_call("vcpu");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_taken_and_checked() {
        let mut options: Vec<OsString> = ["--mem=64", "--seccomp=log", "--net:a=b"]
            .iter()
            .map(OsString::from)
            .collect();
        let confinement = Confinement::take_options(&mut options).unwrap();
        assert_eq!(confinement.seccomp, SeccompMode::Log);
        assert_eq!(options, ["--mem=64", "--net:a=b"]);
        let mut bad = vec![OsString::from("--seccomp=maybe")];
        assert_eq!(
            Confinement::take_options(&mut bad).unwrap_err().to_string(),
            "Invalid option: `--seccomp=maybe'"
        );
        assert_eq!(parse_user("1000"), Some((1000, 1000)));
        assert_eq!(parse_user("1000:100"), Some((1000, 100)));
        for bad in ["", "x", "1000:", ":1", "-1", "1:2:3"] {
            assert_eq!(parse_user(bad), None, "{bad}");
        }
        // KVM_RUN is _IO(0xAE, 0x80).
        assert_eq!(vcpu_ioctls()[0], 0xae80);
    }
}
