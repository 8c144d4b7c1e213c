//! Group membership resolution: computer groups and ordered package groups, subgroups included.
