//! Short programs showing how to use `oco-core` and `oco-agent-protocol`; see the `examples/`
//! folder of this crate.
