//! Package families, packages, their procedures and success codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Computer, FamilyId, InvalidField, Name, PackageId};

/// A package family: the versions of one piece of software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageFamily {
    /// Assigned by the store.
    pub id: FamilyId,
    /// Unique among families.
    pub name: Name,
}

/// One version of a package family, with how to install and uninstall it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Package {
    /// Assigned by the store.
    pub id: PackageId,
    /// The family; (family, version) is unique.
    pub family: FamilyId,
    /// The version, unique within the family.
    pub version: Name,
    /// How to install it.
    pub install: Procedure,
    /// How to uninstall it.
    pub uninstall: Procedure,
    /// The payload archive stored for it, if any (JSON: `null`, or `{"size", "sha256"}`).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub payload: Option<Payload>,
    /// Whether uninstall jobs download the payload too.
    pub download_for_uninstall: bool,
    /// What installing it means for other installed versions of the family.
    pub upgrade_behavior: UpgradeBehavior,
    /// Which computers it may be installed on.
    pub compatibility: Compatibility,
    /// Packages that must be installed first, in order.
    pub dependencies: Vec<PackageId>,
}

impl Package {
    /// Whether a payload archive is stored for it (its jobs download it).
    pub fn has_payload(&self) -> bool {
        self.payload.is_some()
    }
}

/// A package's stored payload archive, as its row describes it.
///
/// Serialised as `{"size": 1234, "sha256": "<64 hex digits>"}`; a payload stored before
/// the server kept sizes and digests is `{"size": null, "sha256": null}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "PayloadFields", try_from = "PayloadFields")]
pub enum Payload {
    /// Stored with its length and digest, computed by the server as it wrote the file.
    Known {
        /// Its length in bytes.
        size: u64,
        /// The SHA-256 digest of its bytes.
        sha256: Sha256Digest,
    },
    /// Stored before the server kept lengths and digests; uploading it again makes it known.
    Unknown,
}

impl Payload {
    /// The payload of `size` bytes with digest `sha256`.
    pub fn new(size: u64, sha256: Sha256Digest) -> Payload {
        Payload::Known { size, sha256 }
    }

    /// Its length in bytes, if known.
    pub fn size(&self) -> Option<u64> {
        match self {
            Payload::Known { size, .. } => Some(*size),
            Payload::Unknown => None,
        }
    }

    /// Its SHA-256 digest, if known.
    pub fn sha256(&self) -> Option<Sha256Digest> {
        match self {
            Payload::Known { sha256, .. } => Some(*sha256),
            Payload::Unknown => None,
        }
    }
}

/// The JSON form of a [`Payload`]: both fields, or both `null`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadFields {
    size: Option<u64>,
    sha256: Option<Sha256Digest>,
}

impl From<Payload> for PayloadFields {
    fn from(payload: Payload) -> Self {
        PayloadFields {
            size: payload.size(),
            sha256: payload.sha256(),
        }
    }
}

impl TryFrom<PayloadFields> for Payload {
    type Error = InvalidField;

    fn try_from(fields: PayloadFields) -> Result<Self, Self::Error> {
        match (fields.size, fields.sha256) {
            (Some(size), Some(sha256)) => Ok(Payload::Known { size, sha256 }),
            (None, None) => Ok(Payload::Unknown),
            _ => Err(InvalidField::new(
                "payload",
                "`size` and `sha256` are both given or both null",
            )),
        }
    }
}

/// A SHA-256 digest; its text is 64 lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// 64 hexadecimal digits, in either case.
impl FromStr for Sha256Digest {
    type Err = InvalidField;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            InvalidField::new(
                "sha256",
                format!("`{text}` is not a SHA-256 digest (64 hexadecimal digits)"),
            )
        };
        let digits = text.as_bytes();
        // `from_str_radix` alone would take a sign.
        if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(invalid());
        }
        let value = |digit: u8| match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => digit - b'A' + 10,
        };
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = value(pair[0]) << 4 | value(pair[1]);
        }
        Ok(Sha256Digest(bytes))
    }
}

crate::text_serde::serde_as_text!(Sha256Digest);

