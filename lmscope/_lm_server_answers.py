"""The stand-in LM's answers: values that read sensibly in a RAG demo, rendered in the adapter's format.

No model runs here. Values come from the prompt itself: a search query is the question's content words,
an answer is the context passage that shares the most words with the question, and the reasoning says
which passage that was and why. Callers pin any field with `model_answers={field: text}`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._lm_server_prompt import OutputField, PromptRequest, as_passages

# Question words and glue words: they would make every passage look relevant.
_STOPWORDS = frozenset(
    ["a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "before", "between", "but", "by", "can", "could", "did", "do", "does", "down", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "not", "of", "on", "or", "out", "over", "should", "so", "some", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "under", "up", "was", "we", "were", "what", "when", "where", "which", "who", "whom", "whose", "why", "will", "with", "would", "you", "your"])
_QUERY_FIELDS = frozenset({"query", "search_query", "search", "keywords"})
_ANSWER_FIELDS = frozenset({"answer", "response", "output", "result"})
_REASONING_FIELDS = frozenset({"reasoning", "rationale", "thought", "next_thought"})
_CONTEXT_FIELDS = frozenset({"context", "passages", "documents", "document", "passage"})


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?", text)


def _content_words(text: str) -> list[str]:
    return [word for word in _words(text) if word.lower() not in _STOPWORDS]


@dataclass(frozen=True)
class _Evidence:
    """What the prompt offers to answer from: the question and its best-matching passage, if any."""

    question: str
    best_passage: str | None
    shared_words: tuple[str, ...]

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, str]) -> _Evidence:
        passages: list[str] = []
        question = inputs.get("question", "")
        for name, value in inputs.items():
            as_list = as_passages(value)
            if as_list is None and name in _CONTEXT_FIELDS:
                as_list = [value]  # a `context: str` input is one passage
            if as_list is not None and not passages:
                passages = as_list
            elif not question and as_list is None:
                question = value  # the first plain input stands in for a question
        asked = {word.lower() for word in _content_words(question)}

        def shared(passage: str) -> tuple[str, ...]:
            return tuple(dict.fromkeys(w.lower() for w in _words(passage) if w.lower() in asked))

        # max() keeps the first of equally good passages: retrievers list the best first.
        best = max(passages, key=lambda passage: len(shared(passage)), default=None)
        return cls(question, best, shared(best) if best else ())


def _text_value(name: str, evidence: _Evidence) -> str:
    if name in _QUERY_FIELDS:
        return " ".join(_content_words(evidence.question)) or evidence.question
    if name in _REASONING_FIELDS:
        if evidence.best_passage is None:
            return f"No context passages were given, so the answer restates what was asked: {evidence.question}"
        overlap = ", ".join(f'"{word}"' for word in evidence.shared_words) or "no words"
        return (f'The passage "{evidence.best_passage}" shares {overlap} with the question, '
                "so the answer is taken from it.")
    if evidence.best_passage is not None:
        return evidence.best_passage
    if name in _ANSWER_FIELDS and evidence.question:
        return f"A stand-in answer to: {evidence.question}"
    return f"stand-in {name}"


def _literal_options(type_name: str) -> list[Any]:
    try:
        options = ast.literal_eval(type_name[len("Literal"):].replace("[", "(", 1).rstrip("]") + ",)")
    except (ValueError, SyntaxError):
        return []
    return list(options)


def _kind(output: OutputField) -> str:
    # DSPy's own type name is the more precise one (a JSON schema says "string" for a Literal too); a schema
    # type only fills in when the prompt declared no type.
    if output.type_name == "str" and output.json_type:
        return output.json_type.lower()
    return output.type_name.lower()


def _typed_value(output: OutputField, evidence: _Evidence, full_prompt: str) -> Any:
    kind = _kind(output)
    if kind.startswith("literal"):
        options = _literal_options(output.type_name)
        # A ReAct loop picks a tool first and "finish" once it has seen an observation, so agents terminate.
        if "finish" in options and "observation_0" in full_prompt:
            return "finish"
        return options[0] if options else ""
    if kind in ("int", "integer"):
        return 1
    if kind in ("float", "number"):
        return 0.5
    if kind in ("bool", "boolean"):
        return True
    if kind.startswith(("list", "array", "tuple", "set")):
        return [_text_value(output.name, evidence)]
    if kind.startswith(("dict", "object")):
        return {}
    return _text_value(output.name, evidence)


def _override(text: str, output: OutputField) -> Any:
    """A caller's pinned text; for a JSON reply to a non-string field, the JSON value it spells, if any."""
    if _kind(output) in ("string", "str"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _as_section_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)  # int, float, bool: Python spelling, which ChatAdapter parses


def compose_reply(prompt: PromptRequest, model_answers: Mapping[str, str]) -> str:
    """The assistant message text for this request."""
    evidence = _Evidence.from_inputs(prompt.inputs)
    if prompt.reply_format == "plain":
        return model_answers.get("content") or f"This is lmscope's stand-in LM. You said: {evidence.question}"
    values = {
        output.name: (_override(model_answers[output.name], output) if output.name in model_answers
                      else _typed_value(output, evidence, prompt.full_text))
        for output in prompt.output_fields
    }
    if prompt.reply_format == "json":
        return json.dumps(values, ensure_ascii=False)
    sections = [f"[[ ## {name} ## ]]\n{_as_section_text(value)}" for name, value in values.items()]
    return "\n\n".join([*sections, "[[ ## completed ## ]]"])
