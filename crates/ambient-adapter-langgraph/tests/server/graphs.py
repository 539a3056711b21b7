"""Test graphs for the LangGraph adapter: no LLM, deterministic, each one a scenario."""

import asyncio
import operator
import re
from typing import Annotated, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.outputs import ChatGenerationChunk
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from typing_extensions import TypedDict as ExtTypedDict


def last_text(state: MessagesState) -> str:
    content = state["messages"][-1].content
    return content if isinstance(content, str) else str(content)


def chatbot(state: MessagesState):
    # A fresh model per call: the fake model streams its scripted reply word by word.
    reply = f"You said {last_text(state)}, streamed word by word."
    model = GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))
    return {"messages": [model.invoke(state["messages"])]}


chat = StateGraph(MessagesState).add_node("chatbot", chatbot).add_edge(START, "chatbot").add_edge("chatbot", END).compile()


def agent(state: MessagesState):
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        return {"messages": [AIMessage(content=f"The weather tool says: {last.content}.")]}
    call = {"name": "weather", "args": {"city": last_text(state)}, "id": "call_weather_1", "type": "tool_call"}
    return {"messages": [AIMessage(content="", tool_calls=[call])]}


def run_tools(state: MessagesState):
    call = state["messages"][-1].tool_calls[0]
    return {"messages": [ToolMessage(content=f"sunny in {call['args']['city']}", tool_call_id=call["id"], name=call["name"])]}


def route(state: MessagesState):
    return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END


def weather_graph(agent_node):
    """The agent asks the weather tool, then answers with what it said."""
    return (
        StateGraph(MessagesState)
        .add_node("agent", agent_node)
        .add_node("tools", run_tools)
        .add_edge(START, "agent")
        .add_conditional_edges("agent", route, ["tools", END])
        .add_edge("tools", "agent")
        .compile()
    )


tools = weather_graph(agent)


class CountingChatModel(GenericFakeChatModel):
    """The fake model, named, reporting its call's tokens (a word each) on its last chunk,
    as a provider's model does."""

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        reply = next(self.messages)
        text = reply.content if isinstance(reply, AIMessage) else reply
        words_in = sum(len(str(m.content).split()) for m in messages)
        tokens = re.split(r"(\s)", text)
        for index, token in enumerate(tokens):
            chunk = AIMessageChunk(content=token)
            if index == len(tokens) - 1:
                chunk.chunk_position = "last"
                chunk.usage_metadata = {
                    "input_tokens": words_in,
                    "output_tokens": len(text.split()),
                    "total_tokens": words_in + len(text.split()),
                }
            generation = ChatGenerationChunk(message=chunk)
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=generation)
            yield generation

    def _get_ls_params(self, stop=None, **kwargs):
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "fake"
        params["ls_model_name"] = "fake-weather-1"
        return params


def weather_agent(state: MessagesState):
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        model = CountingChatModel(messages=iter([f"The weather tool says: {last.content}."]))
        return {"messages": [model.invoke(state["messages"])]}
    return agent(state)


traced = weather_graph(weather_agent)


class Steps(TypedDict, total=False):
    request: str
    items: Annotated[list, operator.add]


class Owner(TypedDict, total=False):
    owner: str


def step(name):
    def run(state: Steps, runtime: Runtime[Owner]):
        owner = (runtime.context or {}).get("owner", "nobody")
        return {"items": [f"{name} of {state.get('request', '')} for {owner}"]}

    return run


linear = (
    StateGraph(Steps, context_schema=Owner)
    .add_node("step1", step("step1"))
    .add_node("step2", step("step2"))
    .add_node("step3", step("step3"))
    .add_edge(START, "step1")
    .add_edge("step1", "step2")
    .add_edge("step2", "step3")
    .add_edge("step3", END)
    .compile()
)


def boom(state: Steps):
    raise ValueError("boom: deliberate failure in node 'boom'")


