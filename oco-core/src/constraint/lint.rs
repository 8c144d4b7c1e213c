//! Findings that a list can never mean what it says: entries that never apply or change nothing,
//! and lists that allow or deny everything.
//!
//! Exact, not heuristic: both languages are reduced to a partition of their space into segments
//! on which the same entries match (the address space cut at every entry's ends; the 10,080
//! minutes of the week, on whose boundaries every window begins and ends), with the first and the
//! second entry matching each segment. An entry that is the first match of no segment never
//! applies; one whose segments would all get the same verdict from their second match (or from
//! the verdict for what nothing matches) is redundant.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::ops::Range;

use ipnet::IpNet;

use super::error::render_span;
use super::ip::{IpEntry, IpRanges, MAPPED};
use super::list::LengthCounter;
use super::time::{DayRange, TimeFrame, TimeFrames, TimeWindow, MINUTES_PER_WEEK};
use super::ParseError;

/// A mistake that a constraint list can never mean what it says, found by
/// [`IpRanges::lint`]/[`TimeFrames::lint`] (spans in the canonical text) or
/// [`IpRanges::parse_linted`]/[`TimeFrames::parse_linted`] (spans in the text parsed).
///
/// `Display` names the entries concerned (1-based, as parse errors do) and, for an entry that
/// never applies, the reordering that makes it apply when there is one;
/// [`Finding::render`] shows the text with a caret line under the entry.
///
/// # Examples
///
/// ```
/// use oco_core::constraint::{FindingKind, IpRanges};
///
/// let input = "10.0.0.0/8, !10.66.0.0/16";
/// let (ranges, findings) = IpRanges::parse_linted(input)?;
/// assert_eq!(ranges.to_string(), input);
/// assert_eq!(
///     findings[0].kind(),
///     &FindingKind::Shadowed { by: vec![1], move_before: Some(1) }
/// );
/// assert_eq!(findings[0].entry_number(), Some(2));
/// assert_eq!(findings[0].span(), 12..25);
/// assert_eq!(
///     findings[0].render(input),
///     "entry 2 `!10.66.0.0/16` never applies: entry 1 `10.0.0.0/8` already allows all of it; \
///      did you mean `!10.66.0.0/16, 10.0.0.0/8`?\n\
///      10.0.0.0/8, !10.66.0.0/16\n\
///      \x20           ^^^^^^^^^^^^^"
/// );
/// # Ok::<(), oco_core::constraint::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    kind: FindingKind,
    span: Range<usize>,
    entry: Option<Noted>,
    by: Vec<Noted>,
    suggestion: Option<String>,
    space: Space,
    /// For a shadowed entry: whether all its causes allow, whether all deny.
    allow: bool,
    deny: bool,
}

/// What a [`Finding`] says. Entry numbers are 1-based, counting the list's entries in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindingKind {
    /// The entry never decides anything: wherever it matches, an earlier entry matches first.
    ///
    /// Removing it changes no verdict, with one exception: when it is the list's only plain
    /// entry, removing it leaves a list of negations, which allows what nothing matches.
    Shadowed {
        /// The earlier entries that match first wherever this one matches, in order.
        by: Vec<usize>,
        /// The entry to move this one before (the first of `by`) so that it applies, when
        /// that changes what the list means; `None` when `by` already gives this entry's own
        /// verdict wherever it matches (a duplicate, or a narrower entry after a wider one).
        move_before: Option<usize>,
    },
    /// The entry decides somewhere, but removing it changes no verdict: where it matches first,
    /// the entries after it (or the verdict for what nothing matches) decide the same.
    ///
    /// Each finding is about removing that entry alone: of two redundant entries, removing both
    /// may change what the list means (`10.0.0.0/9, 10.128.0.0/9, 10.0.0.0/8`, where the third
    /// never applies, has the first two redundant each).
    Redundant,
    /// The list allows every address (every second of the week), as no constraint would.
    AllowsEverything,
    /// The list allows no address (no second of the week): a job under it is never handed out.
    DeniesEverything,
}

/// An entry named in a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Noted {
    number: usize,
    text: String,
    negated: bool,
}

/// Which language's space a finding is about, for its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    Addresses,
    Week,
}

/// The reordered list is quoted in a message up to this length; beyond it, the message names
/// the entry to move before.
const QUOTED_SUGGESTION: usize = 120;

