//! The first guest: greets, echoes its command line, and exits 0, or 1 when
//! one of its arguments is `fail`.
#![no_std]
#![no_main]

use hvt_bindings::{println, StartInfo};

hvt_bindings::manifest!();
hvt_bindings::entry!(main);

fn main(start: &StartInfo) -> i32 {
    println!("Hello, World");
    println!("Command line is: '{}'", start.cmdline);
    if start.cmdline.split(' ').any(|arg| arg == "fail") {
        println!("FAILURE (asked to fail)");
        return 1;
    }
    println!("SUCCESS");
    0
}
