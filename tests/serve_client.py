"""A client nobody here wrote (the Python MCP SDK, mcp 2.3.0) driving `agent serve`, for
tests/e2e_serve.rs. Prints one JSON object on stdout with what it saw.

    serve_client.py SCENARIO stdio COMMAND [ARGS...]
    serve_client.py SCENARIO http URL [TOKEN]

Scenarios:
    run         list tools and prompts, call run_task on TASK (env SERVE_TASK) with progress,
                read the run's trace resource
    cancel      start a long run_task, cancel it after its first progress notification, then
                call run_task again on the same connection
    concurrent  N (env SERVE_N) run_task calls at once on one connection
    bench       (docs/BENCHMARKS.md) run_task on TASK SERVE_N times, then TOOL (env
                SERVE_TOOL, default text__count) on strawberry/r 500 times; latencies in ms
    elicit      (elicitation declared; SERVE_MODE "legacy", the default: the initialize
                handshake, where the server sends elicitation requests; "auto": 2026-07-28,
                where it answers input_required and the SDK retries) run_task on TASK,
                answering each permission question with the next of SERVE_ANSWERS (a JSON
                list of form contents, or "decline"); the questions asked and the run's
                trace events
"""
import asyncio
import json
import os
import sys

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def connect(transport, rest, **options):
    if transport == "stdio":
        return Client(StdioServerParameters(command=rest[0], args=rest[1:]), read_timeout_seconds=600, **options)
    url = rest[0]
    headers = {"Authorization": f"Bearer {rest[1]}"} if len(rest) > 1 else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(600.0))
    return Client(streamable_http_client(url, http_client=http), read_timeout_seconds=600, **options)


def result_json(r):
    text = "".join(getattr(c, "text", "") for c in r.content)
    return {"is_error": bool(r.is_error), "text": text, "structured": r.structured_content}


async def run(c, out):
    out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
    out["prompts"] = sorted(p.name for p in (await c.list_prompts()).prompts)
    progress = []

    async def on_progress(p, total, message):
        progress.append([p, total, message])

    r = await c.call_tool("run_task", {"task": os.environ["SERVE_TASK"]}, progress_callback=on_progress)
    out["result"] = result_json(r)
    out["progress"] = progress
    trace = (r.structured_content or {}).get("trace")
    if trace:
        res = await c.read_resource(trace)
        out["trace_lines"] = sum(len(getattr(x, "text", "").splitlines()) for x in res.contents)


async def cancel(c, out):
    first = anyio.Event()
    progress = []

    async def on_progress(p, total, message):
        progress.append([p, total, message])
        first.set()

    long_task = "---\nmax_steps: 40\ntool_choice: none\n---\nWrite a very long story about the sea, one chapter per step."
    async with anyio.create_task_group() as tg:

        async def call():
            await c.call_tool("run_task", {"task": long_task}, progress_callback=on_progress)
            out["long_run_finished"] = True

        tg.start_soon(call)
        with anyio.fail_after(300):
            await first.wait()
        tg.cancel_scope.cancel()
    out["progress_before_cancel"] = progress
    r = await c.call_tool("run_task", {"task": os.environ["SERVE_TASK"]})
    out["after"] = result_json(r)


async def concurrent(c, out):
    n = int(os.environ.get("SERVE_N", "8"))
    results = [None] * n
    messages = []

    async def on_progress(p, total, message):
        messages.append(message)

    async def one(i):
        r = await c.call_tool("run_task", {"task": os.environ["SERVE_TASK"]}, progress_callback=on_progress)
        results[i] = result_json(r)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    out["results"] = results
    out["progress_messages"] = messages


async def bench(c, out):
    import time
    runs = []
    for _ in range(int(os.environ.get("SERVE_N", "3"))):
        t = time.perf_counter()
        r = await c.call_tool("run_task", {"task": os.environ["SERVE_TASK"]})
        runs.append((time.perf_counter() - t) * 1000.0)
        assert not r.is_error, r
    tool = os.environ.get("SERVE_TOOL", "text__count")
    calls = []
    for i in range(520):
        t = time.perf_counter()
        r = await c.call_tool(tool, {"text": "strawberry", "find": "r"})
        if i >= 20:
            calls.append((time.perf_counter() - t) * 1000.0)
        assert not r.is_error, r
    out["run_task_ms"] = runs
    out["tool_ms"] = calls


QUESTIONS = []


async def answer_question(context, params):
    """The elicitation callback: the next of SERVE_ANSWERS."""
    from mcp.types import ElicitResult

    answers = json.loads(os.environ.get("SERVE_ANSWERS", "[]"))
    answer = answers[len(QUESTIONS)] if len(QUESTIONS) < len(answers) else "decline"
    QUESTIONS.append({"message": params.message, "schema": params.requested_schema})
    if answer == "decline":
        return ElicitResult(action="decline")
    return ElicitResult(action="accept", content=answer)


async def elicit(c, out):
    r = await c.call_tool("run_task", {"task": os.environ["SERVE_TASK"]})
    out["result"] = result_json(r)
    out["questions"] = QUESTIONS
    trace = (r.structured_content or {}).get("trace")
    res = await c.read_resource(trace)
    text = "".join(getattr(x, "text", "") for x in res.contents)
    out["events"] = [json.loads(l) for l in text.splitlines() if l.strip()]


async def main():
    scenario, transport, *rest = sys.argv[1:]
    out = {}
    options = {}
    if scenario == "elicit":
        options = {"mode": os.environ.get("SERVE_MODE", "legacy"), "elicitation_callback": answer_question}
    async with connect(transport, rest, **options) as c:
        out["protocol"] = str(c.protocol_version)
        await {"run": run, "cancel": cancel, "concurrent": concurrent, "bench": bench, "elicit": elicit}[scenario](c, out)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