/// How many of the entries responsible for a shadowed one a message names; the rest are counted.
const NAMED_CAUSES: usize = 3;

impl Finding {
    /// What the finding says.
    pub fn kind(&self) -> &FindingKind {
        &self.kind
    }

    /// The byte range of the entry concerned, or of the whole text for a finding about the list.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The 1-based number of the entry concerned; `None` for a finding about the whole list.
    pub fn entry_number(&self) -> Option<usize> {
        self.entry.as_ref().map(|entry| entry.number)
    }

    /// The reordered list that makes a shadowed entry apply, in canonical form, when it is short
    /// enough to quote (see [`FindingKind::Shadowed`] for the entry to move in any case).
    pub fn suggestion(&self) -> Option<&str> {
        self.suggestion.as_deref()
    }

    /// Renders the message, then `input` with a caret line under the span, as
    /// [`ParseError::render`] does. `input` must be the text the spans refer to.
    pub fn render(&self, input: &str) -> String {
        render_span(&self.to_string(), input, &self.span)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.space {
            Space::Addresses => "every address",
            Space::Week => "every time of the week",
        };
        match (&self.kind, &self.entry) {
            (FindingKind::AllowsEverything, _) => {
                write!(f, "the list allows {what}, as no constraint would")
            }
            (FindingKind::DeniesEverything, _) => match self.space {
                Space::Addresses => write!(
                    f,
                    "the list denies {what}: no agent can receive a job under it"
                ),
                Space::Week => write!(
                    f,
                    "the list denies {what}: a job under it is never handed out"
                ),
            },
            (FindingKind::Redundant, Some(entry)) => write!(
                f,
                "entry {} `{}` is redundant: removing it changes no verdict",
                entry.number, entry.text
            ),
            (FindingKind::Shadowed { by, move_before }, Some(entry)) => {
                write!(f, "entry {} `{}` never applies: ", entry.number, entry.text)?;
                // `self.by` notes the first causes only; `by` numbers them all.
                let total = by.len();
                let (one, _) = self.by.split_first().ok_or(fmt::Error)?;
                if total == 1 {
                    write!(f, "entry {} `{}`", one.number, one.text)?;
                } else {
                    f.write_str("entries ")?;
                    let named = self.by.len();
                    for (i, cause) in self.by.iter().enumerate() {
                        let separator = match (i, total - named) {
                            (0, _) => "",
                            (i, 0) if i + 1 == named => " and ",
                            _ => ", ",
                        };
                        write!(f, "{separator}{} `{}`", cause.number, cause.text)?;
                    }
                    if total > named {
                        write!(f, " and {} more", total - named)?;
                    }
                }
                let verb = match (self.allow, self.deny, total == 1) {
                    (true, _, true) => "allows",
                    (true, _, false) => "allow",
                    (_, true, true) => "denies",
                    (_, true, false) => "deny",
                    (_, _, _) => "decide",
                };
                write!(f, " already {verb} all of it")?;
                match (&self.suggestion, move_before) {
                    (Some(list), _) => write!(f, "; did you mean `{list}`?"),
                    (None, Some(before)) => {
                        write!(f, "; did you mean to put it before entry {before}?")
                    }
                    (None, None) => Ok(()),
                }
            }
            (_, None) => Err(fmt::Error),
        }
    }
}

impl IpRanges {
    /// The findings of the lint on this list, with spans in its canonical text (`to_string()`):
    /// entries that never apply or are redundant, in order, then whether the list allows or
    /// denies every address. The empty list (no constraint) has none.
    ///
    /// IPv4-mapped IPv6 addresses are checked as IPv4, so the part of an IPv6 entry that covers
    /// them (`::/0` does) counts for nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::constraint::{FindingKind, IpRanges};
    ///
    /// let office: IpRanges = "10.1.0.0/16, 10.0.0.0/8".parse()?;
    /// let findings = office.lint();
    /// assert_eq!(findings.len(), 1);
    /// assert_eq!(findings[0].kind(), &FindingKind::Redundant);
    /// assert_eq!(
    ///     findings[0].to_string(),
    ///     "entry 1 `10.1.0.0/16` is redundant: removing it changes no verdict"
    /// );
    ///
    /// let nobody: IpRanges = "!10.0.0.0/8, 10.1.0.0/16".parse()?;
    /// let kinds: Vec<_> = nobody.lint().iter().map(|f| f.kind().clone()).collect();
    /// assert_eq!(
    ///     kinds,
    ///     [
    ///         FindingKind::Shadowed { by: vec![1], move_before: Some(1) },
    ///         FindingKind::DeniesEverything,
    ///     ]
    /// );
    /// # Ok::<(), oco_core::constraint::ParseError>(())
    /// ```
    pub fn lint(&self) -> Vec<Finding> {
        lint_ip_entries(self.entries())
    }

