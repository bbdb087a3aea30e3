//! wasmtime host for sandboxed tools (issue 6).
