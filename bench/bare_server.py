"""A bare grpc.aio LLMService for comparison: no validation, routing or conversion.

It answers with the same message sizes as the benchmark's upstream: Chat with the last
message's first `4 * max_tokens` characters, StreamChat with `max_tokens` chunks of 4
characters, Embed with one fixed vector of `dimensions` floats per input. The least any
gRPC server on this machine can do for the same messages.
"""

from __future__ import annotations

import argparse
import asyncio
import random

import grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t

DEFAULT_TOKENS = 16


class BareService(llm_service_pb2_grpc.LLMServiceServicer):
    def __init__(self) -> None:
        self.vectors: dict[int, list[float]] = {}

    async def Chat(self, request, context):
        tokens = request.max_tokens if request.HasField("max_tokens") else DEFAULT_TOKENS
        return pb.CompletionResponse(
            content=request.messages[-1].content[: 4 * tokens], role=t.ROLE_ASSISTANT,
            stop_reason=t.STOP_REASON_END_TURN, model=request.model, provider="bare",
        )

    async def StreamChat(self, request, context):
        tokens = request.max_tokens if request.HasField("max_tokens") else DEFAULT_TOKENS
        text = request.messages[-1].content
        for n in range(tokens):
            await context.write(pb.StreamChunk(content=text[4 * n : 4 * n + 4]))
        await context.write(pb.StreamChunk(final=True, stop_reason=t.STOP_REASON_END_TURN))

    async def Embed(self, request, context):
        dimensions = request.dimensions if request.HasField("dimensions") else 1536
        if dimensions not in self.vectors:
            rng = random.Random(dimensions)
            self.vectors[dimensions] = [rng.uniform(-0.08, 0.08) for _ in range(dimensions)]
        values = self.vectors[dimensions]
        return pb.EmbedResponse(
            embeddings=[pb.Embedding(index=i, values=values) for i in range(len(request.inputs))],
            model=request.model, provider="bare",
        )


async def main(address: str) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
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
    except ImportError:
        asyncio.run(main(args.address))
    else:
        uvloop.run(main(args.address))