    /// Parses `input` as `FromStr` does and lints the list, with spans in `input` (see
    /// [`IpRanges::lint`]): what an editor or an API shows beside a successful save.
    ///
    /// # Errors
    ///
    /// The parse error, as from `FromStr`.
    pub fn parse_linted(input: &str) -> Result<(IpRanges, Vec<Finding>), ParseError> {
        let (ranges, spans) = IpRanges::parse_spanned(input)?;
        let findings = lint_ip(ranges.entries(), &Source::Text { input, spans });
        Ok((ranges, findings))
    }
}

impl TimeFrames {
    /// The findings of the lint on this list, with spans in its canonical text (`to_string()`):
    /// entries that never apply or are redundant, in order, then whether the list allows or
    /// denies every second of the (local) week. The empty list (no constraint) has none.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::constraint::{FindingKind, TimeFrames};
    ///
    /// let saturday: TimeFrames = "SAT 0:00-23:59, !SAT 11:00-13:00".parse()?;
    /// let findings = saturday.lint();
    /// assert_eq!(
    ///     findings[0].to_string(),
    ///     "entry 2 `!SAT 11:00-13:00` never applies: entry 1 `SAT 00:00-23:59` already allows \
    ///      all of it; did you mean `!SAT 11:00-13:00, SAT 00:00-23:59`?"
    /// );
    /// assert_eq!(findings[0].span(), 17..33);
    ///
    /// let always: TimeFrames = "MON-SUN, 08:00-09:00".parse()?;
    /// let kinds: Vec<_> = always.lint().iter().map(|f| f.kind().clone()).collect();
    /// assert_eq!(
    ///     kinds,
    ///     [
    ///         FindingKind::Shadowed { by: vec![1], move_before: None },
    ///         FindingKind::AllowsEverything,
    ///     ]
    /// );
    /// # Ok::<(), oco_core::constraint::ParseError>(())
    /// ```
    pub fn lint(&self) -> Vec<Finding> {
        lint_time(self.entries(), &Source::canonical())
    }

    /// Parses `input` as `FromStr` does and lints the list, with spans in `input` (see
    /// [`TimeFrames::lint`]).
    ///
    /// # Errors
    ///
    /// The parse error, as from `FromStr`.
    pub fn parse_linted(input: &str) -> Result<(TimeFrames, Vec<Finding>), ParseError> {
        let (frames, spans) = TimeFrames::parse_spanned(input)?;
        let findings = lint_time(frames.entries(), &Source::Text { input, spans });
        Ok((frames, findings))
    }
}

/// The lint of [`IpRanges::lint`] on entries built in code, beyond the text limits too (as
/// [`IpMatcher::new`](super::IpMatcher::new) takes them); spans are in the canonical text the
/// entries would print as, joined by `", "`.
///
/// # Examples
///
/// ```
/// use oco_core::constraint::{lint_ip_entries, FindingKind, IpEntry};
///
/// let entries = [
///     IpEntry::new("10.0.0.0/8".parse()?, false),
///     IpEntry::new("10.0.0.0/8".parse()?, true),
/// ];
/// let findings = lint_ip_entries(&entries);
/// assert_eq!(
///     findings[0].kind(),
///     &FindingKind::Shadowed { by: vec![1], move_before: Some(1) }
/// );
/// assert_eq!(findings[0].span(), 12..23);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn lint_ip_entries(entries: &[IpEntry]) -> Vec<Finding> {
    lint_ip(entries, &Source::canonical())
}

/// Each entry's byte range in the canonical text of `entries` (joined by `", "`).
fn canonical_spans<T: fmt::Display>(entries: &[T]) -> Vec<Range<usize>> {
    let mut spans = Vec::with_capacity(entries.len());
    let mut at = 0;
    for entry in entries {
        let mut len = LengthCounter(0);
        // Writing into a counter cannot fail.
        let _ = write!(len, "{entry}");
        spans.push(at..at + len.0);
        at += len.0 + ", ".len();
    }
    spans
}

