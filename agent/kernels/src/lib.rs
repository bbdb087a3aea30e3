//! CPU kernels that the vendored candle-core calls in place of its own (agent/vendor/README.md).
//!
//! Each kernel gives exactly the bits of the stock kernel it replaces: the same integer dot
//! products, the same float operations in the same order. Prefill, decode and a KV cache
//! restored from disk therefore agree bit for bit whichever path computed them, and the
//! published-model tolerances measured on the stock kernels still hold.
#![deny(missing_docs)]

pub mod q8_0;
