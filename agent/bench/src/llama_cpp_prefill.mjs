// Prefill seconds of llama.cpp (node-llama-cpp) for `agent-bench prefill`:
//   node bench_llama_cpp_prefill.mjs MODEL.gguf THREADS REPEATS   (env LLAMA_DIR; PROMPTS: a JSON array)
// Each prompt is evaluated in a fresh context (nothing cached), REPEATS times after one
// warm-up; the median is printed with llama.cpp's token count of the prompt.
import path from "node:path";

const [modelPath, threadsArg, repeatsArg] = process.argv.slice(2);
const lib = await import(path.join(process.env.LLAMA_DIR, "node_modules/node-llama-cpp/dist/index.js"));
const llama = await lib.getLlama({ gpu: false, build: "never" });
const model = await llama.loadModel({ modelPath });
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const prompts = JSON.parse(process.env.PROMPTS);
const out = [];
let batchSize = null;
for (const text of prompts) {
  // Special tokens in the text (a rendered chat prompt) are parsed as such, as agent does.
  const tokens = model.tokenize(text, true);
  const secs = [];
  for (let r = 0; r <= Number(repeatsArg); r++) {
    const context = await model.createContext({
      contextSize: tokens.length + 64,
      threads: Number(threadsArg),
    });
    batchSize = context.batchSize;
    const seq = context.getSequence();
    const start = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(tokens);
    if (r > 0) secs.push((performance.now() - start) / 1000);
    await context.dispose();
  }
  out.push({ tokens: tokens.length, secs: median(secs) });
}
console.log(JSON.stringify({ prompts: out, batch_size: batchSize }));
