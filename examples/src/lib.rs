//! Short programs showing how to use `oco-core`; see the `examples/` folder of this crate.
