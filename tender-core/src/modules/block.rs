//! The block module's command line (§4.5). The block back-end is not part
//! of this tender yet; a block option is parsed and refused.

use hvt_abi::manifest::MFT_DEV_BLOCK_BASIC;

use super::{named_option, only_device, valid_device_name};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::module::Module;

#[derive(Default)]
pub struct Block;

impl Module for Block {
    fn name(&self) -> &'static str {
        "block"
    }

    fn usage(&self) -> &'static str {
        "  [ --block:NAME=PATH ] (attach block device/file at PATH as block storage NAME)\n  \
         [ --block-sector-size:NAME=N ] (set sector size for block storage NAME)\n  \
         [ --block=PATH ] (when the manifest declares one block device)\n"
    }

    fn parse_option(&mut self, option: &str, manifest: &mut Manifest) -> Result<bool> {
        let name = if option.starts_with("--block=") {
            only_device(manifest, MFT_DEV_BLOCK_BASIC).ok_or_else(|| {
                Error::Usage("--block=PATH needs exactly one block device in the manifest".into())
            })?
        } else if let Some((name, _)) =
            named_option(option, "--block").or_else(|| named_option(option, "--block-sector-size"))
        {
            name.to_owned()
        } else {
            return Ok(false);
        };
        if !valid_device_name(&name) || manifest.find(&name, MFT_DEV_BLOCK_BASIC).is_none() {
            return Err(Error::Usage(format!(
                "Resource not declared in manifest: '{name}'"
            )));
        }
        Err(Error::Argument(format!(
            "{option}: block devices are not supported by this tender yet"
        )))
    }
}
