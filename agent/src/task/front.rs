//! The front matter keys and their checks.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use super::access::{check_hooks, check_permissions};
use super::check::{
    Checked, FieldError, Seg, child, describe, entries, integer, integer_u32, number, string,
    wrong_type,
};
use super::limits::{self, RunLimits};
use super::output::{OutputSpec, check_output};
use super::thinking::{ThinkingSpec, check_thinking};
use super::tools::{ToolSource, check_tools};
use crate::thinking::ThinkingPolicySpec;

/// Model used when neither the task nor `--model` names one: the catalogue's default.
pub use crate::models::DEFAULT_MODEL;
/// Steps (model turns) per run when not set.
pub const DEFAULT_MAX_STEPS: u32 = 8;
/// Allowed `max_steps` (also for `--max-steps`). The upper bound catches typos
/// (`max_steps: 80000`) that would otherwise burn hours of compute.
pub const MAX_STEPS_RANGE: RangeInclusive<u32> = 1..=1000;
/// Allowed `sampling.temperature`.
pub const TEMPERATURE_RANGE: RangeInclusive<f64> = 0.0..=2.0;

/// The keys a task file may set. Every key is optional; `None` means "use the
/// default" (see `docs/TASK_FORMAT.md` and the `*_or_default` methods).
///
/// Deserialising goes through the same checks as a task file, so a value that
/// would be rejected in a task file is rejected everywhere (unknown keys
/// included, as with `deny_unknown_fields`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub struct FrontMatter {
    /// A catalogue name, a `.gguf` file or a Hugging Face–layout directory;
    /// resolved by the model loader, not here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where the model runs: the CPU, CUDA, or CUDA when available (`auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// Quantize a safetensors checkpoint while loading it (mistral.rs ISQ: `Q4K`, `Q8_0`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isq: Option<String>,
    /// Most model turns in one run, within [`MAX_STEPS_RANGE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// What bounds the run: tool results in the prompt, compaction, loops, calls per turn,
    /// time (top-level keys, see [`RunLimits`]).
    #[serde(flatten)]
    pub limits: RunLimits,
    /// The tools offered to the model, as sources (`builtin`, `builtin:NAME`, `wasm:…`);
    /// `final_answer` is always there besides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolSource>>,
    /// How many tokens a step may spend reasoning: one budget, or one per step kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingSpec>,
    /// How tokens are chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Sampling>,
    /// What the final answer must look like: free text, or JSON valid against a schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSpec>,
    /// Which calls a step may make (`auto`, `required`, `none`, or one tool's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// The tool-call format, when not the one the model's family writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_format: Option<crate::formats::Format>,
    /// MCP servers for this task, in the `mcpServers` shape (checked when the task is read;
    /// see [`FrontMatter::mcp_config`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<serde_json::Value>,
    /// What each wasm tool may do, by tool name (`wasm:NAME`); a tool without an entry gets
    /// the default policy (nothing granted, small limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasm_policy: Option<BTreeMap<String, Policy>>,
    /// Which tool calls run, are asked about, or are refused (see docs/PERMISSIONS.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
    /// Commands run before and after tool calls, and when the run ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HookSpecs>,
}

use crate::backend::Device;
use crate::formats::ToolChoice;

use std::collections::BTreeMap;

use agent_sandboxes::Policy;
use agent_tools::mcp::{McpConfig, PathSeg};
use agent_tools::permissions::{HookSpecs, Permissions};

/// Token sampling. Greedy (deterministic) unless `temperature` is set above 0,
/// because reproducible runs are the more useful default for an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub struct Sampling {
    /// Within [`TEMPERATURE_RANGE`]; 0 means greedy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass: greater than 0, at most 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Sample among the k most likely tokens: at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Random seed, for repeatable sampled runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Sampling {
    /// True when decoding should be greedy: no temperature, or temperature 0.
    pub fn is_greedy(&self) -> bool {
        self.temperature.is_none_or(|t| t == 0.0)
    }
}

