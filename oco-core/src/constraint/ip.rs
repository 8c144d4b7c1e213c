//! Agent IP ranges: `[!] ADDRESS [/ PREFIX]`, comma-separated, first match wins.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::construct::{self, BuildError};
use super::error::{ErrorKind, ParseError};
use super::list::{self, RawEntry};

/// An agent IP-range constraint: which agent addresses may receive a job.
///
/// Parsed from a comma-separated list of `[!] ADDRESS [/ PREFIX]` entries (IPv4 or IPv6). The
/// first entry containing the address decides: a plain entry allows, a negated one denies. When
/// none contains it, the address is denied, unless every entry is negated (then it is allowed).
/// The empty list allows every address.
///
/// Deliberate differences from OCO:
/// - a bare IPv6 address is a single host (`/128`); OCO reads it as a `/32` network;
/// - set host bits (`192.168.2.3/24`) are an error suggesting the network, never reinterpreted;
/// - IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are IPv4, in entries and in checked addresses;
/// - IPv4 and IPv6 never match each other (`0.0.0.0/0` does not contain `::1`, `::/0` does not
///   contain `::ffff:10.0.0.1`);
/// - a list of only negations allows everything it does not negate.
///
/// # Examples
///
/// ```
/// use oco_core::constraint::IpRanges;
///
/// let ranges: IpRanges = "10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE:0000::/64".parse()?;
/// assert_eq!(ranges.to_string(), "10.2.0.0/16, !192.168.2.3, 192.168.2.0/24, caff:eeca:ffee::/64");
/// assert!(ranges.allows("192.168.2.4".parse()?));
/// assert!(!ranges.allows("192.168.2.3".parse()?));
/// assert!(!ranges.allows("10.9.0.1".parse()?));
/// assert!(ranges.allows("::ffff:10.2.3.4".parse()?));
///
/// // For many lookups against one long list, compile it once.
/// let matcher = ranges.compile();
/// assert!(matcher.allows("caff:eeca:ffee::42".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IpRanges {
    entries: Vec<IpEntry>,
}

/// One entry of an [`IpRanges`] list: a network and whether it is negated.
///
/// The network never has host bits set, and an IPv4-mapped IPv6 network is stored as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpEntry {
    negated: bool,
    network: IpNet,
}

/// An [`IpRanges`] compiled for fast lookups; [`IpMatcher::allows`] answers exactly as
/// [`IpRanges::allows`] does, for every address.
///
/// Short lists are scanned as masks; longer ones become sorted, disjoint address intervals that
/// each carry the verdict of the first entry covering them, found by binary search.
#[derive(Debug, Clone)]
pub struct IpMatcher {
    v4: FamilyMatcher<u32>,
    v6: FamilyMatcher<u128>,
}

