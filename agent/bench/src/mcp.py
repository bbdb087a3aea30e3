"""The Python MCP SDK's side of `agent-bench mcp`: N trivial calls to a stdio server, each
timed; prints the latencies in milliseconds as JSON on stdout."""
import asyncio
import json
import sys
import time

from mcp import Client, StdioServerParameters


async def main(command, args, calls, warmup):
    async with Client(StdioServerParameters(command=command, args=args), read_timeout_seconds=30) as c:
        for _ in range(warmup):
            await c.call_tool("echo", {"message": "warm"})
        out = []
        for i in range(calls):
            t = time.perf_counter()
            r = await c.call_tool("echo", {"message": f"ping {i}"})
            out.append((time.perf_counter() - t) * 1000.0)
            if r.is_error:
                raise SystemExit(f"call failed: {r}")
        print(json.dumps({"protocol": str(c.protocol_version), "latencies_ms": out}))


if __name__ == "__main__":
    calls, warmup, command, *args = sys.argv[1:]
    asyncio.run(main(command, args, int(calls), int(warmup)))
