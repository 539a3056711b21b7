"""Test graphs for the LangGraph adapter: no LLM, deterministic."""

from typing import TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt


def chatbot(state: MessagesState):
    # A fresh model per call: the fake model consumes its scripted replies.
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Hello from the fake model, streamed word by word.")]))
    return {"messages": [model.invoke(state["messages"])]}


chat = StateGraph(MessagesState).add_node("chatbot", chatbot).add_edge(START, "chatbot").add_edge("chatbot", END).compile()


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
