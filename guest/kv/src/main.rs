//! The unikernel: the store on block device `storage`, served on network
//! device `service` (`tender --net:service=TAP --block:storage=IMAGE kv
//! --ipv4=ADDR/LEN`). With `--target x86_64-unknown-linux-gnu` this is a
//! host process on the mock tender.
#![no_std]
#![no_main]

hvt_runtime::manifest!(net "service", block "storage");
hvt_runtime::main!(kv::app);