impl FrontMatter {
    /// Applies command-line flags, which win over the file: `--model`,
    /// `--max-steps`, `--seed`. `None` leaves the file's value alone.
    pub fn apply_overrides(
        &mut self,
        model: Option<String>,
        max_steps: Option<u32>,
        seed: Option<u64>,
    ) {
        if let Some(model) = model {
            self.model = Some(model);
        }
        if let Some(max_steps) = max_steps {
            self.max_steps = Some(max_steps);
        }
        if let Some(seed) = seed {
            self.sampling.get_or_insert_with(Sampling::default).seed = Some(seed);
        }
    }

    /// The model to load: `model`, or [`DEFAULT_MODEL`].
    pub fn model_or_default(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }

    /// `device`, or [`Device::Auto`].
    pub fn device_or_default(&self) -> Device {
        self.device.unwrap_or_default()
    }

    /// `max_steps`, or [`DEFAULT_MAX_STEPS`].
    pub fn max_steps_or_default(&self) -> u32 {
        self.max_steps.unwrap_or(DEFAULT_MAX_STEPS)
    }

    /// `tools`, or every built-in tool.
    pub fn tools_or_default(&self) -> Vec<ToolSource> {
        self.tools
            .clone()
            .unwrap_or_else(|| vec![ToolSource::AllBuiltins])
    }

    /// The thinking budget per step kind, defaults filled in.
    pub fn thinking_policy(&self) -> ThinkingPolicySpec {
        self.thinking
            .as_ref()
            .map(ThinkingSpec::policy)
            .unwrap_or_default()
    }

    /// `sampling`, or greedy decoding.
    pub fn sampling_or_default(&self) -> Sampling {
        self.sampling.clone().unwrap_or_default()
    }

    /// `tool_choice`, or `auto`.
    pub fn tool_choice_or_default(&self) -> ToolChoice {
        self.tool_choice.clone().unwrap_or_default()
    }

    /// `output`, or free text.
    pub fn output_or_default(&self) -> OutputSpec {
        self.output.clone().unwrap_or_default()
    }

    /// The task's MCP servers (none when `mcp_servers` is absent).
    pub fn mcp_config(&self) -> Result<McpConfig, FieldError> {
        match &self.mcp_servers {
            None => Ok(McpConfig::default()),
            Some(v) => mcp_config_from(v),
        }
    }
}

/// The top-level keys before and after the run limits' ([`limits::KEYS`]), in the order the
/// "allowed keys" error lists them.
const KEYS_BEFORE_LIMITS: [&str; 4] = ["model", "device", "isq", "max_steps"];
const KEYS_AFTER_LIMITS: [&str; 10] = [
    "tools",
    "thinking",
    "sampling",
    "output",
    "tool_choice",
    "tool_format",
    "mcp_servers",
    "wasm_policy",
    "permissions",
    "hooks",
];
const SAMPLING_KEYS: [&str; 4] = ["temperature", "top_p", "top_k", "seed"];

/// The whole front matter. Keys are checked in document order and the first
/// problem wins, so the user fixes errors top to bottom. An empty value
/// (`model:`) counts as unset, as it would for an `Option` with serde.
pub(crate) fn check_front_matter(value: &Value) -> Checked<FrontMatter> {
    let map = match value {
        Value::Null => return Ok(FrontMatter::default()),
        Value::Mapping(map) => map,
        other => {
            let message = format!(
                "front matter must be a mapping of keys to values; found {}",
                describe(other)
            );
            return Err(FieldError::new(&[], message));
        }
    };
    let allowed: Vec<&str> = KEYS_BEFORE_LIMITS
        .iter()
        .chain(&limits::KEYS)
        .chain(&KEYS_AFTER_LIMITS)
        .copied()
        .collect();
    let mut front = FrontMatter::default();
    for (key, value) in entries(map, &[], &allowed)? {
        if value.is_null() {
            continue;
        }
        let path = [Seg::Key(key.to_owned())];
        match key {
            "model" => {
                let expected = "a model name, .gguf file or model directory";
                front.model = Some(string(value, &path, expected)?.to_owned());
            }
            "device" => front.device = Some(check_device(value, &path)?),
            "isq" => {
                let expected = "an ISQ type (Q4K, Q5K, Q6K, Q8_0, …)";
                let name = string(value, &path, expected)?;
                if !crate::models::is_isq(name) {
                    return Err(wrong_type(&path, expected, value));
                }
                front.isq = Some(name.to_owned());
            }
            "max_steps" => {
                let (min, max) = (*MAX_STEPS_RANGE.start(), *MAX_STEPS_RANGE.end());
                front.max_steps = Some(integer_u32(value, &path, min, max)?);
            }
            k if limits::KEYS.contains(&k) => {
                limits::check_key(&mut front.limits, k, value, &path)?
            }
            "tools" => front.tools = Some(check_tools(value, &path)?),
            "thinking" => front.thinking = Some(check_thinking(value, &path)?),
            "sampling" => front.sampling = Some(check_sampling(value, &path)?),
            "tool_choice" => front.tool_choice = Some(check_tool_choice(value, &path)?),
            "mcp_servers" => front.mcp_servers = Some(check_mcp_servers(value, &path)?),
            "wasm_policy" => front.wasm_policy = Some(check_wasm_policy(value, &path)?),
            "permissions" => front.permissions = Some(check_permissions(value, &path)?),
            "hooks" => front.hooks = Some(check_hooks(value, &path)?),
            "tool_format" => {
                let expected = "one of qwen3, qwen3-coder, llama4-pythonic, llama4-json";
                let name = string(value, &path, expected)?;
                front.tool_format = Some(
                    name.parse()
                        .map_err(|_| wrong_type(&path, expected, value))?,
                );
            }
            _ => front.output = Some(check_output(value, &path)?),
        }
    }
    Ok(front)
}