// ---------------------------------------------------------------------------------------------
// The analysis, common to both languages.

/// No entry: the segment is matched by no entry (first) or by one entry only (second).
const NONE: u32 = u32::MAX;
/// A segment outside the space (IPv4-mapped IPv6 addresses, which are checked as IPv4).
const OUTSIDE: u32 = u32::MAX - 1;

/// The space cut into segments, each with its first and second matching entry.
struct Segments {
    first: Vec<u32>,
    second: Vec<u32>,
}

/// One entry's part in the analysis: its verdict, the segments it covers and a key shared by
/// entries that cover the same segments.
trait Covers {
    fn segments(&self) -> &Segments;
    fn len(&self) -> usize;
    fn negated(&self, entry: usize) -> bool;
    /// Calls `visit` with each range of segment indices the entry covers.
    fn cover(&self, entry: usize, visit: &mut dyn FnMut(Range<usize>));
    /// Entries covering the same segments share a group.
    fn group(&self, entry: usize) -> usize;
}

/// A finding before its texts: the entry (0-based), and for a shadowed one, its causes.
enum Raw {
    Shadowed { entry: usize, by: Vec<usize> },
    Redundant { entry: usize },
    Allows,
    Denies,
}

fn analyse(covers: &dyn Covers) -> Vec<Raw> {
    let segments = covers.segments();
    let n = covers.len();
    if n == 0 {
        return Vec::new();
    }
    let plain = (0..n).filter(|&i| !covers.negated(i)).count();
    let unmatched_verdict = plain == 0;
    // The verdict for what nothing matches once `entry` is removed: removing the only plain
    // entry leaves negations (or nothing), which allow it.
    let unmatched_without = |entry: usize| {
        if !covers.negated(entry) && plain == 1 {
            true
        } else {
            unmatched_verdict
        }
    };
    let verdict = |entry: u32| !covers.negated(entry as usize);

    let mut owns = vec![false; n];
    let mut matters = vec![false; n];
    let (mut any_allowed, mut any_denied, mut any_unmatched) = (false, false, false);
    for (&first, &second) in segments.first.iter().zip(&segments.second) {
        match first {
            OUTSIDE => continue,
            NONE => {
                any_unmatched = true;
                any_allowed |= unmatched_verdict;
                any_denied |= !unmatched_verdict;
            }
            owner => {
                let allowed = verdict(owner);
                any_allowed |= allowed;
                any_denied |= !allowed;
                let index = owner as usize;
                owns[index] = true;
                let without = if second == NONE {
                    unmatched_without(index)
                } else {
                    verdict(second)
                };
                matters[index] |= without != allowed;
            }
        }
    }

    let mut causes: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut found = Vec::new();
    for entry in 0..n {
        if !owns[entry] {
            let by = causes
                .entry(covers.group(entry))
                .or_insert_with(|| {
                    let mut owners = Vec::new();
                    covers.cover(entry, &mut |range| {
                        owners.extend(
                            segments.first[range]
                                .iter()
                                .filter(|&&owner| owner != NONE && owner != OUTSIDE)
                                .map(|&owner| owner as usize),
                        );
                    });
                    owners.sort_unstable();
                    owners.dedup();
                    owners
                })
                .clone();
            // An entry covering nothing in the space (only IPv4-mapped addresses) has no causes
            // and never applies either.
            found.push(Raw::Shadowed { entry, by });
        } else if !matters[entry]
            && (unmatched_without(entry) == unmatched_verdict || !any_unmatched)
        {
            found.push(Raw::Redundant { entry });
        }
    }
    match (any_allowed, any_denied) {
        (true, false) => found.push(Raw::Allows),
        (false, true) => found.push(Raw::Denies),
        _ => {}
    }
    found
}

