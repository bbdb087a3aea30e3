//! A component's tools: those of the JSON contract (`wit/tool.wit`, world `json-tool`) and its
//! typed exported functions (`typed`). Checked against its policy at load (imports the policy
//! does not grant are refused), described once, then run in a fresh `Store` for every call,
//! within the policy's memory, CPU (epochs or fuel), wall-clock and output limits.

use std::sync::Arc;
use std::time::Instant;

use agent_tools::{BoxFuture, CallContext, Tool, ToolOutput, ToolSpec};
use serde_json::Value;
use wasmtime::component::{InstancePre, Linker, ResourceTable, Val, types::ComponentItem};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::docs::Docs;
use crate::engine::{Compiled, LoadError, MAX_TABLE_ELEMENTS, Metering, Sandbox, TICK};
use crate::policy::{Mode, Policy};
use crate::typed::{self, TypedFunc};

wasmtime::component::bindgen!({
    world: "json-tool",
    path: "wit",
    exports: { default: async },
});

/// Per-call host state: the guest's WASI view, its handles, its limits.
struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Interfaces a tool may import: the WASI basics. Sockets and anything else are refused.
const ALLOWED_IMPORTS: [&str; 5] = [
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

/// Most handles (files, streams) a call may hold at once.
const MAX_HANDLES: usize = 1_000;

/// A loaded component: its tools, checked against its policy, each call run in a fresh
/// instance under that policy.
pub struct WasmComponent {
    name: String,
    /// Its instance slots; held also so that the engine's epoch ticker runs as long as a tool
    /// can be called.
    sandbox: Arc<Sandbox>,
    metering: Metering,
    pre: InstancePre<Host>,
    /// The JSON contract, when the component exports it.
    json: Option<JsonToolIndices>,
    typed: Vec<TypedFunc>,
    policy: Policy,
    specs: Vec<ToolSpec>,
}

/// Live instances of a component, each with its store (see [`WasmComponent::resident`]).
pub struct Resident(Vec<(Store<Host>, Option<tokio::sync::OwnedSemaphorePermit>)>);

impl Resident {
    /// How many instances are alive.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no instance is alive.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a call runs.
enum Job<'a> {
    Describe,
    Json(&'a str, &'a str),
    Typed(&'a TypedFunc, Vec<Val>),
}

enum Done {
    Json(Result<String, String>),
    Typed(Vec<Val>),
}

/// What a call produced, with what it printed.
struct Ran {
    result: Result<Done, String>,
    stdout: String,
    stderr: String,
}

/// How often a fuel-metered guest yields to the async runtime (so that the wall-clock timeout
/// can stop it), in units of fuel.
const FUEL_YIELD: u64 = 10_000_000;

static SCRATCH_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A call's scratch directory, deleted with everything in it when the call ends.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let n = SCRATCH_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("agent-scratch-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl WasmComponent {
    /// Loads `compiled` as the tool set `name` (its tools are `NAME__TOOL`) under `policy`:
    /// the tools of the JSON contract, then one per exported typed function.
    pub async fn load(
        sandbox: Arc<Sandbox>,
        name: &str,
        compiled: Compiled,
        policy: Policy,
    ) -> Result<Arc<WasmComponent>, LoadError> {
        let refused = |message: String| LoadError::Refused {
            path: name.to_string(),
            message,
        };
        let metering = if policy.fuel.is_some() {
            Metering::Fuel
        } else {
            Metering::Epoch
        };
        let compiled = sandbox.recompile(&compiled, metering).await?;
        let component = &compiled.component;
        let engine = component.engine();
        for (import, item) in component.component_type().imports(engine) {
            let ok = matches!(item.ty, ComponentItem::ComponentInstance(_))
                && ALLOWED_IMPORTS.iter().any(|p| import.starts_with(p));
            if !ok {
                let why = if import.starts_with("wasi:sockets/") {
                    "network access is not granted to tools"
                } else {
                    "the host does not provide it"
                };
                return Err(refused(format!("imports `{import}`: {why}")));
            }
        }
        let mut linker: Linker<Host> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| refused(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| refused(format!("cannot be linked: {e:#}")))?;
        let exports_json = component
            .component_type()
            .exports(engine)
            .any(|(n, _)| n.starts_with("agent:tool/json@"));
        let json = if exports_json {
            Some(
                JsonToolIndices::new(&pre)
                    .map_err(|e| refused(format!("`agent:tool/json` does not match: {e:#}")))?,
            )
        } else {
            None
        };
        let docs = Docs::parse(name, compiled.wit.as_deref());
        let (typed, skipped) = typed::discover(component, engine, &docs);
        for why in &skipped {
            tracing::warn!(component = name, "function left out: {why}");
        }
        let mut loaded = WasmComponent {
            name: name.to_string(),
            sandbox,
            metering,
            pre,
            json,
            typed,
            policy,
            specs: Vec::new(),
        };
        if loaded.json.is_some() {
            let ran = loaded.run(Job::Describe).await;
            let described = match ran.result {
                Ok(Done::Json(Ok(text))) => text,
                Ok(Done::Json(Err(e))) | Err(e) => {
                    return Err(refused(format!("describe failed: {e}")));
                }
                Ok(Done::Typed(_)) => return Err(refused("describe failed".into())),
            };
            loaded.specs = parse_description(name, &described).map_err(refused)?;
        }
        for f in &loaded.typed {
            let full = format!("{name}__{}", f.tool);
            if loaded.specs.iter().any(|s| s.name == full) {
                tracing::warn!(
                    component = name,
                    "typed function `{}` has the name of a JSON tool; left out",
                    f.tool
                );
                continue;
            }
            loaded.specs.push(ToolSpec {
                name: full,
                description: f.description.clone(),
                parameters: f.parameters.clone(),
            });
        }
        if loaded.specs.is_empty() {
            let why = if skipped.is_empty() {
                String::new()
            } else {
                format!(" (left out: {})", skipped.join("; "))
            };
            return Err(refused(format!(
                "offers no tools: it exports neither `agent:tool/json` nor functions with JSON-compatible types{why}"
            )));
        }
        Ok(Arc::new(loaded))
    }

    /// The tool set's name, the prefix of its tools' names.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy its calls run under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Its tools as the model sees them (`NAME__TOOL`): the JSON contract's, then the typed
    /// functions'.
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// Every tool, ready for a registry.
    pub fn tools(self: &Arc<Self>) -> Vec<Arc<dyn Tool>> {
        self.specs
            .iter()
            .map(|s| {
                Arc::new(WasmTool {
                    component: self.clone(),
                    spec: s.clone(),
                }) as Arc<dyn Tool>
            })
            .collect()
    }

    /// A fresh store for one call, with what the policy grants. A granted directory that cannot
    /// be opened (removed since the policy was read, say) fails the call: running the tool
    /// without it would answer as if the directory were empty.
    fn store(
        &self,
        scratch: Option<&Scratch>,
    ) -> Result<(Store<Host>, MemoryOutputPipe, MemoryOutputPipe), String> {
        let p = &self.policy;
        let (stdout, stderr) = (
            MemoryOutputPipe::new(p.stdio_bytes),
            MemoryOutputPipe::new(p.stdio_bytes),
        );
        let mut b = WasiCtx::builder();
        b.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(1 << 20);
        for name in &p.env {
            if let Ok(v) = std::env::var(name) {
                b.env(name, v);
            }
        }
        for pre in &p.preopens {
            let perms = match pre.mode {
                Mode::ReadOnly => FsPerms::ReadOnly,
                Mode::ReadWrite => FsPerms::ReadWrite,
            };
            b.preopened_dir(&pre.host, &pre.guest, perms).map_err(|e| {
                format!(
                    "cannot open the granted directory {} (the tool's {}): {e}",
                    pre.host.display(),
                    pre.guest
                )
            })?;
        }
        if let Some(dir) = scratch {
            b.preopened_dir(&dir.0, "/tmp", FsPerms::ReadWrite)
                .map_err(|e| format!("cannot open the scratch directory: {e}"))?;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        let limits = StoreLimitsBuilder::new()
            .memory_size(p.memory_bytes as usize)
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            self.pre.component().engine(),
            Host {
                wasi: b.build(),
                table,
                limits,
            },
        );
        store.limiter(|h| &mut h.limits);
        match (self.metering, p.fuel) {
            (Metering::Fuel, Some(fuel)) => {
                // Both fail only on an engine without fuel, which `Metering::Fuel` rules out.
                let _ = store.set_fuel(fuel);
                let _ = store.fuel_async_yield_interval(Some(FUEL_YIELD.min(fuel)));
            }
            _ => {
                store.set_epoch_deadline(
                    self.policy.cpu_ms.div_ceil(TICK.as_millis() as u64).max(1),
                );
                store.epoch_deadline_trap();
            }
        }
        Ok((store, stdout, stderr))
    }

    /// One call in a fresh store. The store, and with it everything the guest allocated (and
    /// its scratch directory), is gone before this returns.
    async fn run(&self, job: Job<'_>) -> Ran {
        let scratch = match self.policy.scratch.then(Scratch::new).transpose() {
            Ok(s) => s,
            Err(e) => {
                return Ran {
                    result: Err(format!("cannot make the scratch directory: {e}")),
                    stdout: String::new(),
                    stderr: String::new(),
                };
            }
        };
        // Waiting for a free instance slot is not the call's time: the wall clock starts after.
        let slot = self.sandbox.slot().await;
        let (mut store, stdout, stderr) = match self.store(scratch.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                return Ran {
                    result: Err(e),
                    stdout: String::new(),
                    stderr: String::new(),
                };
            }
        };
        let result = self.execute(&mut store, &stdout, job).await;
        drop(store);
        drop(slot);
        drop(scratch);
        let text = |p: &MemoryOutputPipe| String::from_utf8_lossy(&p.contents()).into_owned();
        Ran {
            result,
            stdout: text(&stdout),
            stderr: text(&stderr),
        }
    }

    /// Instantiates the component in `store` and runs `job`, within the wall-clock limit.
    async fn execute(
        &self,
        store: &mut Store<Host>,
        stdout: &MemoryOutputPipe,
        job: Job<'_>,
    ) -> Result<Done, String> {
        let work = async {
            let instance = self.pre.instantiate_async(&mut *store).await?;
            match job {
                Job::Describe | Job::Json(..) => {
                    let tool = match &self.json {
                        Some(indices) => indices.load(&mut *store, &instance)?,
                        None => {
                            return Err(wasmtime::Error::msg("the component has no JSON tools"));
                        }
                    };
                    let api = tool.agent_tool_json();
                    match job {
                        Job::Json(name, args) => {
                            api.call_call(&mut *store, name, args).await.map(Done::Json)
                        }
                        _ => api
                            .call_describe(&mut *store)
                            .await
                            .map(|d| Done::Json(Ok(d))),
                    }
                }
                Job::Typed(f, params) => {
                    let func = instance
                        .get_func(&mut *store, f.export)
                        .ok_or_else(|| wasmtime::Error::msg("the function is not exported"))?;
                    let mut results = f.result_slots();
                    func.call_async(&mut *store, &params, &mut results).await?;
                    Ok(Done::Typed(results))
                }
            }
        };
        match tokio::time::timeout(self.policy.wall(), work).await {
            Err(_) => Err(format!(
                "stopped after {} ms of wall-clock time (the tool's limit)",
                self.policy.wall_ms
            )),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.explain(&e, stdout)),
        }
    }

    /// What runs for a call of `tool` (its name within the component), or the error to return.
    fn job<'a>(
        &'a self,
        tool: &'a str,
        arguments: &Value,
        args_text: &'a str,
    ) -> Result<Job<'a>, String> {
        match self.typed.iter().find(|f| f.tool == tool) {
            Some(f) => f
                .params(arguments)
                .map(|p| Job::Typed(f, p))
                .map_err(|e| format!("invalid arguments: {e}")),
            None if self.json.is_some() => Ok(Job::Json(tool, args_text)),
            None => Err(format!("{} has no tool named `{tool}`", self.name)),
        }
    }

    /// Calls `tool` in `n` fresh instances and keeps them all alive afterwards (a call
    /// normally drops its instance), so that what a concurrent instance costs in memory can be
    /// measured (`agent-bench wasm`). `n` above [`crate::MAX_CONCURRENT_CALLS`] waits forever.
    pub async fn resident(
        &self,
        n: usize,
        tool: &str,
        arguments: &Value,
    ) -> Result<Resident, String> {
        let args = arguments.to_string();
        let mut stores = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = self.sandbox.slot().await;
            let (mut store, stdout, _) = self.store(None)?;
            self.execute(&mut store, &stdout, self.job(tool, arguments, &args)?)
                .await?;
            stores.push((store, slot));
        }
        Ok(Resident(stores))
    }

    /// A trap or error as the model should read it.
    fn explain(&self, e: &wasmtime::Error, stdout: &MemoryOutputPipe) -> String {
        let p = &self.policy;
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!(
                "stopped after {} ms of CPU time (the tool's limit)",
                p.cpu_ms
            ),
            Some(Trap::OutOfFuel) => format!(
                "stopped after burning its fuel of {} (the tool's limit)",
                p.fuel.unwrap_or(0)
            ),
            Some(Trap::StackOverflow) => {
                "the tool overflowed its stack (too deep a recursion)".into()
            }
            Some(Trap::MemoryOutOfBounds) => "the tool accessed memory out of bounds".into(),
            Some(Trap::UnreachableCodeReached) if stdout.contents().len() >= p.stdio_bytes => {
                format!(
                    "the tool failed after writing more than {} bytes to its output",
                    p.stdio_bytes
                )
            }
            Some(t) => format!("the tool crashed: {t}"),
            None => {
                // The root cause, without wasmtime's backtrace of guest frames.
                let msg = e.root_cause().to_string();
                if msg.contains("resource table has no free keys") {
                    format!(
                        "the tool opened more than {MAX_HANDLES} files or streams at once (its limit)"
                    )
                } else if msg.contains("table")
                    && (msg.contains("limit") || msg.contains("grow") || msg.contains("exceed"))
                {
                    format!(
                        "the tool's tables grew past their limit of {MAX_TABLE_ELEMENTS} elements ({msg})"
                    )
                } else if msg.contains("memory")
                    && (msg.contains("limit")
                        || msg.contains("grow")
                        || msg.contains("minimum")
                        || msg.contains("exceed"))
                {
                    format!(
                        "the tool needs more memory than its limit of {} MiB ({msg})",
                        p.memory_bytes >> 20
                    )
                } else {
                    format!("the tool failed: {msg}")
                }
            }
        }
    }

    /// Calls tool `tool` (its name within the component) with arguments already validated
    /// against its schema.
    pub async fn call(&self, tool: &str, arguments: &Value) -> ToolOutput {
        let started = Instant::now();
        let args = arguments.to_string();
        let job = match self.job(tool, arguments, &args) {
            Ok(job) => job,
            Err(e) => return ToolOutput::error(e),
        };
        let ran = self.run(job).await;
        tracing::debug!(component = %self.name, tool, ms = started.elapsed().as_millis() as u64, "wasm call");
        let value = |v: Value| {
            let content = match &v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            ToolOutput {
                content,
                structured: Some(v),
                is_error: false,
                attachments: Vec::new(),
            }
        };
        let mut out = match ran.result {
            Ok(Done::Json(Ok(text))) => match serde_json::from_str::<Value>(&text) {
                Ok(v) => value(v),
                Err(_) => ToolOutput::error(format!(
                    "the tool returned text that is not JSON: {}",
                    agent_tools::mcp::cap_output(&text, 200)
                )),
            },
            Ok(Done::Typed(results)) => match typed::outcome(&results) {
                Ok(v) => value(v),
                Err(Value::String(message)) => ToolOutput::error(message),
                Err(other) => ToolOutput::error(other.to_string()),
            },
            Ok(Done::Json(Err(message))) | Err(message) => ToolOutput::error(message),
        };
        if out.content.len() > self.policy.output_bytes {
            let total = out.content.len();
            let mut cut = self.policy.output_bytes;
            while !out.content.is_char_boundary(cut) {
                cut -= 1;
            }
            out.content.truncate(cut);
            out.content
                .push_str(&format!("\n[output cut: showed {cut} of {total} bytes]"));
            out.structured = None;
        }
        for (name, text) in [("stdout", &ran.stdout), ("stderr", &ran.stderr)] {
            if !text.is_empty() {
                out.attachments.push(agent_tools::Attachment {
                    kind: name.into(),
                    mime_type: Some("text/plain".into()),
                    uri: None,
                    data: Some(text.clone()),
                });
            }
        }
        out
    }
}