/// `wasm_policy:`: a mapping of tool names to policies (serde names the bad field).
fn check_wasm_policy(value: &Value, path: &[Seg]) -> Checked<BTreeMap<String, Policy>> {
    let Value::Mapping(map) = value else {
        return Err(wrong_type(
            path,
            "a mapping of wasm tool names to policies",
            value,
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let name = k
            .as_str()
            .ok_or_else(|| FieldError::new(path, "tool names must be strings"))?;
        let at = super::check::child(path, name);
        let policy: Policy = serde_yaml_ng::from_value(v.clone())
            .map_err(|e| FieldError::new(&at, e.to_string()))?;
        out.insert(name.to_string(), policy);
    }
    Ok(out)
}

/// `mcp_servers:` is checked by the MCP configuration reader, its key paths put under ours.
fn check_mcp_servers(value: &Value, path: &[Seg]) -> Checked<serde_json::Value> {
    let json = serde_json::to_value(value)
        .map_err(|e| FieldError::new(path, format!("not representable as JSON: {e}")))?;
    mcp_config_from(&json).map(|_| json)
}

fn mcp_config_from(json: &serde_json::Value) -> Checked<McpConfig> {
    McpConfig::from_servers(json, "", &[PathSeg::Key("mcp_servers".into())]).map_err(|e| {
        let at: Vec<Seg> = e
            .path
            .iter()
            .map(|s| match s {
                PathSeg::Key(k) => Seg::Key(k.clone()),
                PathSeg::Index(i) => Seg::Index(*i),
            })
            .collect();
        let mut err = FieldError::new(&at, e.message.clone());
        err.at = at;
        err
    })
}

fn check_tool_choice(value: &Value, path: &[Seg]) -> Checked<ToolChoice> {
    const EXPECTED: &str = "one of auto, required, none, or a mapping `tool: NAME`";
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            "none" => Ok(ToolChoice::None),
            _ => Err(wrong_type(path, EXPECTED, value)),
        },
        Value::Mapping(map) => {
            let mut name = None;
            for (key, v) in entries(map, path, &["tool"])? {
                let mut p = path.to_vec();
                p.push(Seg::Key(key.to_owned()));
                name = Some(string(v, &p, "the name of an enabled tool")?.to_owned());
            }
            name.map(ToolChoice::Tool)
                .ok_or_else(|| FieldError::new(path, "a mapping needs `tool: NAME`".to_string()))
        }
        _ => Err(wrong_type(path, EXPECTED, value)),
    }
}

fn check_device(value: &Value, path: &[Seg]) -> Checked<Device> {
    match value.as_str().map(str::parse) {
        Some(Ok(device)) => Ok(device),
        _ => Err(wrong_type(path, "one of cpu, cuda, auto", value)),
    }
}

