"""The demo's RAG workload: embedding → retrieval → rerank → chat, through the real openai client.

Every pipeline is a ``rag_pipeline`` span; the embedding and chat calls are made by the real
``openai`` client (instrumented by otel-llm), retrieval and rerank through the manual hooks. A
deterministic share of chat calls fails: rate limit, timeout, context length.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import otel_llm

QUESTIONS: Sequence[str] = (
    "How do I rotate my API key?",
    "What is the refund policy for annual plans?",
    "Why was my invoice higher this month?",
    "How can I export my data to CSV?",
    "Which regions is the service hosted in?",
    "How do I reset two-factor authentication?",
)
DOCUMENTS: Sequence[str] = tuple(f"kb-{i:03d}" for i in range(40))

# One pipeline in N gets each fault (chosen by the pipeline's number, so a run is repeatable).
FAULTS: Sequence[tuple[int, str]] = ((9, "rate_limit"), (13, "timeout"), (17, "context_length"))


def fault_for(index: int) -> str | None:
    for every, name in FAULTS:
        if index % every == every - 1:
            return name
    return None


class Workload:
    """Runs pipelines against ``client`` (an ``openai.OpenAI`` pointed at the stand-in)."""

    def __init__(self, client: Any, *, seed: int = 7) -> None:
        self._client = client
        self._rng = random.Random(seed)

    def pipeline(self, index: int) -> bool:
        """One RAG request; True when it answered, False when the LLM call failed."""
        question = self._rng.choice(QUESTIONS)
        fault = fault_for(index)
        headers = {"x-demo-fault": fault} if fault else {}
        stream = index % 3 == 0
        model = "gpt-4o" if index % 5 == 0 else "gpt-4o-mini"
        try:
            with otel_llm.rag_pipeline("support-bot"):
                self._client.embeddings.create(model="text-embedding-3-small", input=question)
                with otel_llm.retrieval("kb-articles", top_k=8) as retrieval:
                    hits = self._rng.sample(DOCUMENTS, 8)
                    retrieval.record_documents(
                        [(doc, round(self._rng.uniform(0.35, 0.95), 3)) for doc in hits]
                    )
                with otel_llm.rerank("cohere", "rerank-v3.5", top_n=3):
                    context = hits[:3]
                system = "Answer from the documents: " + ", ".join(context)
                messages = [
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                ]
                if stream:
                    chunks = self._client.chat.completions.create(
                        model=model, messages=messages, stream=True, extra_headers=headers
                    )
                    for _ in chunks:
                        pass
                else:
                    self._client.chat.completions.create(
                        model=model, messages=messages, extra_headers=headers
                    )
        except Exception:  # the demo's injected failures: already on the spans and metrics
            return False
        return True