failing = StateGraph(Steps).add_node("prepare", step("prepare")).add_node("boom", boom).add_edge(START, "prepare").add_edge("prepare", "boom").add_edge("boom", END).compile()


def progress(state: Steps):
    write = get_stream_writer()
    for i in range(1, 4):
        write({"progress": i, "of": 3})
    return {"items": ["done"]}


custom = StateGraph(Steps).add_node("progress", progress).add_edge(START, "progress").add_edge("progress", END).compile()


class Ticks(TypedDict, total=False):
    ticks: int
    delay: float


async def ticker(state: Steps, runtime: Runtime[Ticks]):
    context = runtime.context or {}
    write = get_stream_writer()
    for i in range(1, int(context.get("ticks", 100)) + 1):
        write({"tick": i})
        await asyncio.sleep(float(context.get("delay", 0.1)))
    return {"items": ["ticked"]}


slow = StateGraph(Steps, context_schema=Ticks).add_node("ticker", ticker).add_edge(START, "ticker").add_edge("ticker", END).compile()


def inner_work(state: Steps):
    get_stream_writer()({"inner": "working"})
    return {"items": ["inner done"]}


inner = StateGraph(Steps).add_node("inner_work", inner_work).add_edge(START, "inner_work").add_edge("inner_work", END).compile()

parent = (
    StateGraph(Steps)
    .add_node("before", step("before"))
    .add_node("inner", inner)
    .add_edge(START, "before")
    .add_edge("before", "inner")
    .add_edge("inner", END)
    .compile()
)


class Request(TypedDict, total=False):
    request: str
    note: str
    approved: object


def prepare(state: Request):
    return {"note": f"prepared {state.get('request', '')}"}


def ask_human(state: Request):
    answer = interrupt({"question": "Approve this request?", "request": state.get("request", "")})
    return {"approved": answer}


hitl = (
    StateGraph(Request)
    .add_node("prepare", prepare)
    .add_node("ask_human", ask_human)
    .add_edge(START, "prepare")
    .add_edge("prepare", "ask_human")
    .add_edge("ask_human", END)
    .compile()
)


class Pair(TypedDict, total=False):
    request: str
    x: object
    y: object


def ask_x(state: Pair):
    return {"x": interrupt({"question": "Value for x?"})}


def ask_y(state: Pair):
    return {"y": interrupt({"question": "Value for y?"})}


multi = (
    StateGraph(Pair)
    .add_node("ask_x", ask_x)
    .add_node("ask_y", ask_y)
    .add_edge(START, "ask_x")
    .add_edge(START, "ask_y")
    .add_edge("ask_x", END)
    .add_edge("ask_y", END)
    .compile()
)


# A graph without messages: its input is a request, its output a plan and a result. Its
# schemas use typing_extensions' TypedDict, which pydantic can render on Python 3.11.
class PlanInput(ExtTypedDict):
    request: str


class PlanOutput(ExtTypedDict):
    plan: str
    result: str


class PlanState(PlanInput, PlanOutput, total=False):
    pass


def make_plan(state: PlanState):
    return {"plan": f"1. read {state['request']} 2. answer it"}


def carry_out(state: PlanState):
    return {"result": f"done: {state['request']}"}


planner = (
    StateGraph(PlanState, input_schema=PlanInput, output_schema=PlanOutput)
    .add_node("make_plan", make_plan)
    .add_node("carry_out", carry_out)
    .add_edge(START, "make_plan")
    .add_edge("make_plan", "carry_out")
    .add_edge("carry_out", END)
    .compile()
)


# A graph whose input has no place for a prompt: two numbers.
class Sum(ExtTypedDict, total=False):
    a: int
    b: int
    total: int


def add(state: Sum):
    return {"total": state.get("a", 0) + state.get("b", 0)}


sums = StateGraph(Sum).add_node("add", add).add_edge(START, "add").add_edge("add", END).compile()