/// Where saving `package` with `dependencies` would close a dependency cycle: the cycle, from
/// `package` back to it (`[101, 102, 101]`; `[101, 101]` for a package naming itself), or `None`.
///
/// `dependencies_of` gives the stored dependencies of another package (the graph as it is
/// before the save; `package`'s own stored list is never asked for). A store calls it inside the
/// transaction that writes, the admin API before it, so both find the same cycle. The search is
/// depth first in list order, each package visited once, so the cycle reported is the first one
/// in that order. Dependencies are assumed acyclic among the other packages (every save is
/// checked); a cycle among them that does not pass through `package` is not reported.
///
/// # Errors
///
/// The first error of `dependencies_of`.
pub fn dependency_cycle<E>(
    package: PackageId,
    dependencies: &[PackageId],
    mut dependencies_of: impl FnMut(PackageId) -> Result<Vec<PackageId>, E>,
) -> Result<Option<DependencyCycle>, E> {
    // An explicit stack of (package, its dependencies, the next one to visit): chains of
    // dependencies may be long, and recursion would tie their depth to the thread's stack.
    let mut visited: std::collections::BTreeSet<PackageId> = std::collections::BTreeSet::new();
    let mut stack: Vec<(PackageId, Vec<PackageId>, usize)> =
        vec![(package, dependencies.to_vec(), 0)];
    while let Some((_, list, next)) = stack.last_mut() {
        let Some(&dependency) = list.get(*next) else {
            stack.pop();
            continue;
        };
        *next += 1;
        if dependency == package {
            let mut path: Vec<PackageId> = stack.iter().map(|(id, _, _)| *id).collect();
            path.push(package);
            return Ok(Some(DependencyCycle { path }));
        }
        if visited.insert(dependency) {
            let list = dependencies_of(dependency)?;
            stack.push((dependency, list, 0));
        }
    }
    Ok(None)
}

/// A dependency cycle found by [`dependency_cycle`]: packages in dependency order, the first
/// repeated at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyCycle {
    path: Vec<PackageId>,
}

impl DependencyCycle {
    /// The packages, from the saved one back to it (`[101, 102, 101]`, or `[101, 101]`).
    pub fn path(&self) -> &[PackageId] {
        &self.path
    }

    /// Whether the package depends on itself directly.
    pub fn is_self_dependency(&self) -> bool {
        self.path.len() <= 2
    }
}

/// `a package cannot depend on itself`, or `dependency cycle: package 101 → 102 → 101`.
impl fmt::Display for DependencyCycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_self_dependency() {
            return f.write_str("a package cannot depend on itself");
        }
        f.write_str("dependency cycle: package ")?;
        for (i, id) in self.path.iter().enumerate() {
            if i > 0 {
                f.write_str(" → ")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// A command with the return codes that count as success and what to do after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Procedure {
    /// The command line the agent runs.
    pub command: String,
    /// Return codes that count as success.
    pub success_codes: SuccessCodes,
    /// What the agent does after success.
    pub post_action: PostAction,
}

impl Procedure {
    /// The command `command`, which succeeds with return code 0 and is followed by nothing; the
    /// `with_*` methods change the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::model::{PostAction, Procedure};
    ///
    /// let install = Procedure::new("msiexec /i app.msi /qn")
    ///     .with_success_codes("0, 3010".parse()?)
    ///     .with_post_action(PostAction::Restart);
    /// assert!(install.success_codes.accepts(3010));
    /// assert!(!install.success_codes.accepts(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(command: impl Into<String>) -> Self {
        Procedure {
            command: command.into(),
            success_codes: SuccessCodes::zero(),
            post_action: PostAction::None,
        }
    }

    /// The procedure with these success codes.
    #[must_use]
    pub fn with_success_codes(self, success_codes: SuccessCodes) -> Self {
        Procedure {
            success_codes,
            ..self
        }
    }

    /// The procedure with this post action.
    #[must_use]
    pub fn with_post_action(self, post_action: PostAction) -> Self {
        Procedure {
            post_action,
            ..self
        }
    }
}

/// What the agent does after a successful job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PostAction {
    /// Nothing.
    #[default]
    None,
    /// Restart the computer.
    Restart,
    /// Shut the computer down.
    Shutdown,
    /// Stop the agent (it is restarted by its service manager, e.g. after updating itself).
    ExitAgent,
}

/// What installing a version means for other installed versions of its family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeBehavior {
    /// Other versions stay installed.
    #[default]
    KeepOthers,
    /// A successful install removes the assignments of other versions (the installer replaced
    /// them).
    ImplicitRemove,
    /// Uninstall jobs for other installed versions are created before the install job.
    ExplicitUninstall,
}

impl UpgradeBehavior {
    /// Whether installing this version removes other versions (implicitly or explicitly).
    pub fn removes_others(self) -> bool {
        !matches!(self, UpgradeBehavior::KeepOthers)
    }
}