fn check_sampling(value: &Value, path: &[Seg]) -> Checked<Sampling> {
    let Value::Mapping(map) = value else {
        return Err(wrong_type(
            path,
            "a mapping with keys temperature, top_p, top_k, seed",
            value,
        ));
    };
    let mut sampling = Sampling::default();
    for (key, value) in entries(map, path, &SAMPLING_KEYS)? {
        if value.is_null() {
            continue;
        }
        let path = child(path, key);
        match key {
            "temperature" => {
                let range = "between 0 and 2";
                sampling.temperature = Some(number(
                    value,
                    &path,
                    |t| TEMPERATURE_RANGE.contains(&t),
                    range,
                )?);
            }
            "top_p" => {
                let range = "greater than 0 and at most 1";
                sampling.top_p = Some(number(value, &path, |p| p > 0.0 && p <= 1.0, range)?);
            }
            "top_k" => sampling.top_k = Some(integer_u32(value, &path, 1, u32::MAX)?),
            _ => sampling.seed = Some(integer(value, &path, 0, u64::MAX)?),
        }
    }
    Ok(sampling)
}

impl TryFrom<Value> for FrontMatter {
    type Error = FieldError;

    fn try_from(value: Value) -> Result<Self, FieldError> {
        check_front_matter(&value)
    }
}

impl TryFrom<Value> for Sampling {
    type Error = FieldError;

