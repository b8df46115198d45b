//! Panics print where and why, then abort with 255 (as a Solo5 ABORT).

#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::console::print_fmt(format_args!("Solo5: ABORT: {info}\n"));
    crate::exit::halt(hvt_abi::hypercall::exit::ABORT)
}
