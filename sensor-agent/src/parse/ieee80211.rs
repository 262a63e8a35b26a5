//! The 802.11 MAC header and the probe-request body.
//!
//! Management frame layout: `frame control u16 | duration u16 | addr1 | addr2 (transmitter) |
//! addr3 | sequence control u16 | [HT control u32 when the +HTC/Order bit is set] | body`.
//! A probe request's body is a list of information elements `id u8 | len u8 | data[len]`.

use super::{Probe, Reject};
use crate::mac::RawMac;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameType {
    Management,
    Control,
    Data,
    Extension,
}

pub(super) struct MacFrame<'a> {
    pub frame_type: FrameType,
    pub probe: Option<Probe<'a>>,
}

const MGMT_HEADER: usize = 24;
const SUBTYPE_PROBE_REQUEST: u8 = 4;
const FLAG_ORDER: u8 = 0x80;

pub(super) fn parse(body: &[u8]) -> Result<MacFrame<'_>, Reject> {
    let [fc0, fc1, ..] = *body else {
        return Err(Reject::FrameTruncated);
    };
    if fc0 & 0x03 != 0 {
        return Err(Reject::ProtocolVersion);
    }
    let frame_type = match (fc0 >> 2) & 0x03 {
        0 => FrameType::Management,
        1 => FrameType::Control,
        2 => FrameType::Data,
        _ => FrameType::Extension,
    };
    let mut frame = MacFrame {
        frame_type,
        probe: None,
    };
    if frame_type != FrameType::Management || fc0 >> 4 != SUBTYPE_PROBE_REQUEST {
        return Ok(frame);
    }
    let header = if fc1 & FLAG_ORDER != 0 {
        MGMT_HEADER + 4
    } else {
        MGMT_HEADER
    };
    if body.len() < header {
        return Err(Reject::FrameTruncated);
    }
    let transmitter = RawMac::from_slice(&body[10..16]).ok_or(Reject::FrameTruncated)?;
    frame.probe = Some(Probe {
        transmitter,
        seq: u16::from_le_bytes([body[22], body[23]]) >> 4,
        ies: &body[header..],
    });
    Ok(frame)
}
