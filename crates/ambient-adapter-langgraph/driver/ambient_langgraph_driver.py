"""Runs a LangGraph graph in this process for the Ambient runner, speaking JSON lines.

Usage: python ambient_langgraph_driver.py GRAPH CHECKPOINTS

GRAPH is `path/to/file.py:attribute`, `package.module:attribute`, or the name of a graph in
the `langgraph.json` of the working directory. The attribute may be a compiled graph, a
graph builder, or a function that returns one. CHECKPOINTS is the SQLite file where the
threads' checkpoints are kept between processes (the session's volume), or `-` for none; a
file of the earlier format beside it (same name, `.pkl`) is carried over once.

Commands, one JSON object per line on stdin:
  {"op": "run", "thread_id", "input" | "command", "config", "context", "stream_mode", "subgraphs"}
  {"op": "cancel"}                 cancels the run in progress
  {"op": "state", "thread_id"}     the thread's values, next nodes and pending interrupts

Events, one JSON object per line on stdout, in the LangGraph Server's vocabulary:
  {"event": "ready", "data": {"graph"}}
  {"event": "metadata" | "updates" | "values" | "messages" | "custom" | ..., "ns": [...], "data": ...}
  {"event": "error", "data": {"error", "message"}}
  {"event": "end", "data": {"run_id", "status": "success" | "interrupted" | "error" | "cancelled", "interrupts"}}
  {"event": "state", "data": {"values", "next", "interrupts"}}
  {"event": "fatal", "data": {"error", "message"}}     the graph could not be loaded

The graph's own prints go to stderr: stdout carries only these lines.
"""

import asyncio
import dataclasses
import importlib
import importlib.util
import json
import os
import pickle
import sys
import traceback
import uuid

# Protocol lines go to a copy of the original stdout; anything else printing to stdout
# (the user's graph) lands on stderr instead.
_protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr


def _plain(value):
    """A JSON-ready form of what LangGraph streams: messages, interrupts, models."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if type(value).__name__ == "Interrupt" and hasattr(value, "value"):
        return {"value": value.value, "id": getattr(value, "id", None)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def _finite(value):
    """`value` with NaN and infinities as null: JSON has no such numbers."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def emit(event, data, ns=None):
    line = {"event": event, "data": data}
    if ns is not None:
        line["ns"] = list(ns)
    try:
        text = json.dumps(line, default=_plain, allow_nan=False)
    except ValueError:
        # A NaN or an infinity somewhere: the slow path, once the plain forms are made.
        text = json.dumps(_finite(json.loads(json.dumps(line, default=_plain))), allow_nan=False)
    _protocol.write(text + "\n")


def _load_attribute(spec):
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise ValueError(f"`{spec}` is not `module:attribute` or `file.py:attribute`")
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        sys.path.insert(0, os.path.dirname(path))
        module_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(target)
    if not hasattr(module, attribute):
        raise AttributeError(f"{target} has no attribute `{attribute}`")
    return getattr(module, attribute)


def load_graph(name):
    spec = name
    if ":" not in name:
        config_path = os.path.join(os.getcwd(), "langgraph.json")
        if not os.path.exists(config_path):
            raise FileNotFoundError(f"no graph `{name}`: there is no langgraph.json in {os.getcwd()}")
        with open(config_path, encoding="utf-8") as config_file:
            graphs = json.load(config_file).get("graphs", {})
        if name not in graphs:
            known = ", ".join(sorted(graphs)) or "none"
            raise KeyError(f"langgraph.json has no graph `{name}` (its graphs: {known})")
        spec = graphs[name] if isinstance(graphs[name], str) else graphs[name].get("path", "")
    graph = _load_attribute(spec)
    if callable(graph) and not hasattr(graph, "astream") and not hasattr(graph, "compile"):
        graph = graph()
    if hasattr(graph, "compile") and not hasattr(graph, "astream"):
        graph = graph.compile()
    if not hasattr(graph, "astream"):
        raise TypeError(f"`{spec}` is not a LangGraph graph")
    return spec, graph


class Checkpoints:
    """The threads' checkpoints in LangGraph's SQLite checkpointer, a file on the session's
    volume: each step writes what changed, so a run's cost does not grow with its thread.

    A file of the earlier format (a pickled in-memory saver, `.pkl`) is read once: the
    latest checkpoint of each of its threads, with its pending writes (the questions a
    thread waits on), is carried over, and the old file is renamed `.migrated`.
    """

    def __init__(self, path):
        self.path = None if path == "-" else path
        self.saver = None
        self._context = None

    async def open(self):
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        if not self.path:
            self.saver = InMemorySaver()
            return
        stem = os.path.splitext(self.path)[0]
        database = stem + ".sqlite" if self.path.endswith(".pkl") else self.path
        os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
        self._context = AsyncSqliteSaver.from_conn_string(database)
        self.saver = await self._context.__aenter__()
        # The earlier format's file beside it, read once.
        old = stem + ".pkl"
        if os.path.exists(old):
            await self._carry_over(old)

    async def _carry_over(self, old):
        from langgraph.checkpoint.memory import InMemorySaver

        try:
            with open(old, "rb") as kept:
                storage, writes, blobs = pickle.load(kept)
        except Exception as error:
            raise RuntimeError(f"the checkpoints in {old} (the earlier format) could not be read: {error}; move the file away to start the threads anew") from error
        memory = InMemorySaver()
        for thread, namespaces in storage.items():
            for ns, kept_checkpoints in namespaces.items():
                memory.storage[thread][ns].update(kept_checkpoints)
        for key, kept_writes in writes.items():
            memory.writes[key].update(kept_writes)
        memory.blobs.update(blobs)
        carried = 0
        for thread, namespaces in storage.items():
            for ns in namespaces:
                latest = memory.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ns}})
                if latest is None:
                    continue
                checkpoint = latest.checkpoint
                config = await self.saver.aput(
                    {"configurable": {"thread_id": thread, "checkpoint_ns": ns}},
                    checkpoint,
                    latest.metadata,
                    checkpoint.get("channel_versions", {}),
                )
                by_task = {}
                for task_id, channel, value in latest.pending_writes or []:
                    by_task.setdefault(task_id, []).append((channel, value))
                for task_id, task_writes in by_task.items():
                    await self.saver.aput_writes(config, task_writes, task_id)
                carried += 1
        os.replace(old, old + ".migrated")
        print(f"driver: carried {carried} thread checkpoint(s) over from {old}", file=sys.stderr)

    async def close(self):
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
            self._context = None


