"""The server the MCP conformance runner's server scenarios expect
(`@modelcontextprotocol/conformance`: the tools, resources and prompts
each scenario names, written from the scenarios' own descriptions), on
the Python `mcp` SDK's MCPServer, on a free loopback port, printing
`READY <url>` once it listens. The e2e suite puts it behind the gateway
and runs the conformance runner against the gateway.

    python mcp_conformance_server.py NAME"""

import asyncio
import base64
import json
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.types import (
    AudioContent,
    BlobResourceContents,
    Completion,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)

# A 1x1 red PNG and a tiny silent WAV.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082")).decode()
WAV = base64.b64encode(b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00D\xac\x00\x00"
                       b"\x88X\x01\x00\x02\x00\x10\x00data\x00\x00\x00\x00").decode()

server = MCPServer(sys.argv[1] if len(sys.argv) > 1 else "conformance")


@server.tool()
def test_simple_text() -> list:
    """Returns simple text."""
    return [TextContent(type="text", text="This is a simple text response for testing.")]


@server.tool()
def test_image_content() -> list:
    """Returns an image."""
    return [ImageContent(type="image", data=PNG, mimeType="image/png")]


@server.tool()
def test_audio_content() -> list:
    """Returns audio."""
    return [AudioContent(type="audio", data=WAV, mimeType="audio/wav")]


@server.tool()
def test_embedded_resource() -> list:
    """Returns an embedded resource."""
    return [EmbeddedResource(type="resource", resource=TextResourceContents(
        uri="test://embedded-resource", mimeType="text/plain", text="This is an embedded resource content."))]


@server.tool()
def test_multiple_content_types() -> list:
    """Returns text, an image and a resource."""
    return [TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=PNG, mimeType="image/png"),
            EmbeddedResource(type="resource", resource=TextResourceContents(
                uri="test://mixed-content-resource", mimeType="application/json",
                text=json.dumps({"test": "data", "value": 123})))]


@server.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Logs three messages while it runs."""
    await ctx.info("Tool execution started")
    await asyncio.sleep(0.05)
    await ctx.info("Tool processing data")
    await asyncio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Logging tool completed"


@server.tool()
def test_error_handling() -> str:
    """Always fails."""
    raise RuntimeError("This tool intentionally returns an error for testing")


@server.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress 0, 50, 100 of 100."""
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100)
        await asyncio.sleep(0.05)
    return "Progress tool completed"


@server.tool()
async def test_sampling(prompt: str, ctx: Context) -> str:
    """Asks the client's model (on this request's stream, where a proxy sees it)."""
    from mcp.types import SamplingMessage
    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=100,
        related_request_id=ctx.request_id)
    return f"LLM response: {getattr(result.content, 'text', result.content)}"


@server.tool()
async def test_elicitation(message: str, ctx: Context) -> str:
    """Asks the client's user."""
    result = await ctx.session.elicit_form(message, {
        "type": "object", "required": ["username", "email"],
        "properties": {"username": {"type": "string", "description": "User's response"},
                       "email": {"type": "string", "description": "User's email address"}}},
        related_request_id=ctx.request_id)
    return f"User response: action={result.action}, content={result.content}"


@server.resource("test://static-text", mime_type="text/plain")
def static_text() -> str:
    """A static text resource."""
    return "This is the content of the static text resource."


@server.resource("test://static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A static binary resource."""
    return base64.b64decode(PNG)


@server.resource("test://template/{id}/data", mime_type="application/json")
def template(id: str) -> str:
    """Data for an id."""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"}, separators=(",", ":"))


@server.prompt()
def test_simple_prompt() -> str:
    """A simple prompt."""
    return "This is a simple prompt for testing."


@server.prompt()
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt with two arguments."""
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@server.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list:
    """A prompt embedding a resource."""
    return [UserMessage(content=EmbeddedResource(type="resource", resource=TextResourceContents(
                uri=resourceUri, mimeType="text/plain", text="Embedded resource content for testing."))),
            UserMessage(content=TextContent(type="text", text="Please process the embedded resource above."))]


@server.prompt()
def test_prompt_with_image() -> list:
    """A prompt with an image."""
    return [UserMessage(content=ImageContent(type="image", data=PNG, mimeType="image/png")),
            UserMessage(content=TextContent(type="text", text="Please analyze the image above."))]


@server.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Asks the client's user, with a default for every field."""
    result = await ctx.session.elicit_form("Defaults", {"type": "object", "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True}}}, related_request_id=ctx.request_id)
    return f"Elicitation completed: action={result.action}, content={result.content}"


@server.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Asks the client's user to choose, in every enum form."""
    options = ["option1", "option2", "option3"]
    result = await ctx.session.elicit_form("Enums", {"type": "object", "properties": {
        "untitledSingle": {"type": "string", "enum": options},
        "titledSingle": {"type": "string", "oneOf": [
            {"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"}]},
        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                       "enumNames": ["Option One", "Option Two", "Option Three"]},
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": options}},
        "titledMulti": {"type": "array", "items": {"anyOf": [
            {"const": "value1", "title": "First Choice"}, {"const": "value2", "title": "Second Choice"}]}}}},
        related_request_id=ctx.request_id)
    return f"Elicitation completed: action={result.action}, content={result.content}"


async def empty(ctx, params):
    return EmptyResult()


server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, empty)
server._lowlevel_server.add_request_handler("resources/subscribe", SubscribeRequestParams, empty)
server._lowlevel_server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, empty)


@server.completion()
async def complete(ref, argument, context):
    return Completion(values=[v for v in ("paris", "park", "party") if v.startswith(argument.value)])


async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = server.streamable_http_app(host="127.0.0.1")
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock.listen(128)
    print(f"READY http://127.0.0.1:{port}/mcp", flush=True)
    await uv.serve(sockets=[sock])


asyncio.run(main())
