//! `text`: what small models get wrong when they count in their heads. Characters are
//! counted as a reader sees them (grapheme clusters: "é" written as e + accent is one), and
//! substrings without overlap, as "how many times does X occur" means. The logic is in
//! `logic.rs`; this is the JSON contract around it.

mod logic;

use serde_json::Value;

wit_bindgen::generate!({ world: "json-tool", path: "../../wit" });

struct Text;

impl exports::agent::tool::json::Guest for Text {
    fn describe() -> String {
        logic::describe().to_string()
    }

    fn call(name: String, arguments: String) -> Result<String, String> {
        let args: Value =
            serde_json::from_str(&arguments).map_err(|e| format!("arguments are not JSON: {e}"))?;
        Ok(logic::call(&name, &args)?.to_string())
    }
}

export!(Text);
