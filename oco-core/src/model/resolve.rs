//! Group membership resolution: computer groups and ordered package groups, subgroups included.
//!
//! Membership of a group includes the members of its subgroups, transitively (OCO uses direct
//! members only). Stores refuse cycles in the group hierarchy, but both functions guard against
//! them anyway: each group is visited at most once.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Computer, ComputerGroup, ComputerGroupId, ComputerId, PackageGroup, PackageGroupId, PackageId,
};

/// The computers of `group` and of all its subgroups (transitively), each once, ordered by
/// hostname (case-insensitively), then id.
///
/// `groups` is the group hierarchy (a group's subgroups are those whose `parent` is it) and
/// `members` the direct members of each group. A member missing from `computers` is still
/// returned, after all known computers, ordered by id, so that the caller can report it.
pub fn resolve_computer_group(
    group: ComputerGroupId,
    groups: &[ComputerGroup],
    members: &BTreeMap<ComputerGroupId, Vec<ComputerId>>,
    computers: &BTreeMap<ComputerId, Computer>,
) -> Vec<ComputerId> {
    let mut visited = BTreeSet::new();
    let mut found = BTreeSet::new();
    let mut stack = vec![group];
    while let Some(current) = stack.pop() {
        if !visited.insert(current) {
            continue;
        }
        found.extend(members.get(&current).into_iter().flatten().copied());
        stack.extend(
            groups
                .iter()
                .filter(|candidate| candidate.parent == Some(current))
                .map(|child| child.id),
        );
    }
    let mut resolved: Vec<ComputerId> = found.into_iter().collect();
    resolved.sort_by_cached_key(|id| {
        let hostname = computers
            .get(id)
            .map(|computer| computer.hostname.as_str().to_lowercase());
        (hostname.is_none(), hostname, *id)
    });
    resolved
}

/// The packages of `group` in their resolved order: its own members in their order, then each
/// direct subgroup (ordered by name, then id) resolved the same way, depth first. A package that
/// appears more than once keeps its first position.
///
/// `groups` is the group hierarchy (a group's subgroups are those whose `parent` is it) and
/// `members` the direct members of each group, in order.
pub fn resolve_package_group(
    group: PackageGroupId,
    groups: &[PackageGroup],
    members: &BTreeMap<PackageGroupId, Vec<PackageId>>,
) -> Vec<PackageId> {
    let mut visited = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut resolved = Vec::new();
    // Pre-order depth first: a group's children are pushed in reverse, so the first child (and
    // its whole subtree) is taken before the second.
    let mut stack = vec![group];
    while let Some(current) = stack.pop() {
        if !visited.insert(current) {
            continue;
        }
        for &package in members.get(&current).into_iter().flatten() {
            if seen.insert(package) {
                resolved.push(package);
            }
        }
        let mut children: Vec<&PackageGroup> = groups
            .iter()
            .filter(|candidate| candidate.parent == Some(current))
            .collect();
        children.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        stack.extend(children.iter().rev().map(|child| child.id));
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Name;

    fn computer(id: i64, hostname: &str) -> (ComputerId, Computer) {
        (
            ComputerId(id),
            Computer {
                id: ComputerId(id),
                hostname: Name::new("hostname", hostname).unwrap(),
                os: String::new(),
                os_version: String::new(),
                architecture: String::new(),
                macs: vec![],
                last_seen: None,
            },
        )
    }

    fn cgroup(id: i64, parent: Option<i64>) -> ComputerGroup {
        ComputerGroup {
            id: ComputerGroupId(id),
            name: Name::new("name", &format!("group {id}")).unwrap(),
            parent: parent.map(ComputerGroupId),
        }
    }

    fn pgroup(id: i64, name: &str, parent: Option<i64>) -> PackageGroup {
        PackageGroup {
            id: PackageGroupId(id),
            name: Name::new("name", name).unwrap(),
            parent: parent.map(PackageGroupId),
        }
    }

    fn cids(ids: &[i64]) -> Vec<ComputerId> {
        ids.iter().copied().map(ComputerId).collect()
    }

    fn pids(ids: &[i64]) -> Vec<PackageId> {
        ids.iter().copied().map(PackageId).collect()
    }

    #[test]
    fn computer_group_includes_subgroups_once_ordered_by_hostname() {
        let computers: BTreeMap<_, _> = [
            computer(1, "zeta"),
            computer(2, "Alpha"),
            computer(3, "beta"),
            computer(4, "alpha"),
        ]
        .into_iter()
        .collect();
        let groups = [
            cgroup(10, None),
            cgroup(11, Some(10)),
            cgroup(12, Some(11)),
            cgroup(13, None),
        ];
        let members = BTreeMap::from([
            (ComputerGroupId(10), cids(&[1])),
            (ComputerGroupId(11), cids(&[3, 1])),
            (ComputerGroupId(12), cids(&[4, 2])),
            (ComputerGroupId(13), cids(&[3])),
        ]);
        assert_eq!(
            resolve_computer_group(ComputerGroupId(10), &groups, &members, &computers),
            cids(&[2, 4, 3, 1]),
            "Alpha and alpha tie case-insensitively and are ordered by id"
        );
        assert_eq!(
            resolve_computer_group(ComputerGroupId(12), &groups, &members, &computers),
            cids(&[2, 4])
        );
        assert_eq!(
            resolve_computer_group(ComputerGroupId(99), &groups, &members, &computers),
            cids(&[])
        );
    }

    #[test]
    fn computer_group_cycle_terminates_and_unknown_members_come_last() {
        let computers: BTreeMap<_, _> = [computer(1, "b"), computer(2, "a")].into_iter().collect();
        let groups = [cgroup(10, Some(11)), cgroup(11, Some(10))];
        let members = BTreeMap::from([
            (ComputerGroupId(10), cids(&[1, 9])),
            (ComputerGroupId(11), cids(&[2, 1])),
        ]);
        assert_eq!(
            resolve_computer_group(ComputerGroupId(10), &groups, &members, &computers),
            cids(&[2, 1, 9])
        );
    }

    #[test]
    fn package_group_own_members_then_subgroups_by_name_depth_first() {
        let groups = [
            pgroup(1, "root", None),
            pgroup(2, "zz", Some(1)),
            pgroup(3, "aa", Some(1)),
            pgroup(4, "inner", Some(3)),
            pgroup(5, "aa", Some(1)),
        ];
        let members = BTreeMap::from([
            (PackageGroupId(1), pids(&[30, 10])),
            (PackageGroupId(2), pids(&[20, 10])),
            (PackageGroupId(3), pids(&[40])),
            (PackageGroupId(4), pids(&[50, 30])),
            (PackageGroupId(5), pids(&[60, 50])),
        ]);
        // root: 30, 10; then aa (3): 40, inner: 50; then aa (5): 60; then zz: 20.
        assert_eq!(
            resolve_package_group(PackageGroupId(1), &groups, &members),
            pids(&[30, 10, 40, 50, 60, 20])
        );
    }

    #[test]
    fn package_group_cycle_terminates() {
        let groups = [pgroup(1, "a", Some(2)), pgroup(2, "b", Some(1))];
        let members = BTreeMap::from([
            (PackageGroupId(1), pids(&[1])),
            (PackageGroupId(2), pids(&[2, 1])),
        ]);
        assert_eq!(
            resolve_package_group(PackageGroupId(1), &groups, &members),
            pids(&[1, 2])
        );
        assert_eq!(
            resolve_package_group(PackageGroupId(2), &groups, &members),
            pids(&[2, 1])
        );
    }
}