def _modes(requested):
    # The server's `messages-tuple` is the library's `messages`.
    return ["messages" if mode == "messages-tuple" else mode for mode in requested]


async def run(graph, checkpoints, command):
    """One run; whatever happens, it ends with an `end` line."""
    from langgraph.types import Command

    thread_id = command.get("thread_id") or str(uuid.uuid4())
    run_id = str(uuid.uuid4())
    status = "error"
    interrupts = []
    try:
        config = dict(command.get("config") or {})
        config["configurable"] = {**config.get("configurable", {}), "thread_id": thread_id}
        if command.get("command") is not None:
            graph_input = Command(**command["command"])
        else:
            graph_input = command.get("input")
        emit("metadata", {"run_id": run_id, "thread_id": thread_id})
        async for part in graph.astream(
            graph_input,
            config,
            context=command.get("context"),
            stream_mode=_modes(command.get("stream_mode") or ["updates"]),
            subgraphs=bool(command.get("subgraphs", True)),
            version="v2",
        ):
            kind = part["type"]
            data = part["data"]
            if kind == "messages":
                chunk, metadata = data
                data = [chunk, metadata]
            elif kind == "values" and part.get("interrupts"):
                data = {**data, "__interrupt__": list(part["interrupts"])}
            emit(kind, data, ns=[str(n) for n in part.get("ns", ())])
        state = await graph.aget_state(config)
        interrupts = list(state.interrupts)
        status = "interrupted" if interrupts else "success"
    except asyncio.CancelledError:
        status = "cancelled"
    except Exception as error:  # the graph's own failure, reported and survived
        try:
            traceback.print_exc()
        except Exception:
            pass
        emit("error", {"error": type(error).__name__, "message": str(error)})
        status = "error"
    finally:
        emit("end", {"run_id": run_id, "thread_id": thread_id, "status": status, "interrupts": interrupts})


async def state(graph, thread_id):
    snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    emit("state", {"values": snapshot.values, "next": list(snapshot.next), "interrupts": list(snapshot.interrupts)})


def schemas(graph):
    """The graph's input and output JSON schemas; null where the graph cannot say."""
    found = {"graph": None}
    for key, method in (("input_schema", "get_input_jsonschema"), ("output_schema", "get_output_jsonschema")):
        try:
            found[key] = getattr(graph, method)()
        except Exception as error:  # a schema pydantic cannot render: the runner guesses
            print(f"driver: no {key} for the graph: {error}", file=sys.stderr)
            found[key] = None
    del found["graph"]
    return found


async def main():
    if len(sys.argv) != 3:
        emit("fatal", {"error": "Usage", "message": "ambient_langgraph_driver.py GRAPH CHECKPOINTS"})
        return 2
    try:
        spec, graph = load_graph(sys.argv[1])
        checkpoints = Checkpoints(sys.argv[2])
        await checkpoints.open()
        graph = graph.copy(update={"checkpointer": checkpoints.saver})
    except Exception as error:
        traceback.print_exc()
        emit("fatal", {"error": type(error).__name__, "message": str(error)})
        return 3
    emit("ready", {"graph": spec, **schemas(graph)})
    loop = asyncio.get_running_loop()
    # Commands carry the user's messages: allow long ones.
    reader = asyncio.StreamReader(limit=64 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    current = None
    while True:
        try:
            line = await reader.readline()
        except ValueError as error:
            print(f"driver: a command longer than the limit was dropped: {error}", file=sys.stderr)
            continue
        if not line:
            break
        try:
            command = json.loads(line)
        except json.JSONDecodeError as error:
            print(f"driver: a command that is not JSON: {error}", file=sys.stderr)
            continue
        op = command.get("op")
        if op == "run":
            if current is not None and not current.done():
                await current
            current = asyncio.create_task(run(graph, checkpoints, command))
            # Let the run begin, so that a cancel read next finds it inside its `try`.
            await asyncio.sleep(0)
        elif op == "cancel":
            if current is not None and not current.done():
                current.cancel()
        elif op == "state":
            if current is not None and not current.done():
                await current
            await state(graph, command.get("thread_id", ""))
    if current is not None and not current.done():
        await current
    await checkpoints.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