/// The tools in `describe`'s answer, named `COMPONENT__TOOL`.
fn parse_description(component: &str, text: &str) -> Result<Vec<ToolSpec>, String> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| format!("describe returned invalid JSON: {e}"))?;
    let items = v
        .as_array()
        .ok_or("describe must return a JSON array of tools")?;
    let mut specs = Vec::new();
    for (i, t) in items.iter().enumerate() {
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && !n.contains("__"))
            .ok_or(format!(
                "tool {i}: `name` must be a non-empty string without `__`"
            ))?;
        let parameters = t
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object"}));
        if parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(format!(
                "tool `{name}`: `parameters` must be a JSON Schema of type object"
            ));
        }
        specs.push(ToolSpec {
            name: format!("{component}__{name}"),
            description: t
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            parameters,
        });
    }
    Ok(specs)
}

struct WasmTool {
    component: Arc<WasmComponent>,
    spec: ToolSpec,
}

impl Tool for WasmTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, arguments: Value, _cx: CallContext) -> BoxFuture<'_, ToolOutput> {
        let prefix = format!("{}__", self.component.name());
        let tool = self
            .spec
            .name
            .strip_prefix(&prefix)
            .unwrap_or(&self.spec.name)
            .to_string();
        Box::pin(async move { self.component.call(&tool, &arguments).await })
    }

    /// From the sandbox's policy, not the guest's word: a guest that can write nowhere
    /// outlasting its call (no read-write preopen; the scratch folder is deleted after each
    /// call) and has no network is read-only, whatever it claims.
    fn annotations(&self) -> agent_tools::ToolAnnotations {
        let writes = self
            .component
            .policy()
            .preopens
            .iter()
            .any(|p| p.mode == crate::policy::Mode::ReadWrite);
        agent_tools::ToolAnnotations {
            read_only: Some(!writes),
            destructive: Some(writes),
            idempotent: None,
            open_world: Some(false),
        }
    }

    fn source(&self) -> String {
        format!(
            "wasm:{} ({})",
            self.component.name(),
            self.component.policy().summary()
        )
    }
}