/// Turns raw findings into findings, with the entries' texts and spans.
fn finish<E: fmt::Display>(
    raw: Vec<Raw>,
    covers: &dyn Covers,
    space: Space,
    entries: &[E],
    source: &Source<'_>,
) -> Vec<Finding> {
    let text = |entry: usize| source.text(entries, entry);
    let span = |entry: usize| source.span(entries, entry);
    let noted = |entry: usize| Noted {
        number: entry + 1,
        text: text(entry),
        negated: covers.negated(entry),
    };
    raw.into_iter()
        .map(|raw| match raw {
            Raw::Shadowed { entry, by } => {
                let negated = covers.negated(entry);
                let before = by
                    .iter()
                    .any(|&cause| covers.negated(cause) != negated)
                    .then(|| by[0]);
                let suggestion = before
                    .map(|before| reorder(entries, entry, before))
                    .filter(|list| list.len() <= QUOTED_SUGGESTION);
                Finding {
                    kind: FindingKind::Shadowed {
                        by: by.iter().map(|cause| cause + 1).collect(),
                        move_before: before.map(|before| before + 1),
                    },
                    span: span(entry),
                    entry: Some(noted(entry)),
                    by: by
                        .iter()
                        .take(NAMED_CAUSES)
                        .map(|&cause| noted(cause))
                        .collect(),
                    suggestion,
                    space,
                    allow: by.iter().all(|&cause| !covers.negated(cause)),
                    deny: by.iter().all(|&cause| covers.negated(cause)),
                }
            }
            Raw::Redundant { entry } => Finding {
                kind: FindingKind::Redundant,
                span: span(entry),
                entry: Some(noted(entry)),
                by: Vec::new(),
                suggestion: None,
                space,
                allow: false,
                deny: false,
            },
            Raw::Allows | Raw::Denies => Finding {
                kind: if matches!(raw, Raw::Allows) {
                    FindingKind::AllowsEverything
                } else {
                    FindingKind::DeniesEverything
                },
                span: source.whole(entries),
                entry: None,
                by: Vec::new(),
                suggestion: None,
                space,
                allow: false,
                deny: false,
            },
        })
        .collect()
}

/// Where the texts and spans of a list's findings come from.
enum Source<'a> {
    /// The text the list was parsed from, and each entry's byte range in it.
    Text {
        input: &'a str,
        spans: Vec<Range<usize>>,
    },
    /// The list's canonical text, whose spans are computed when a finding first needs one.
    Canonical {
        spans: std::cell::OnceCell<Vec<Range<usize>>>,
    },
}

impl Source<'_> {
    fn canonical() -> Self {
        Source::Canonical {
            spans: std::cell::OnceCell::new(),
        }
    }

    fn text<E: fmt::Display>(&self, entries: &[E], entry: usize) -> String {
        match self {
            Source::Text { input, spans } => input[spans[entry].clone()].to_owned(),
            Source::Canonical { .. } => entries[entry].to_string(),
        }
    }

    fn span<E: fmt::Display>(&self, entries: &[E], entry: usize) -> Range<usize> {
        self.spans(entries)[entry].clone()
    }

    fn whole<E: fmt::Display>(&self, entries: &[E]) -> Range<usize> {
        match self {
            Source::Text { input, .. } => 0..input.len(),
            Source::Canonical { .. } => 0..self.spans(entries).last().map_or(0, |span| span.end),
        }
    }

    fn spans<E: fmt::Display>(&self, entries: &[E]) -> &[Range<usize>] {
        match self {
            Source::Text { spans, .. } => spans,
            Source::Canonical { spans } => spans.get_or_init(|| canonical_spans(entries)),
        }
    }
}

/// The findings on `entries`, whose segments `covers` has.
fn lint_list<E: fmt::Display>(
    entries: &[E],
    covers: &dyn Covers,
    space: Space,
    source: &Source<'_>,
) -> Vec<Finding> {
    finish(analyse(covers), covers, space, entries, source)
}

/// The canonical text of `entries` with entry `moved` put before entry `before`.
fn reorder<T: fmt::Display>(entries: &[T], moved: usize, before: usize) -> String {
    let order = (0..entries.len()).filter(|&i| i != moved).flat_map(|i| {
        if i == before {
            vec![moved, i]
        } else {
            vec![i]
        }
    });
    let mut text = String::new();
    for (k, i) in order.enumerate() {
        if k > 0 {
            text.push_str(", ");
        }
        text.push_str(&entries[i].to_string());
        if text.len() > QUOTED_SUGGESTION {
            break;
        }
    }
    text
}

// ---------------------------------------------------------------------------------------------
// IP ranges: the address space of each family cut at every entry's ends.

fn lint_ip(entries: &[IpEntry], source: &Source<'_>) -> Vec<Finding> {
    lint_list(entries, &IpCovers::new(entries), Space::Addresses, source)
}

/// A distinct network of the list, as integers of its family (IPv4 in the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    v6: bool,
    first: u128,
    last: u128,
}