impl IpRanges {
    /// A list of `entries`, in the order given (the first entry containing an address decides).
    ///
    /// The list must fit the limits of text input, so that it prints as text that parses back to
    /// it: at most [`MAX_ENTRIES`](super::MAX_ENTRIES) entries and a canonical form of at most
    /// [`MAX_INPUT_LEN`](super::MAX_INPUT_LEN) bytes. For longer lists built in code, such as a
    /// large block list, use [`IpMatcher::new`], which takes any number of entries.
    ///
    /// # Errors
    ///
    /// [`BuildError::TooManyEntries`] or [`BuildError::CanonicalTooLong`] when the list exceeds
    /// those limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::constraint::{BuildError, IpEntry, IpRanges, MAX_ENTRIES};
    ///
    /// let lab = IpEntry::new("10.66.0.0/16".parse()?, true);
    /// let office = IpEntry::new("10.0.0.0/8".parse()?, false);
    /// let ranges = IpRanges::from_entries([lab, office])?;
    /// assert_eq!(ranges.to_string(), "!10.66.0.0/16, 10.0.0.0/8");
    /// assert!(!ranges.allows("10.66.1.1".parse()?));
    ///
    /// let too_many = vec![office; MAX_ENTRIES + 1];
    /// assert_eq!(
    ///     IpRanges::from_entries(too_many),
    ///     Err(BuildError::TooManyEntries { count: MAX_ENTRIES + 1 })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_entries(entries: impl IntoIterator<Item = IpEntry>) -> Result<Self, BuildError> {
        let entries: Vec<IpEntry> = entries.into_iter().collect();
        construct::check_list_limits(&entries)?;
        Ok(IpRanges { entries })
    }

    /// Whether this is no constraint at all (the empty list), which allows every address.
    pub fn is_unconstrained(&self) -> bool {
        self.entries.is_empty()
    }

    /// The parsed entries, in order.
    pub fn entries(&self) -> &[IpEntry] {
        &self.entries
    }

    /// Whether an agent at `addr` may receive a job.
    ///
    /// An IPv4-mapped IPv6 address is checked as the IPv4 address it maps.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = normalize(addr);
        self.entries
            .iter()
            .find(|entry| entry.network.contains(&addr))
            .map_or_else(|| self.verdict_when_unmatched(), |entry| !entry.negated)
    }

    /// Compiles the list into a matcher for fast lookups.
    pub fn compile(&self) -> IpMatcher {
        IpMatcher::new(self.entries.iter().copied())
    }

    /// An address that this list allows (`verdict == true`) or denies (`false`), if there is
    /// one; `None` means that every address gets the other verdict.
    ///
    /// IPv4 addresses are tried before IPv6 ones, and the lowest address of the first stretch of
    /// the address space with that verdict is returned; IPv4-mapped IPv6 addresses are never
    /// returned (they are checked as IPv4). Exact, from the same intervals a long list compiles
    /// to: what an agent at an unknown address would get is the same for every address exactly
    /// when one of `sample(true)` and `sample(false)` is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::constraint::IpRanges;
    ///
    /// let ranges: IpRanges = "!127.0.0.0/8".parse()?;
    /// assert_eq!(ranges.sample(false), Some("127.0.0.0".parse()?));
    /// assert_eq!(ranges.sample(true), Some("0.0.0.0".parse()?));
    ///
    /// // Every IPv4 and every IPv6 address: nothing is denied.
    /// let everything: IpRanges = "0.0.0.0/0, ::/0".parse()?;
    /// assert_eq!(everything.sample(false), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sample(&self, verdict: bool) -> Option<IpAddr> {
        let (v4, v6, default) = prefixes(self.entries.iter().copied());
        let (starts, verdicts) = intervals(v4, default);
        if let Some(i) = verdicts.iter().position(|&v| v == verdict) {
            return Some(IpAddr::V4(Ipv4Addr::from(starts[i])));
        }
        // IPv6, skipping the IPv4-mapped block ::ffff:0:0/96 (those addresses are IPv4).
        let (mapped_first, mapped_last) = (MAPPED, MAPPED | 0xffff_ffff);
        let (starts, verdicts) = intervals(v6, default);
        (0..starts.len())
            .filter(|&i| verdicts[i] == verdict)
            .find_map(|i| {
                let first = starts[i];
                let last = starts.get(i + 1).map_or(u128::MAX, |next| next - 1);
                if !(mapped_first..=mapped_last).contains(&first) {
                    Some(first)
                } else {
                    (last > mapped_last).then_some(mapped_last + 1)
                }
            })
            .map(|bits| IpAddr::V6(Ipv6Addr::from(bits)))
    }

    fn verdict_when_unmatched(&self) -> bool {
        self.entries.iter().all(|entry| entry.negated)
    }
}