    fn try_from(value: Value) -> Result<Self, FieldError> {
        check_sampling(&value, &[])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn devices_parse_by_name() {
        assert_eq!(
            ["cpu", "cuda", "auto", "gpu"].map(str::parse::<Device>),
            [
                Ok(Device::Cpu),
                Ok(Device::Cuda),
                Ok(Device::Auto),
                Err(r#""gpu" is not a device: one of cpu, cuda, auto"#.to_string())
            ]
        );
    }

    use super::*;
    use crate::thinking::Budget;

    #[test]
    fn overrides_replace_file_values() {
        let mut front = FrontMatter {
            model: Some("qwen3-0.6b".into()),
            max_steps: Some(3),
            sampling: Some(Sampling {
                temperature: Some(0.7),
                seed: Some(1),
                ..Sampling::default()
            }),
            ..FrontMatter::default()
        };
        front.apply_overrides(Some("llama4-scout".into()), Some(20), Some(42));
        assert_eq!(
            front,
            FrontMatter {
                model: Some("llama4-scout".into()),
                max_steps: Some(20),
                sampling: Some(Sampling {
                    temperature: Some(0.7),
                    seed: Some(42),
                    ..Sampling::default()
                }),
                ..FrontMatter::default()
            }
        );
    }

    #[test]
    fn absent_overrides_keep_file_values() {
        let original = FrontMatter {
            model: Some("m".into()),
            max_steps: Some(3),
            ..FrontMatter::default()
        };
        let mut front = original.clone();
        front.apply_overrides(None, None, None);
        assert_eq!(front, original);
    }

    #[test]
    fn seed_override_creates_sampling() {
        let mut front = FrontMatter::default();
        front.apply_overrides(None, None, Some(7));
        assert_eq!(
            front,
            FrontMatter {
                sampling: Some(Sampling {
                    seed: Some(7),
                    ..Sampling::default()
                }),
                ..FrontMatter::default()
            }
        );
    }

    #[test]
    fn defaults() {
        let front = FrontMatter::default();
        assert_eq!(front.model_or_default(), "smollm2-135m");
        assert_eq!(front.device_or_default(), Device::Auto);
        assert_eq!(front.max_steps_or_default(), 8);
        assert_eq!(front.tools_or_default(), vec![ToolSource::AllBuiltins]);
        assert_eq!(
            front.thinking_policy(),
            ThinkingPolicySpec {
                plan: Some(Budget::Tokens(2048)),
                act: Some(Budget::Off),
                recover: Some(Budget::Tokens(1024)),
                answer: Some(Budget::Tokens(512)),
                total: None,
            }
        );
        assert!(front.sampling_or_default().is_greedy());
        assert!(
            Sampling {
                temperature: Some(0.0),
                ..Sampling::default()
            }
            .is_greedy()
        );
        assert!(
            !Sampling {
                temperature: Some(0.2),
                ..Sampling::default()
            }
            .is_greedy()
        );
        assert_eq!(front.output_or_default(), OutputSpec::Text);
    }

    #[test]
    fn mcp_servers_are_checked_with_their_key_paths() {
        let yaml: Value =
            serde_yaml_ng::from_str("mcp_servers:\n  fs:\n    command: npx\n    args: [-y, 3]\n")
                .unwrap();
        let err = check_front_matter(&yaml).unwrap_err();
        assert_eq!(
            (err.key(), err.message.as_str()),
            (
                "mcp_servers.fs.args[1]".to_string(),
                "expected strings; found the number 3"
            )
        );
        let yaml: Value = serde_yaml_ng::from_str(
            "mcp_servers:\n  web: {url: 'http://127.0.0.1:9/mcp', call_timeout: 5}\n",
        )
        .unwrap();
        let front = check_front_matter(&yaml).unwrap();
        let config = front.mcp_config().unwrap();
        assert_eq!(
            config.servers["web"].call_timeout,
            std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn isq_must_be_a_quantization_type() {
        let ok = serde_yaml_ng::from_str("isq: q4k\n").unwrap();
        assert_eq!(check_front_matter(&ok).unwrap().isq, Some("q4k".into()));
        let bad = serde_yaml_ng::from_str("isq: Q9K\n").unwrap();
        assert_eq!(
            check_front_matter(&bad).unwrap_err().to_string(),
            "isq: expected an ISQ type (Q4K, Q5K, Q6K, Q8_0, …); found the string \"Q9K\""
        );
    }

    #[test]
    fn serde_round_trip_uses_the_same_checks() {
        let front = FrontMatter {
            model: Some("m".into()),
            device: Some(Device::Cuda),
            isq: Some("Q4K".into()),
            max_steps: Some(5),
            limits: RunLimits {
                max_result_bytes: Some(4096),
                max_result_tokens: Some(1000),
                compact: Some(false),
                compact_at: Some(0.5),
                loop_repeats: Some(4),
                max_calls: Some(3),
                parallel_calls: Some(2),
                time_limit: Some(3600),
                tool_timeout: Some(30),
            },
            tools: Some(vec![
                ToolSource::AllBuiltins,
                ToolSource::Builtin("read_file".into()),
            ]),
            thinking: Some(ThinkingSpec::Uniform(Budget::Tokens(64))),
            sampling: Some(Sampling {
                top_k: Some(40),
                ..Sampling::default()
            }),
            output: Some(OutputSpec::Text),
            tool_choice: Some(ToolChoice::Tool("calculator".into())),
            tool_format: Some(crate::formats::Format::Qwen3Coder),
            mcp_servers: Some(
                serde_json::json!({"fs": {"command": "npx", "args": ["-y", "server"], "required": true}}),
            ),
            wasm_policy: Some(
                [(
                    "text".to_string(),
                    Policy {
                        cpu_ms: 500,
                        ..Policy::default()
                    },
                )]
                .into(),
            ),
            permissions: Some(
                serde_json::from_value(serde_json::json!({
                    "allow": ["fs__read_*"],
                    "deny": ["fs__write_file(path: \"/etc/**\", mode: 0..=7)"],
                    "default": "deny",
                    "annotations": false
                }))
                .unwrap(),
            ),
            hooks: Some(
                serde_json::from_value(serde_json::json!({
                    "pre_tool": [{"match": "fs__*", "command": "check.sh", "timeout": 5.0}],
                    "stop": [{"command": "notify.sh"}]
                }))
                .unwrap(),
            ),
        };
        let json = serde_json::to_value(&front).unwrap();
        assert_eq!(serde_json::from_value::<FrontMatter>(json).unwrap(), front);
        let err =
            serde_json::from_value::<FrontMatter>(serde_json::json!({"max_steps": 0})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_steps: 0 is out of range: must be between 1 and 1000"
        );
        let err =
            serde_json::from_value::<FrontMatter>(serde_json::json!({"max_result_bytes": 10}))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_result_bytes: 10 is out of range: must be between 256 and 67108864"
        );
        let err =
            serde_json::from_value::<FrontMatter>(serde_json::json!({"modle": "x"})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("modle: unknown key; allowed keys: model, device"),
            "{err}"
        );
    }
}