struct IpCovers {
    negated: Vec<bool>,
    /// Each entry's node, as an index into `nodes`.
    node_of: Vec<usize>,
    /// Each node's range of segment indices.
    nodes: Vec<Range<usize>>,
    segments: Segments,
}

impl IpCovers {
    fn new(entries: &[IpEntry]) -> IpCovers {
        let node = |network: IpNet| match network {
            IpNet::V4(net) => Node {
                v6: false,
                first: u128::from(u32::from(net.network())),
                last: u128::from(u32::from(net.broadcast())),
            },
            IpNet::V6(net) => Node {
                v6: true,
                first: u128::from(net.network()),
                last: u128::from(net.broadcast()),
            },
        };
        // The entries in sweep order: by family, then by start, the larger network first, then
        // in list order; equal networks are adjacent and become one node, which keeps the two
        // lowest indices.
        let mut sorted: Vec<(Node, u32)> = entries
            .iter()
            .zip(0..)
            .map(|(entry, index)| (node(entry.network()), index))
            .collect();
        sorted.sort_unstable_by_key(|&(node, index)| {
            (node.v6, node.first, std::cmp::Reverse(node.last), index)
        });
        let mut nodes: Vec<(Node, u32, u32)> = Vec::new();
        let mut node_of = vec![0; entries.len()];
        for (key, index) in sorted {
            match nodes.last_mut() {
                Some((last, _, next)) if *last == key => {
                    if *next == NONE {
                        *next = index;
                    }
                }
                _ => nodes.push((key, index, NONE)),
            }
            node_of[index as usize] = nodes.len() - 1;
        }

        let mut starts: Vec<(bool, u128)> = Vec::new();
        let mut segments = Segments {
            first: Vec::new(),
            second: Vec::new(),
        };
        let mut ranges = vec![0..0; nodes.len()];
        // IPv4 nodes come first.
        let split = nodes.partition_point(|(node, _, _)| !node.v6);
        for (v6, family) in [(false, 0..split), (true, split..nodes.len())] {
            let from = starts.len();
            sweep(v6, &nodes[family.clone()], &mut starts, &mut segments);
            // Each node's segments: from the one holding its first address to the one holding
            // its last.
            let family_starts = &starts[from..];
            let at = |address: u128| {
                from + family_starts.partition_point(|&(_, start)| start <= address) - 1
            };
            for id in family {
                let (node, _, _) = nodes[id];
                ranges[id] = at(node.first)..at(node.last) + 1;
            }
        }
        IpCovers {
            negated: entries.iter().map(IpEntry::is_negated).collect(),
            node_of,
            nodes: ranges,
            segments,
        }
    }
}

/// Cuts one family's address space at the ends of its nodes (sorted by start, larger first,
/// each with its two lowest entry indices),
/// appending the segments' starts and first and second entries. In IPv6, the IPv4-mapped block
/// is a segment of its own, outside the space.
fn sweep(
    v6: bool,
    nodes: &[(Node, u32, u32)],
    starts: &mut Vec<(bool, u128)>,
    segments: &mut Segments,
) {
    let mut sweep = Sweep {
        max: if v6 { u128::MAX } else { u128::from(u32::MAX) },
        cuts: vec![(0, NONE, NONE)],
        open: Vec::new(),
    };
    let mapped = Node {
        v6: true,
        first: MAPPED,
        last: MAPPED | 0xffff_ffff,
    };
    let order = |node: &Node| (node.first, std::cmp::Reverse(node.last));
    let mut mapped_pending = v6;
    for &(node, lowest, next) in nodes {
        if mapped_pending && order(&node) > order(&mapped) {
            mapped_pending = false;
            sweep.open(mapped, OUTSIDE, OUTSIDE);
        }
        sweep.open(node, lowest, next);
    }
    if mapped_pending {
        sweep.open(mapped, OUTSIDE, OUTSIDE);
    }
    sweep.close_until(None);
    for (start, first, second) in sweep.cuts {
        if starts.last() == Some(&(v6, start)) {
            starts.pop();
            segments.first.pop();
            segments.second.pop();
        }
        starts.push((v6, start));
        segments.first.push(first);
        segments.second.push(second);
    }
}