impl IpEntry {
    /// An entry for `network`, denying instead of allowing when `negated`.
    ///
    /// The network is normalised as the parser normalises it: host bits are dropped (as
    /// [`IpNet::contains`] ignores them anyway) and an IPv4-mapped IPv6 network of prefix length
    /// 96 or more becomes the IPv4 network it maps. Text input is stricter: there, set host bits
    /// are an error, because a typed `192.168.2.3/24` is more likely a mistake than a network.
    pub fn new(network: IpNet, negated: bool) -> Self {
        let network = match network.trunc() {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
                // Invariant: 96 <= prefix_len <= 128.
                Some(v4) => IpNet::V4(Ipv4Net::new_assert(v4, v6.prefix_len() - 96)),
                None => IpNet::V6(v6),
            },
            other => other,
        };
        IpEntry { negated, network }
    }

    /// Whether the entry denies the addresses it contains (it was written with `!`).
    pub fn is_negated(&self) -> bool {
        self.negated
    }

    /// The network the entry covers; a single host has the family's full prefix length.
    pub fn network(&self) -> IpNet {
        self.network
    }
}

impl IpMatcher {
    /// Compiles entries (first match wins, in the order given) into a matcher.
    ///
    /// This is what [`IpRanges::compile`] does with its entries. It also takes lists beyond the
    /// text limits ([`MAX_ENTRIES`](super::MAX_ENTRIES)), for callers that build entries in code,
    /// such as a large block list.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::constraint::{IpEntry, IpMatcher};
    ///
    /// let blocked = (0..10_000u32).map(|i| {
    ///     let net = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8));
    ///     IpEntry::new(oco_core::ipnet::Ipv4Net::new(net, 24).unwrap().into(), true)
    /// });
    /// let matcher = IpMatcher::new(blocked);
    /// assert!(!matcher.allows("10.0.1.1".parse()?));
    /// assert!(matcher.allows("192.168.0.1".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(entries: impl IntoIterator<Item = IpEntry>) -> Self {
        let (v4, v6, default) = prefixes(entries);
        IpMatcher {
            v4: FamilyMatcher::new(v4, default),
            v6: FamilyMatcher::new(v6, default),
        }
    }

    /// Whether an agent at `addr` may receive a job; the same answer as [`IpRanges::allows`].
    pub fn allows(&self, addr: IpAddr) -> bool {
        match normalize(addr) {
            IpAddr::V4(addr) => self.v4.verdict(u32::from(addr)),
            IpAddr::V6(addr) => self.v6.verdict(u128::from(addr)),
        }
    }
}

list::text_impls!(IpRanges);

impl fmt::Display for IpEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            f.write_str("!")?;
        }
        if self.network.prefix_len() == self.network.max_prefix_len() {
            write!(f, "{}", self.network.addr())
        } else {
            write!(f, "{}", self.network)
        }
    }
}

/// `::ffff:0:0`, the first address of IPv6's IPv4-mapped block (`::ffff:0:0/96`), whose
/// addresses are checked as the IPv4 addresses they map.
pub(super) const MAPPED: u128 = 0xffff << 32;

/// Maps IPv4-mapped IPv6 addresses to IPv4; dual-stack servers see IPv4 agents that way.
fn normalize(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

/// Parses one entry body; spans in errors are relative to `raw.body`.
fn parse_entry(raw: &RawEntry<'_>) -> Result<IpEntry, ParseError> {
    let body = raw.body;
    let fail = |kind, start: usize, end: usize| ParseError::new(kind, start..end);

    let addr_end = body.find(['/', ' ', '\t']).unwrap_or(body.len());
    let addr_text = &body[..addr_end];
    let rest_start = skip_blank(body, addr_end);
    let prefix = match body[rest_start..].strip_prefix('/') {
        _ if rest_start == body.len() => None,
        None => return Err(fail(ErrorKind::TrailingGarbage, rest_start, body.len())),
        Some(_) => {
            let slash = rest_start;
            let start = skip_blank(body, slash + 1);
            let end = body[start..]
                .find([' ', '\t'])
                .map_or(body.len(), |len| start + len);
            let trailing = skip_blank(body, end);
            if trailing < body.len() {
                return Err(fail(ErrorKind::TrailingGarbage, trailing, body.len()));
            }
            if start == end {
                return Err(fail(ErrorKind::MissingPrefix, slash, slash + 1));
            }
            Some((start, end))
        }
    };

    if addr_text.is_empty() {
        return Err(fail(ErrorKind::MissingAddress, 0, 1));
    }
    let addr = parse_address(addr_text).map_err(|kind| {
        let start = match kind {
            ErrorKind::ZoneId => addr_text.find('%').unwrap_or(0),
            _ => 0,
        };
        fail(kind, start, addr_end)
    })?;
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };

    let len = match prefix {
        None => max,
        Some((start, end)) => {
            let text = &body[start..end];
            if !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail(ErrorKind::InvalidPrefix, start, end));
            }
            if text.len() > 1 && text.starts_with('0') {
                return Err(fail(ErrorKind::LeadingZeroInPrefix, start, end));
            }
            match text.parse::<u8>() {
                Ok(len) if len <= max => len,
                _ => return Err(fail(ErrorKind::PrefixOutOfRange { max }, start, end)),
            }
        }
    };

    let network = network_of(addr, len)
        .map_err(|network| fail(ErrorKind::HostBitsSet { network }, 0, body.len()))?;
    Ok(IpEntry {
        negated: raw.negated,
        network,
    })
}

