"""A bare grpc.aio LLMService for comparison: no validation, routing or conversion.

It answers Chat with a fixed echo and StreamChat with fixed-size chunks, the least any
gRPC server on this machine can do for the same messages.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t


class BareService(llm_service_pb2_grpc.LLMServiceServicer):
    async def Chat(self, request, context):
        return pb.CompletionResponse(
            content=request.messages[-1].content, role=t.ROLE_ASSISTANT, stop_reason=t.STOP_REASON_END_TURN,
            model=request.model, provider="bare",
        )

    async def StreamChat(self, request, context):
        text = request.messages[-1].content
        for start in range(0, len(text), 4):
            await context.write(pb.StreamChunk(content=text[start : start + 4]))
        await context.write(pb.StreamChunk(final=True, stop_reason=t.STOP_REASON_END_TURN))


async def main(address: str) -> None:
    server = grpc.aio.server()
    llm_service_pb2_grpc.add_LLMServiceServicer_to_server(BareService(), server)
    port = server.add_insecure_port(address)
    await server.start()
    print(f"bare: listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", default="127.0.0.1:0")
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.run(main(args.address))
    except ImportError:
        asyncio.run(main(args.address))