/// Compatibility lists: a package is compatible with a computer when, for each of os, os version
/// and architecture, the list is empty, or the computer's value is empty, or a trimmed entry equals
/// the trimmed value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Compatibility {
    /// Operating systems.
    pub os: Vec<String>,
    /// Operating system versions.
    pub os_version: Vec<String>,
    /// Architectures.
    pub architecture: Vec<String>,
}

impl Compatibility {
    /// Whether a package with these lists may be installed on `computer`.
    pub fn allows(&self, computer: &Computer) -> bool {
        fn fits(list: &[String], value: &str) -> bool {
            let value = value.trim();
            list.is_empty() || value.is_empty() || list.iter().any(|entry| entry.trim() == value)
        }
        fits(&self.os, &computer.os)
            && fits(&self.os_version, &computer.os_version)
            && fits(&self.architecture, &computer.architecture)
    }
}

/// The return codes that count as success: comma-separated integers and inclusive ranges
/// (`0, 3010, 1641`, `0-3`, `-5--1`), or `*` for every code.
///
/// Parsed strictly (OCO reads garbage as 0): anything else, a range `A-B` with `A > B`, or a
/// list without any code (`""`, `" , "`) is an error. An empty list used to mean "every code",
/// which made a forgotten or blanked field turn every failure into a success; that meaning is
/// now written `*`. `Display` prints the canonical form (`0, 3010, -5--1`, or `*`), which parses
/// back to the same value; serde uses it. `Default` is every code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SuccessCodes {
    ranges: Vec<(i64, i64)>,
}

impl SuccessCodes {
    /// Codes that accept only `0`.
    pub fn zero() -> Self {
        SuccessCodes {
            ranges: vec![(0, 0)],
        }
    }

    /// Whether `code` counts as success.
    pub fn accepts(&self, code: i64) -> bool {
        self.ranges.is_empty()
            || self
                .ranges
                .iter()
                .any(|&(low, high)| low <= code && code <= high)
    }

    /// Codes that accept every code (`*`).
    pub fn any() -> Self {
        SuccessCodes::default()
    }

    /// Whether every code counts (`*`).
    pub fn accepts_any(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The inclusive ranges, in the order written; a single code is a range of one.
    pub fn ranges(&self) -> &[(i64, i64)] {
        &self.ranges
    }
}

impl FromStr for SuccessCodes {
    type Err = InvalidField;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == ANY {
            return Ok(SuccessCodes::default());
        }
        let mut ranges = Vec::new();
        for entry in text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let invalid =
                |why: &str| InvalidField::new("success_codes", format!("`{entry}` {why}"));
            // The separator of a range is a `-` after a digit (and optional spaces): `-5--1` is
            // -5 to -1.
            let split = entry.char_indices().find_map(|(i, c)| {
                let before = entry[..i].trim_end();
                (c == '-' && before.ends_with(|d: char| d.is_ascii_digit())).then_some(i)
            });
            let parse = |number: &str| {
                let number = number.trim();
                let digits = number.strip_prefix('-').unwrap_or(number);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("is not an integer or a range `A-B`"));
                }
                number
                    .parse::<i64>()
                    .map_err(|_| invalid("is out of the range of return codes"))
            };
            let (low, high) = match split {
                Some(i) => (parse(&entry[..i])?, parse(&entry[i + 1..])?),
                None => {
                    let code = parse(entry)?;
                    (code, code)
                }
            };
            if low > high {
                return Err(invalid("is a range whose start is above its end"));
            }
            ranges.push((low, high));
        }
        if ranges.is_empty() {
            return Err(InvalidField::new(
                "success_codes",
                format!(
                    "lists no code; write the codes that count as success (`0` usually), \
                     or `{ANY}` for every code"
                ),
            ));
        }
        Ok(SuccessCodes { ranges })
    }
}

/// The text of "every code counts".
const ANY: &str = "*";

