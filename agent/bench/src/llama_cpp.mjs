// Load time and decode tokens/s of llama.cpp (node-llama-cpp) for `agent-bench decode|gguf`:
//   node bench_llama_cpp.mjs MODEL.gguf TOKENS REPEATS   (env LLAMA_DIR: install dir, PROMPT)
// Greedy, the same rendered prompt as the other engines. llama.cpp is measured with 1 thread
// and with every core, and its better figure is reported: on 2 cores one thread is often faster.
// Load time: loading the file until a context is ready to take the prompt, median of REPEATS.
import path from "node:path";
import os from "node:os";

const [modelPath, tokensArg, repeatsArg] = process.argv.slice(2);
const lib = await import(path.join(process.env.LLAMA_DIR, "node_modules/node-llama-cpp/dist/index.js"));
const llama = await lib.getLlama({ gpu: false, build: "never" });
const maxTokens = Number(tokensArg);
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const loads = [];
for (let r = 0; r < Number(repeatsArg); r++) {
  const start = performance.now();
  const m = await llama.loadModel({ modelPath });
  const context = await m.createContext({ contextSize: 2048 });
  loads.push((performance.now() - start) / 1000);
  await context.dispose();
  await m.dispose();
}
const model = await llama.loadModel({ modelPath });
const byThreads = {};
for (const threads of [...new Set([1, os.availableParallelism()])]) {
  const rates = [];
  for (let r = 0; r < Number(repeatsArg); r++) {
    const context = await model.createContext({ contextSize: 2048, threads });
    const seq = context.getSequence();
    const input = model.tokenize(process.env.PROMPT, true);
    let n = 0, first = 0;
    for await (const tok of seq.evaluate(input, { temperature: 0 })) {
      n++;
      if (n === 1) first = performance.now();
      if (model.isEogToken(tok) || n >= maxTokens) break;
    }
    const end = performance.now();
    rates.push((n - 1) / ((end - first) / 1000));
    await context.dispose();
  }
  byThreads[threads] = median(rates);
}
const best = Math.max(...Object.values(byThreads));
console.log(JSON.stringify({ decode_tok_s: best, by_threads: byThreads, load_s: median(loads) }));
