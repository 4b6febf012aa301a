"""A real MCP server for the tools crate's tests, written with the `mcp` package (2.x).

    python3 mcp_server.py stdio [--page-size N]
    python3 mcp_server.py http [--page-size N] [--token TOKEN]

Over HTTP it listens on 127.0.0.1 at a port the system picks and prints
`listening on http://127.0.0.1:PORT/mcp` once the socket accepts connections; with
`--token` every request must carry `Authorization: Bearer TOKEN`.
"""

import argparse
import os
import socket
import sys

import anyio
from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError

# A 1x1 transparent PNG.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)

LONG = "a.tool.name.long.enough.to.be.cut.at.sixty.four.characters.by.botarmy."


class PagedServer(MCPServer):
    """Lists its tools `page_size` at a time, so clients must follow `nextCursor`."""

    def __init__(self, page_size: int, **kwargs):
        self.page_size = page_size
        super().__init__(**kwargs)

    async def _handle_list_tools(self, ctx, params):
        result = await super()._handle_list_tools(ctx, params)
        if self.page_size <= 0:
            return result
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + self.page_size
        page = result.model_copy()
        page.tools = result.tools[start:end]
        page.next_cursor = str(end) if end < len(result.tools) else None
        return page


def build(page_size: int) -> MCPServer:
    server = PagedServer(page_size, name="botarmy-test", log_level="WARNING")

    @server.tool(description="Adds two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Returns the text it is given.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Fails with the given message.")
    def fail(message: str) -> str:
        raise ToolError(message)

    @server.tool(description="Answers with a JSON-RPC error instead of a result.")
    def protocol_error() -> str:
        raise MCPError(-32602, "the server refuses this call")

    @server.tool(description="Waits the given number of seconds, then answers.")
    async def slow(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "done"

    @server.tool(description="Returns a 1x1 PNG.")
    def pixel() -> Image:
        return Image(data=PIXEL, format="png")

    @server.tool(name="get.env", description="The value of an environment variable.")
    def get_env(name: str) -> str:
        return os.environ.get(name, "<unset>")

    @server.tool(description="The names of the server's environment variables, one a line.")
    def env() -> str:
        return "\n".join(sorted(os.environ))

    @server.tool(description="The server's process id.")
    def pid() -> int:
        return os.getpid()

    @server.tool(description="Ends the server process at once.")
    def crash() -> str:
        os._exit(3)

    @server.tool(name=LONG + "one", description="A tool whose name is too long.")
    def long_one() -> str:
        return "one"

    @server.tool(name=LONG + "two", description="Another tool whose name is too long.")
    def long_two() -> str:
        return "two"

    return server


def require_token(app, token: str):
    expected = f"Bearer {token}".encode()

    async def guarded(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"missing or wrong token"})
            return
        await app(scope, receive, send)

    return guarded


async def serve_http(server: MCPServer, token: str | None) -> None:
    import uvicorn

    app = server.streamable_http_app()
    if token is not None:
        app = require_token(app, token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    # The socket already queues connections, so the port is usable from here on.
    print(f"listening on http://127.0.0.1:{port}/mcp", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--page-size", type=int, default=0)
    parser.add_argument("--token")
    args = parser.parse_args()
    server = build(args.page_size)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        anyio.run(serve_http, server, args.token)


if __name__ == "__main__":
    sys.exit(main())