impl fmt::Display for SuccessCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ranges.is_empty() {
            return f.write_str(ANY);
        }
        for (i, &(low, high)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

crate::text_serde::serde_as_text!(SuccessCodes);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn success_codes_parse_strictly() {
        let cases: &[(&str, &[(i64, i64)])] = &[
            ("*", &[]),
            (" * ", &[]),
            ("0", &[(0, 0)]),
            ("0, 3010, 1641", &[(0, 0), (3010, 3010), (1641, 1641)]),
            ("0-3", &[(0, 3)]),
            ("-5--1", &[(-5, -1)]),
            ("-5 - -1", &[(-5, -1)]),
            ("-3-3", &[(-3, 3)]),
            ("-7", &[(-7, -7)]),
        ];
        for &(text, ranges) in cases {
            let codes: SuccessCodes = text.parse().unwrap();
            assert_eq!(codes.ranges(), ranges, "{text}");
            assert_eq!(codes.to_string().parse::<SuccessCodes>().unwrap(), codes);
        }
        let no_code =
            "lists no code; write the codes that count as success (`0` usually), or `*` for every code";
        let errors = [
            ("", no_code),
            (" ", no_code),
            (" , ", no_code),
            ("*, 0", "`*` is not an integer or a range `A-B`"),
            ("x", "`x` is not an integer or a range `A-B`"),
            ("0, abc", "`abc` is not an integer or a range `A-B`"),
            ("3-1", "`3-1` is a range whose start is above its end"),
            ("1-", "`1-` is not an integer or a range `A-B`"),
            ("--1", "`--1` is not an integer or a range `A-B`"),
            ("+1", "`+1` is not an integer or a range `A-B`"),
            ("1.5", "`1.5` is not an integer or a range `A-B`"),
            (
                "99999999999999999999",
                "`99999999999999999999` is out of the range of return codes",
            ),
        ];
        for (text, reason) in errors {
            let err = text.parse::<SuccessCodes>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("success_codes: {reason}"),
                "{text}"
            );
        }
    }

    /// The stored dependencies of a small graph: 2 → 3 → 4, 5 → 2.
    fn graph(id: PackageId) -> Result<Vec<PackageId>, ()> {
        let ids = |list: &[i64]| list.iter().map(|&i| PackageId(i)).collect();
        Ok(match id.0 {
            2 => ids(&[3]),
            3 => ids(&[4]),
            5 => ids(&[2]),
            _ => vec![],
        })
    }

    fn cycle(package: i64, dependencies: &[i64]) -> Option<String> {
        let dependencies: Vec<PackageId> = dependencies.iter().map(|&i| PackageId(i)).collect();
        dependency_cycle(PackageId(package), &dependencies, graph)
            .unwrap()
            .map(|cycle| cycle.to_string())
    }

    #[test]
    fn dependency_cycles_are_found_and_named() {
        assert_eq!(cycle(4, &[]), None);
        assert_eq!(cycle(1, &[2, 5]), None, "a diamond is no cycle");
        assert_eq!(
            cycle(6, &[6]).as_deref(),
            Some("a package cannot depend on itself")
        );
        assert_eq!(
            cycle(4, &[2]).as_deref(),
            Some("dependency cycle: package 4 → 2 → 3 → 4")
        );
        assert_eq!(
            cycle(2, &[5]).as_deref(),
            Some("dependency cycle: package 2 → 5 → 2")
        );
        assert_eq!(
            cycle(3, &[1, 5]).as_deref(),
            Some("dependency cycle: package 3 → 5 → 2 → 3"),
            "the walk goes on past packages without dependencies"
        );
        let failing = dependency_cycle(PackageId(1), &[PackageId(2)], |_| Err::<Vec<_>, _>("io"));
        assert_eq!(failing, Err("io"));
    }

    #[test]
    fn payloads_serialise_as_size_and_digest() {
        let digest: Sha256Digest =
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                .parse()
                .unwrap();
        let known = Payload::new(0, digest);
        let json = serde_json::to_value(known).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"size": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})
        );
        assert_eq!(serde_json::from_value::<Payload>(json).unwrap(), known);
        let unknown = serde_json::to_value(Payload::Unknown).unwrap();
        assert_eq!(unknown, serde_json::json!({"size": null, "sha256": null}));
        assert_eq!(
            serde_json::from_value::<Payload>(unknown).unwrap(),
            Payload::Unknown
        );
        let half =
            serde_json::from_value::<Payload>(serde_json::json!({"size": 3, "sha256": null}))
                .unwrap_err()
                .to_string();
        assert_eq!(
            half,
            "payload: `size` and `sha256` are both given or both null"
        );
        for text in [
            "",
            "e3b0",
            "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "+3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "é3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        ] {
            let err = text.parse::<Sha256Digest>().unwrap_err().to_string();
            assert_eq!(
                err,
                format!("sha256: `{text}` is not a SHA-256 digest (64 hexadecimal digits)")
            );
        }
    }

    proptest! {
        /// Every digest round-trips through its text.
        #[test]
        fn digests_round_trip(bytes in any::<[u8; 32]>()) {
            let digest = Sha256Digest(bytes);
            let text = digest.to_string();
            prop_assert_eq!(text.len(), 64);
            prop_assert_eq!(text.parse::<Sha256Digest>().unwrap(), digest);
            prop_assert_eq!(text.to_uppercase().parse::<Sha256Digest>().unwrap(), digest);
        }

        /// A graph built by adding packages that depend only on older ones has no cycle; an edge
        /// from the oldest package to the newest closes one through every path between them.
        #[test]
        fn only_back_edges_make_cycles(edges in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..3), 1..12)) {
            let lists: Vec<Vec<PackageId>> = edges
                .iter()
                .enumerate()
                .map(|(i, picks)| {
                    if i == 0 { vec![] } else {
                        picks.iter().map(|pick| PackageId(pick.index(i) as i64)).collect()
                    }
                })
                .collect();
            let of = |id: PackageId| Ok::<_, ()>(lists[usize::try_from(id.0).unwrap()].clone());
            for (i, list) in lists.iter().enumerate() {
                prop_assert_eq!(dependency_cycle(PackageId(i as i64), list, of).unwrap(), None);
            }
            let newest = PackageId(lists.len() as i64 - 1);
            let found = dependency_cycle(PackageId(0), &[newest], of).unwrap();
            if let Some(found) = found {
                let path = found.path();
                prop_assert_eq!(path.first(), Some(&PackageId(0)));
                prop_assert_eq!(path.last(), Some(&PackageId(0)));
                for pair in path.windows(2) {
                    let from = pair[0];
                    let list = if from == PackageId(0) { vec![newest] } else { of(from).unwrap() };
                    prop_assert!(list.contains(&pair[1]), "{:?} is no edge", pair);
                }
            } else {
                // No path from the newest back to the oldest.
                prop_assert!(lists.len() == 1 || !reaches(&lists, newest, PackageId(0)));
            }
        }
    }

    fn reaches(lists: &[Vec<PackageId>], from: PackageId, to: PackageId) -> bool {
        let mut todo = vec![from];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(id) = todo.pop() {
            if id == to {
                return true;
            }
            if seen.insert(id) {
                todo.extend(lists[usize::try_from(id.0).unwrap()].iter().copied());
            }
        }
        false
    }

    #[test]
    fn accepts() {
        let codes: SuccessCodes = "0, 3010, -5--1".parse().unwrap();
        assert!(codes.accepts(0) && codes.accepts(3010) && codes.accepts(-5) && codes.accepts(-1));
        assert!(!codes.accepts(1) && !codes.accepts(-6) && !codes.accepts(0 - 9999));
        assert!(SuccessCodes::default().accepts(12345));
        assert_eq!(SuccessCodes::default().to_string(), "*");
        assert!(SuccessCodes::zero().accepts(0) && !SuccessCodes::zero().accepts(1));
    }

    proptest! {
        #[test]
        fn success_codes_round_trip(ranges in proptest::collection::vec((any::<i64>(), any::<i64>()), 0..8)) {
            let codes = SuccessCodes {
                ranges: ranges.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect(),
            };
            prop_assert_eq!(codes.to_string().parse::<SuccessCodes>().unwrap(), codes);
        }
    }

    #[test]
    fn compatibility() {
        let computer = Computer {
            id: crate::model::ComputerId(1),
            hostname: Name::new("hostname", "pc1").unwrap(),
            os: "Windows".into(),
            os_version: " 11 ".into(),
            architecture: String::new(),
            macs: vec![],
            last_seen: None,
        };
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let allows = |os: &[&str], version: &[&str], arch: &[&str]| {
            Compatibility {
                os: list(os),
                os_version: list(version),
                architecture: list(arch),
            }
            .allows(&computer)
        };
        assert!(allows(&[], &[], &[]));
        assert!(allows(&["Linux", " Windows "], &[], &[]));
        assert!(!allows(&["Linux"], &[], &[]));
        assert!(allows(&[], &["10", "11"], &[]));
        assert!(!allows(&[], &["10"], &[]));
        // The computer's architecture is unknown: any list fits.
        assert!(allows(&[], &[], &["arm64"]));
        assert!(
            !allows(&["windows"], &[], &[]),
            "comparison is exact after trimming"
        );
    }
}
