"""The upstream's logic: prompt index, answers, the offline judge, tokens, faults and request
validation."""

from routeiq_upstream.core.answers import Answer, Answerer, AnswerKind
from routeiq_upstream.core.catalog import ModelCatalog
from routeiq_upstream.core.faults import FaultPolicy
from routeiq_upstream.core.index import PromptIndex, Record, normalise
from routeiq_upstream.core.judging import OfflineJudge
from routeiq_upstream.core.requests import ChatRequest, parse_chat_request
from routeiq_upstream.core.tokens import TokenCounter
from routeiq_upstream.core.upstream import Completion, OfflineUpstream, Usage, split_stream

__all__ = [
    "Answer",
    "AnswerKind",
    "Answerer",
    "ChatRequest",
    "Completion",
    "FaultPolicy",
    "ModelCatalog",
    "OfflineJudge",
    "OfflineUpstream",
    "PromptIndex",
    "Record",
    "TokenCounter",
    "Usage",
    "normalise",
    "parse_chat_request",
    "split_stream",
]