/// The first position at or after `from` that is not white space.
fn skip_blank(text: &str, from: usize) -> usize {
    text.len() - list::trim_blank_start(&text[from..]).len()
}

/// The network `addr/len` (with `len <= ` the family's maximum), IPv4-mapped networks as IPv4; or,
/// when host bits are set, the network without them as a suggestion.
fn network_of(addr: IpAddr, len: u8) -> Result<IpNet, IpNet> {
    let net = match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if len >= 96 => IpNet::V4(Ipv4Net::new_assert(v4, len - 96)),
            // Shorter prefixes of a mapped address cut into the `ffff` marker: host bits are set,
            // and the IPv6 network is the suggestion.
            _ => IpNet::V6(Ipv6Net::new_assert(v6, len)),
        },
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new_assert(v4, len)),
    };
    let trunc = net.trunc();
    if trunc == net {
        Ok(net)
    } else {
        Err(trunc)
    }
}

fn parse_address(text: &str) -> Result<IpAddr, ErrorKind> {
    if text.contains('%') {
        return Err(ErrorKind::ZoneId);
    }
    if text.contains(':') {
        return text
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| ErrorKind::InvalidAddress);
    }
    text.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| {
        if has_leading_zero_part(text) {
            ErrorKind::LeadingZeroInAddress
        } else {
            ErrorKind::InvalidAddress
        }
    })
}

/// Whether `text` would be a dotted quad but for a leading zero in some part.
fn has_leading_zero_part(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            !part.is_empty()
                && part.len() <= 3
                && part.bytes().all(|b| b.is_ascii_digit())
                && part.parse::<u16>().is_ok_and(|value| value <= 255)
        })
        && parts
            .iter()
            .any(|part| part.len() > 1 && part.starts_with('0'))
}

/// One prefix of one family, as integers, with its position in the list.
#[derive(Debug, Clone, Copy)]
struct Prefix<T> {
    index: usize,
    network: T,
    mask: T,
    verdict: bool,
}

/// The entries as integer prefixes of each family, with their positions, and the verdict for an
/// address no entry contains (allowed only when every entry is negated).
fn prefixes(
    entries: impl IntoIterator<Item = IpEntry>,
) -> (Vec<Prefix<u32>>, Vec<Prefix<u128>>, bool) {
    let mut all_negated = true;
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (index, entry) in entries.into_iter().enumerate() {
        all_negated &= entry.negated;
        let verdict = !entry.negated;
        match entry.network {
            IpNet::V4(net) => v4.push(Prefix {
                index,
                network: u32::from(net.network()),
                mask: u32::from(net.netmask()),
                verdict,
            }),
            IpNet::V6(net) => v6.push(Prefix {
                index,
                network: u128::from(net.network()),
                mask: u128::from(net.netmask()),
                verdict,
            }),
        }
    }
    (v4, v6, all_negated)
}

/// Lists with at most this many entries of a family are scanned rather than searched.
const SCAN_LIMIT: usize = 16;