/// The state of [`sweep`]: the cuts so far and the networks open at the current address.
struct Sweep {
    max: u128,
    /// `(start, first, second)`; a later cut at the same start replaces an earlier one.
    cuts: Vec<(u128, u32, u32)>,
    /// Open networks: `(last address, first and second entries inside it)`.
    open: Vec<(u128, u32, u32)>,
}

impl Sweep {
    /// Opens `node`, whose own entries' lowest indices are `lowest` and `next` (`OUTSIDE` for
    /// the IPv4-mapped block), after closing the networks that end before it.
    fn open(&mut self, node: Node, lowest: u32, next: u32) {
        self.close_until(Some(node.first));
        let (first, second) = if lowest == OUTSIDE {
            (OUTSIDE, OUTSIDE)
        } else {
            let (_, outer_first, outer_second) = self.outer();
            two_lowest(outer_first, outer_second, lowest, next)
        };
        self.cuts.push((node.first, first, second));
        self.open.push((node.last, first, second));
    }

    /// Closes the open networks that end before `start` (all of them for `None`).
    fn close_until(&mut self, start: Option<u128>) {
        while let Some(&(last, _, _)) = self.open.last() {
            if start.is_some_and(|start| last >= start) {
                break;
            }
            self.open.pop();
            if last != self.max {
                let (_, first, second) = self.outer();
                self.cuts.push((last + 1, first, second));
            }
        }
    }

    fn outer(&self) -> (u128, u32, u32) {
        self.open.last().copied().unwrap_or((0, NONE, NONE))
    }
}

/// The two lowest of two pairs of entry indices, each pair in increasing order (`NONE` last).
fn two_lowest(a1: u32, a2: u32, b1: u32, b2: u32) -> (u32, u32) {
    if a1 <= b1 {
        (a1, a2.min(b1))
    } else {
        (b1, b2.min(a1))
    }
}

impl Covers for IpCovers {
    fn segments(&self) -> &Segments {
        &self.segments
    }

    fn len(&self) -> usize {
        self.negated.len()
    }

    fn negated(&self, entry: usize) -> bool {
        self.negated[entry]
    }

    fn cover(&self, entry: usize, visit: &mut dyn FnMut(Range<usize>)) {
        visit(self.nodes[self.node_of[entry]].clone());
    }

    fn group(&self, entry: usize) -> usize {
        self.node_of[entry]
    }
}

// ---------------------------------------------------------------------------------------------
// Time frames: the minutes of the week (every window begins and ends on a whole minute, so every
// second of a minute gets the same verdict).

fn lint_time(entries: &[TimeFrame], source: &Source<'_>) -> Vec<Finding> {
    lint_list(entries, &TimeCovers::new(entries), Space::Week, source)
}

struct TimeCovers<'a> {
    entries: &'a [TimeFrame],
    groups: Vec<usize>,
    segments: Segments,
}

impl<'a> TimeCovers<'a> {
    fn new(entries: &'a [TimeFrame]) -> TimeCovers<'a> {
        let mut segments = Segments {
            first: vec![NONE; MINUTES_PER_WEEK],
            second: vec![NONE; MINUTES_PER_WEEK],
        };
        // Painting from the last entry to the first: each entry painted is the lowest so far.
        // Lists have at most `MAX_ENTRIES` entries, far below `u32::MAX`.
        let indexed: Vec<(u32, &TimeFrame)> = (0..).zip(entries).collect();
        for (index, entry) in indexed.into_iter().rev() {
            entry.for_each_week_range(|start, end| {
                for minute in start..end {
                    if segments.first[minute] != index {
                        segments.second[minute] = segments.first[minute];
                        segments.first[minute] = index;
                    }
                }
            });
        }
        let mut ids: HashMap<(Option<DayRange>, Option<TimeWindow>), usize> = HashMap::new();
        let groups = entries
            .iter()
            .map(|entry| {
                let next = ids.len();
                *ids.entry((entry.days(), entry.window())).or_insert(next)
            })
            .collect();
        TimeCovers {
            entries,
            groups,
            segments,
        }
    }
}

impl Covers for TimeCovers<'_> {
    fn segments(&self) -> &Segments {
        &self.segments
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn negated(&self, entry: usize) -> bool {
        self.entries[entry].is_negated()
    }

    fn cover(&self, entry: usize, visit: &mut dyn FnMut(Range<usize>)) {
        self.entries[entry].for_each_week_range(|start, end| visit(start..end));
    }

    fn group(&self, entry: usize) -> usize {
        self.groups[entry]
    }
}
