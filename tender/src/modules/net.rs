//! The net module's command line (§4.5). Attaching taps comes with the
//! network back-end; until then a net option is parsed and refused.

use hvt_abi::manifest::MFT_DEV_NET_BASIC;

use super::{named_option, only_device, valid_device_name, Module, SetupContext};
use crate::error::{Error, Result};
use crate::manifest::Manifest;

#[derive(Default)]
pub struct Net;

impl Module for Net {
    fn name(&self) -> &'static str {
        "net"
    }

    fn usage(&self) -> &'static str {
        "  [ --net:NAME=IFACE | @NN ] (attach tap at IFACE or at fd @NN as network NAME)\n  \
         [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)\n  \
         [ --net=IFACE ] (when the manifest declares one network)\n"
    }

    fn parse_option(&mut self, option: &str, manifest: &mut Manifest) -> Result<bool> {
        let (name, _value) = if let Some(iface) = option.strip_prefix("--net=") {
            let name = only_device(manifest, MFT_DEV_NET_BASIC).ok_or_else(|| {
                Error::usage("--net=IFACE needs exactly one network device in the manifest")
            })?;
            (name, iface)
        } else if let Some((name, value)) =
            named_option(option, "--net").or_else(|| named_option(option, "--net-mac"))
        {
            (name.to_owned(), value)
        } else {
            return Ok(false);
        };
        if !valid_device_name(&name) || manifest.find(&name, MFT_DEV_NET_BASIC).is_none() {
            return Err(Error::usage(format!(
                "Resource not declared in manifest: '{name}'"
            )));
        }
        Err(Error::new(format!(
            "{option}: network devices are not supported by this tender yet"
        )))
    }

    fn setup(&mut self, _ctx: &mut SetupContext<'_>) -> Result<()> {
        Ok(())
    }
}