#[derive(Debug, Clone)]
enum FamilyMatcher<T> {
    /// First-match scan over `(network, mask, verdict)`, then `default`.
    Scan {
        prefixes: Box<[(T, T, bool)]>,
        default: bool,
    },
    /// The address space cut into intervals: `starts[i]..starts[i + 1]` has `verdicts[i]`.
    /// `starts[0]` is 0.
    Intervals {
        starts: Box<[T]>,
        verdicts: Box<[bool]>,
    },
}

/// The integer view of an address family's addresses.
trait AddressBits:
    Copy
    + Ord
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::Not<Output = Self>
{
    const ZERO: Self;
    const MAX: Self;
    fn successor(self) -> Self;
}

impl AddressBits for u32 {
    const ZERO: Self = 0;
    const MAX: Self = u32::MAX;
    fn successor(self) -> Self {
        self + 1
    }
}

impl AddressBits for u128 {
    const ZERO: Self = 0;
    const MAX: Self = u128::MAX;
    fn successor(self) -> Self {
        self + 1
    }
}

impl<T: AddressBits> FamilyMatcher<T> {
    fn new(prefixes: Vec<Prefix<T>>, default: bool) -> Self {
        if prefixes.len() <= SCAN_LIMIT {
            return FamilyMatcher::Scan {
                prefixes: prefixes
                    .iter()
                    .map(|p| (p.network, p.mask, p.verdict))
                    .collect(),
                default,
            };
        }
        let (starts, verdicts) = intervals(prefixes, default);
        FamilyMatcher::Intervals {
            starts: starts.into_boxed_slice(),
            verdicts: verdicts.into_boxed_slice(),
        }
    }

    fn verdict(&self, addr: T) -> bool {
        match self {
            FamilyMatcher::Scan { prefixes, default } => prefixes
                .iter()
                .find(|&&(network, mask, _)| addr & mask == network)
                .map_or(*default, |&(_, _, verdict)| verdict),
            FamilyMatcher::Intervals { starts, verdicts } => {
                // starts[0] == 0 <= addr, so the partition point is at least 1.
                let i = starts.partition_point(|&start| start <= addr) - 1;
                verdicts[i]
            }
        }
    }
}

