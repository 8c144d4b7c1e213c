//! Computers and their MAC addresses.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ComputerId, InvalidField, Name};

/// A managed computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Computer {
    /// Assigned by the store.
    pub id: ComputerId,
    /// Unique among computers, compared case-insensitively.
    pub hostname: Name,
    /// Operating system, as the agent reports it (compared with package compatibility lists).
    pub os: String,
    /// Operating system version.
    pub os_version: String,
    /// CPU architecture.
    pub architecture: String,
    /// Network interfaces' MAC addresses, for Wake-on-LAN.
    pub macs: Vec<MacAddress>,
    /// When the agent last contacted the server; `None` if never. A store reports the later of
    /// the time last recorded for the computer ([`Store::set_last_seen`]) and its credentials'
    /// last contact ([`AgentCredentials::last_contact`]), so a hello, which writes the
    /// credentials anyway, needs no second write to be seen.
    ///
    /// [`Store::set_last_seen`]: crate::store::Store::set_last_seen
    /// [`AgentCredentials::last_contact`]: crate::store::AgentCredentials::last_contact
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_seen: Option<DateTime<Utc>>,
}

/// A MAC address: six bytes, parsed from `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or
/// `aabb.ccdd.eeff` (any letter case), printed in the first form in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// The Wake-on-LAN magic packet for this address: six `0xFF` bytes, then the address 16 times.
    pub fn magic_packet(&self) -> [u8; 102] {
        let mut packet = [0xFF; 102];
        for chunk in packet[6..].chunks_exact_mut(6) {
            chunk.copy_from_slice(&self.0);
        }
        packet
    }
}

impl FromStr for MacAddress {
    type Err = InvalidField;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            InvalidField::new(
                "mac",
                format!(
                    "`{text}` is not a MAC address (`aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or `aabb.ccdd.eeff`)"
                ),
            )
        };
        let text = text.trim();
        let hex: String = match text.len() {
            17 => {
                let separator = text.as_bytes()[2];
                if separator != b':' && separator != b'-' {
                    return Err(invalid());
                }
                let parts: Vec<&str> = text.split(char::from(separator)).collect();
                if parts.len() != 6 || parts.iter().any(|part| part.len() != 2) {
                    return Err(invalid());
                }
                parts.concat()
            }
            14 => {
                let parts: Vec<&str> = text.split('.').collect();
                if parts.len() != 3 || parts.iter().any(|part| part.len() != 4) {
                    return Err(invalid());
                }
                parts.concat()
            }
            _ => return Err(invalid()),
        };
        let mut bytes = [0u8; 6];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(invalid)?;
            if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(MacAddress(bytes))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

crate::text_serde::serde_as_text!(MacAddress);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_notations_parse_to_the_same_bytes() {
        let expected = MacAddress([0xaa, 0xbb, 0xcc, 0x0d, 0xee, 0xff]);
        for text in [
            "aa:bb:cc:0d:ee:ff",
            "AA-BB-CC-0D-EE-FF",
            "aabb.cc0d.eeff",
            " aA:Bb:cC:0d:EE:ff ",
        ] {
            assert_eq!(text.parse::<MacAddress>(), Ok(expected), "{text}");
        }
        assert_eq!(expected.to_string(), "aa:bb:cc:0d:ee:ff");
    }

    #[test]
    fn malformed_addresses_are_errors_naming_the_field() {
        for text in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:gg",
            "aa:bb-cc:dd:ee:ff",
            "aabbccddeeff",
            "aab.bccd.deeff",
            "aa:bb:cc:dd:ee:f",
            "+a:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:ff:00",
        ] {
            let err = text.parse::<MacAddress>().unwrap_err();
            assert_eq!(err.field, "mac", "{text}");
            assert!(err.reason.contains("is not a MAC address"), "{text}");
        }
    }

    #[test]
    fn magic_packet_is_six_ff_then_sixteen_copies() {
        let mac: MacAddress = "01:02:03:04:05:06".parse().unwrap();
        let packet = mac.magic_packet();
        assert_eq!(&packet[..6], &[0xFF; 6]);
        for copy in packet[6..].chunks(6) {
            assert_eq!(copy, &[1, 2, 3, 4, 5, 6]);
        }
    }
}
