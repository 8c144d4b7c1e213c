//! Agent reports: the job state machine and what a report changes.