/// Resolves first-match-wins over prefixes into disjoint intervals.
///
/// Prefixes are laminar: two are either disjoint or one contains the other. Sorted by start and
/// then by size (largest first), each prefix is nested in the ones still open on a stack, and the
/// verdict inside it (outside its children) is that of the lowest-indexed prefix among it and its
/// ancestors.
fn intervals<T: AddressBits>(mut prefixes: Vec<Prefix<T>>, default: bool) -> (Vec<T>, Vec<bool>) {
    prefixes.sort_unstable_by(|a, b| {
        a.network
            .cmp(&b.network)
            .then(a.mask.cmp(&b.mask))
            .then(a.index.cmp(&b.index))
    });

    let mut cuts: Vec<(T, bool)> = vec![(T::ZERO, default)];
    // Open prefixes: (last address, index and verdict that decide inside it).
    let mut open: Vec<(T, usize, bool)> = Vec::new();
    let close_until =
        |open: &mut Vec<(T, usize, bool)>, cuts: &mut Vec<(T, bool)>, limit: Option<T>| {
            while let Some(&(last, _, _)) = open.last() {
                if limit.is_some_and(|start| last >= start) {
                    break;
                }
                open.pop();
                if last != T::MAX {
                    let outer = open.last().map_or(default, |&(_, _, verdict)| verdict);
                    cuts.push((last.successor(), outer));
                }
            }
        };
    for prefix in prefixes {
        close_until(&mut open, &mut cuts, Some(prefix.network));
        let (index, verdict) = match open.last() {
            Some(&(_, index, verdict)) if index < prefix.index => (index, verdict),
            _ => (prefix.index, prefix.verdict),
        };
        cuts.push((prefix.network, verdict));
        open.push((prefix.network | !prefix.mask, index, verdict));
    }
    close_until(&mut open, &mut cuts, None);

    // Later cuts at the same start override earlier ones; then merge equal neighbours.
    let mut starts: Vec<T> = Vec::with_capacity(cuts.len());
    let mut verdicts: Vec<bool> = Vec::with_capacity(cuts.len());
    for (start, verdict) in cuts {
        if starts.last() == Some(&start) {
            starts.pop();
            verdicts.pop();
        }
        if verdicts.last() == Some(&verdict) {
            continue;
        }
        starts.push(start);
        verdicts.push(verdict);
    }
    (starts, verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn network() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, len)| IpNet::V4(Ipv4Net::new_assert(a.into(), len))),
            // Nested prefixes are likely inside one /16.
            (any::<u16>(), 16u8..=32).prop_map(|(a, len)| {
                IpNet::V4(Ipv4Net::new_assert(
                    (0x0a00_0000 | u32::from(a)).into(),
                    len,
                ))
            }),
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, len)| IpNet::V6(Ipv6Net::new_assert(a.into(), len))),
            (any::<u16>(), 112u8..=128).prop_map(|(a, len)| {
                IpNet::V6(Ipv6Net::new_assert(
                    (0x2001_0db8_u128 << 96 | u128::from(a)).into(),
                    len,
                ))
            }),
            (any::<u32>(), 96u8..=128).prop_map(|(a, len)| {
                IpNet::V6(Ipv6Net::new_assert(Ipv4Addr::from(a).to_ipv6_mapped(), len))
            }),
        ]
    }

    fn ranges(max_len: usize) -> impl Strategy<Value = IpRanges> {
        proptest::collection::vec((any::<bool>(), network()), 0..max_len).prop_map(|entries| {
            IpRanges {
                entries: entries
                    .into_iter()
                    .map(|(negated, network)| IpEntry::new(network, negated))
                    .collect(),
            }
        })
    }

    /// Addresses near the list's networks (inside, at the edges, just outside) and random ones.
    #[allow(clippy::cast_possible_truncation)] // IPv4 addresses take the seed's low bits
    fn probes(ranges: &IpRanges, seeds: &[(u8, u128)]) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (i, &(pick, bits)) in seeds.iter().enumerate() {
            let entry = ranges.entries.get(i % ranges.entries.len().max(1));
            let addr = match (pick % 6, entry) {
                (0, _) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
                (1, _) => IpAddr::V6(Ipv6Addr::from(bits)),
                (2, _) => IpAddr::V6(Ipv4Addr::from(bits as u32).to_ipv6_mapped()),
                (3, Some(entry)) => match entry.network {
                    IpNet::V4(net) => {
                        let host = bits as u32 & !u32::from(net.netmask());
                        IpAddr::V4((u32::from(net.network()) | host).into())
                    }
                    IpNet::V6(net) => {
                        let host = bits & !u128::from(net.netmask());
                        IpAddr::V6((u128::from(net.network()) | host).into())
                    }
                },
                (4, Some(entry)) => match entry.network {
                    IpNet::V4(net) => IpAddr::V4(
                        u32::from(net.broadcast())
                            .wrapping_add(bits as u32 % 3)
                            .into(),
                    ),
                    IpNet::V6(net) => {
                        IpAddr::V6(u128::from(net.broadcast()).wrapping_add(bits % 3).into())
                    }
                },
                (_, Some(entry)) => match entry.network {
                    IpNet::V4(net) => IpAddr::V4(
                        u32::from(net.network())
                            .wrapping_sub(bits as u32 % 2)
                            .into(),
                    ),
                    IpNet::V6(net) => {
                        IpAddr::V6(u128::from(net.network()).wrapping_sub(bits % 2).into())
                    }
                },
                (_, None) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
            };
            out.push(addr);
        }
        out
    }

    proptest! {
        #[test]
        fn display_then_parse_gives_the_same_value(ranges in ranges(12)) {
            let text = ranges.to_string();
            let reparsed: IpRanges = text.parse().map_err(|e: ParseError| TestCaseError::fail(e.render(&text)))?;
            prop_assert_eq!(&reparsed, &ranges);
            prop_assert_eq!(reparsed.to_string(), text);
        }

        #[test]
        fn compiled_matcher_equals_plain_evaluation(
            ranges in ranges(60),
            seeds in proptest::collection::vec((any::<u8>(), any::<u128>()), 64),
        ) {
            let matcher = ranges.compile();
            for addr in probes(&ranges, &seeds) {
                prop_assert_eq!(matcher.allows(addr), ranges.allows(addr), "{} for `{}`", addr, ranges);
            }
        }

        /// `sample(v)` is an address with verdict `v`, and `None` only when no address has it.
        /// The verdict is constant between consecutive cut points (an entry's first address,
        /// the address after its last, the edges of the IPv4-mapped block), so checking every
        /// cut point checks every address.
        #[test]
        fn sample_finds_an_address_of_each_verdict_that_exists(ranges in ranges(12)) {
            let mapped_first = 0xffff_u128 << 32;
            let mut cuts = vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::from(mapped_first - 1)),
                IpAddr::V6(Ipv6Addr::from(mapped_first + (1 << 32))),
            ];
            for entry in &ranges.entries {
                match entry.network {
                    IpNet::V4(net) => {
                        cuts.push(IpAddr::V4(net.network()));
                        if let Some(after) = u32::from(net.broadcast()).checked_add(1) {
                            cuts.push(IpAddr::V4(after.into()));
                        }
                    }
                    IpNet::V6(net) => {
                        cuts.push(IpAddr::V6(net.network()));
                        if let Some(after) = u128::from(net.broadcast()).checked_add(1) {
                            cuts.push(IpAddr::V6(after.into()));
                        }
                    }
                }
            }
            let reachable = |addr: &IpAddr| match addr {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().is_none(),
                IpAddr::V4(_) => true,
            };
            for verdict in [true, false] {
                match ranges.sample(verdict) {
                    Some(addr) => {
                        prop_assert!(reachable(&addr), "{} is IPv4-mapped", addr);
                        prop_assert_eq!(ranges.allows(addr), verdict, "{} for `{}`", addr, ranges);
                    }
                    None => {
                        for addr in cuts.iter().filter(|addr| reachable(addr)) {
                            prop_assert_ne!(ranges.allows(*addr), verdict, "{} for `{}`", addr, ranges);
                        }
                    }
                }
            }
        }

        /// Dense nesting inside one /24, checked for every address of it.
        #[test]
        fn compiled_matcher_equals_plain_evaluation_exhaustively(
            entries in proptest::collection::vec((any::<bool>(), any::<u8>(), 22u8..=32), 0..40),
        ) {
            let ranges = IpRanges {
                entries: entries
                    .into_iter()
                    .map(|(negated, host, len)| IpEntry {
                        negated,
                        network: IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 1, host), len)).trunc(),
                    })
                    .collect(),
            };
            let matcher = ranges.compile();
            for last in 0..=u8::MAX {
                for third in [0u8, 1, 2] {
                    let addr = IpAddr::V4(Ipv4Addr::new(192, 168, third, last));
                    prop_assert_eq!(matcher.allows(addr), ranges.allows(addr), "{} for `{}`", addr, ranges);
                }
            }
        }
    }

    #[test]
    fn long_lists_use_intervals_and_short_ones_scan() {
        let short: IpRanges = "10.0.0.0/8, !::1".parse().unwrap();
        assert!(matches!(short.compile().v4, FamilyMatcher::Scan { .. }));
        let long: IpRanges = (0..100)
            .map(|i| format!("10.{i}.0.0/16"))
            .collect::<Vec<_>>()
            .join(",")
            .parse()
            .unwrap();
        let matcher = long.compile();
        let FamilyMatcher::Intervals { starts, .. } = &matcher.v4 else {
            panic!("a long list should compile to intervals");
        };
        // 10.0.0.0 .. 10.100.0.0 is one allowed interval between two denied ones.
        assert_eq!(starts.len(), 3);
        assert!(matcher.allows("10.99.255.255".parse().unwrap()));
        assert!(!matcher.allows("10.100.0.0".parse().unwrap()));
    }
}
