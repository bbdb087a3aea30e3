//! The tools that ship with the runtime, built from `tools/` by `build.rs`.

/// `(name, component bytes)`.
pub const TOOLS: [(&str, &[u8]); 5] = [
    (
        "text",
        include_bytes!(concat!(env!("OUT_DIR"), "/text.wasm")),
    ),
    (
        "number",
        include_bytes!(concat!(env!("OUT_DIR"), "/number.wasm")),
    ),
    (
        "calc",
        include_bytes!(concat!(env!("OUT_DIR"), "/calc.wasm")),
    ),
    (
        "files",
        include_bytes!(concat!(env!("OUT_DIR"), "/files.wasm")),
    ),
    (
        "json",
        include_bytes!(concat!(env!("OUT_DIR"), "/json.wasm")),
    ),
];

/// The component bytes of the bundled tool `name`; `None` when there is no such tool.
pub fn get(name: &str) -> Option<&'static [u8]> {
    TOOLS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The names of the bundled tools, in [`TOOLS`] order.
pub fn names() -> Vec<&'static str> {
    TOOLS.iter().map(|(n, _)| *n).collect()
}
