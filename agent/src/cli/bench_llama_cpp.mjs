// Decode tokens/s of llama.cpp (node-llama-cpp) for `agent bench decode`:
//   node bench_llama_cpp.mjs MODEL.gguf TOKENS REPEATS   (env LLAMA_DIR: install dir, PROMPT)
// Greedy, 2 threads like the machine has, the same rendered prompt as the other engines.
import path from "node:path";
import os from "node:os";

const [modelPath, tokensArg, repeatsArg] = process.argv.slice(2);
const lib = await import(path.join(process.env.LLAMA_DIR, "node_modules/node-llama-cpp/dist/index.js"));
const llama = await lib.getLlama({ gpu: false, build: "never" });
const model = await llama.loadModel({ modelPath });
const maxTokens = Number(tokensArg);
const rates = [];
for (let r = 0; r < Number(repeatsArg); r++) {
  const context = await model.createContext({ contextSize: 2048, threads: os.availableParallelism() });
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
rates.sort((a, b) => a - b);
console.log(JSON.stringify({ decode_tok_s: rates[Math.floor(rates.length / 2)], rates }));
