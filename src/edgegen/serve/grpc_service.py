"""KServe v2 over gRPC: ``inference.GRPCInferenceService`` on ``app.Endpoints``.

The messages and the service stub are the ones that ship in ``tritonclient`` (its
``tritonclient.grpc.service_pb2`` / ``service_pb2_grpc``, generated from Triton's and KServe's
``grpc_service.proto``): no proto is written or compiled here. Served: ServerLive, ServerReady,
ModelReady, ServerMetadata, ModelMetadata and ModelInfer; the rest answer UNIMPLEMENTED.

ModelInfer turns the message into the JSON form of a v2 request plus its binary tensor data
(``raw_input_contents``, or the typed ``contents``) and checks it with the very rules of the
HTTP route (``protocol.parse_doc``); the image goes back in ``raw_output_contents``. Errors are
gRPC status codes with the same messages: INVALID_ARGUMENT (HTTP 400), NOT_FOUND (404),
UNAVAILABLE (503, draining or a full queue; ``retry-after`` in the trailing metadata),
INTERNAL (500). Runs on the worker's own event loop (``grpc.aio``), so it shares the worker's
batcher with HTTP.
"""

from __future__ import annotations

from typing import Any

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from edgegen.core.errors import RuntimeInputError
from edgegen.serve.app import Endpoints
from edgegen.serve.protocol import (
    PLATFORM,
    VERSION,
    InferRequest,
    ProtocolError,
    guard_parameters,
    output_image,
    parse_doc,
    server_metadata,
)

CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
         405: grpc.StatusCode.UNIMPLEMENTED, 503: grpc.StatusCode.UNAVAILABLE,
         500: grpc.StatusCode.INTERNAL}
CONTENTS = {"FP32": "fp32_contents", "INT64": "int64_contents", "UINT64": "uint64_contents",
            "INT32": "int_contents", "UINT8": "uint_contents", "BOOL": "bool_contents"}


def _value(p: Any) -> Any:
    """An ``InferParameter``'s value, whichever of its fields is set."""
    which = p.WhichOneof("parameter_choice")
    return None if which is None else getattr(p, which)


def request_doc(request: Any) -> tuple[dict[str, Any], bytes]:
    """A ``ModelInferRequest`` as (v2 JSON request, binary tensor data)."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(f"raw_input_contents has {len(raw)} entries for "
                            f"{len(request.inputs)} inputs; give one per input, in order")
    inputs = []
    for i, t in enumerate(request.inputs):
        entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        if raw:
            entry["parameters"] = {"binary_data_size": len(raw[i])}
        else:
            field = CONTENTS.get(t.datatype)
            entry["data"] = list(getattr(t.contents, field)) if field else []
        inputs.append(entry)
    doc: dict[str, Any] = {"inputs": inputs}
    if request.id:
        doc["id"] = request.id
    if request.parameters:
        doc["parameters"] = {k: _value(v) for k, v in request.parameters.items()}
    if request.outputs:
        doc["outputs"] = [{"name": o.name, "parameters": {k: _value(v) for k, v in
                                                          o.parameters.items()}}
                          for o in request.outputs]
    return doc, b"".join(raw)


def infer_response(endpoints: Endpoints, req: InferRequest, done: Any) -> Any:
    images = output_image(req, done)
    resp = pb.ModelInferResponse(model_name=endpoints.model.name, model_version=VERSION,
                                 id=req.id or "")
    resp.outputs.add(name="image", datatype=req.datatype, shape=list(images.shape))
    resp.raw_output_contents.append(images.tobytes())
    for k, v in guard_parameters(done).items():
        resp.parameters[k].int64_param = v
    return resp


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The servicer; ``endpoints`` is the worker's (its model, batcher, draining flag)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.ep = endpoints

    async def _fail(self, context: Any, status: int, message: str) -> None:
        meta = (("retry-after", str(self.ep.retry_after_s)),) if status == 503 else ()
        await context.abort(CODES.get(status, grpc.StatusCode.INTERNAL), message,
                            trailing_metadata=meta)

    def _check_model(self, name: str, version: str) -> None:
        if name != self.ep.model.name:
            raise ProtocolError(f"unknown model {name!r}; this server serves "
                                f"{self.ep.model.name!r}", 404)
        if version not in ("", VERSION):
            raise ProtocolError(f"model {name!r} has version {VERSION} only", 404)

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ServerReadyResponse(ready=not self.ep.draining)

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            self._check_model(request.name, request.version)
        except ProtocolError as exc:
            await self._fail(context, exc.status, str(exc))
        return pb.ModelReadyResponse(ready=not self.ep.draining)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        meta = server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"],
                                         extensions=meta["extensions"])

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            self._check_model(request.name, request.version)
        except ProtocolError as exc:
            await self._fail(context, exc.status, str(exc))
        m = self.ep.model
        return pb.ModelMetadataResponse(
            name=m.name, versions=[VERSION], platform=PLATFORM,
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in m.inputs],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in m.outputs])

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        ep = self.ep
        ep.inflight += 1
        try:
            self._check_model(request.model_name, request.model_version)
            if ep.draining:
                raise ProtocolError("the server is shutting down (draining in-flight "
                                    "requests); retry on another replica", 503)
            doc, binary = request_doc(request)
            req = parse_doc(doc, binary, ep.model)
            done = await ep.infer(req.work)
            return infer_response(ep, req, done)
        except ProtocolError as exc:
            status, message = exc.status, str(exc)
        except RuntimeInputError as exc:
            status, message = 400, str(exc)
        except Exception as exc:  # noqa: BLE001 - the model failed: INTERNAL, with the reason
            status, message = 500, f"{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            ep.inflight -= 1
            ep.served += 1
        await self._fail(context, status, message)


def add_service(server: Any, endpoints: Endpoints) -> InferenceService:
    service = InferenceService(endpoints)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(service, server)
    return service
