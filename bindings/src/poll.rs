//! Yield (§6.3): sleep until a monotonic deadline or until a network device
//! is readable.

use hvt_abi::hypercall::{nr, Poll};

use crate::clock::monotonic_ns;
use crate::hypercall::hypercall;

/// `solo5_yield`: blocks until `deadline_ns` (monotonic) or I/O readiness;
/// returns the set of ready device handles.
pub fn yield_until(deadline_ns: u64) -> u64 {
    // Output printed before a wait is on the console during the wait.
    crate::console::flush();
    let mut arg = Poll {
        timeout_nsecs: deadline_ns.saturating_sub(monotonic_ns()),
        ..Poll::default()
    };
    // SAFETY: a POLL argument on our stack.
    unsafe { hypercall(nr::POLL, &mut arg) };
    arg.ready_set
}
