"""Request and response shapes. Structure and types are checked here; limits that depend on settings and
on the bundle are checked in limits.py, still before anything is queued."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator, model_validator

Pooling = Literal["mean", "cls", "last", "none"]
EncodingFormat = Literal["float", "base64"]


class EncodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr] | None = Field(None, min_length=1, description="Texts (needs a tokenizer in the bundle).")
    tokens: list[list[StrictInt]] | None = Field(None, min_length=1, description="Token id lists, used as given.")
    model: StrictStr | None = Field(None, description="Which served model (GET /v1/models); default: the first.")
    sparse_top_k: StrictInt | None = Field(
        None, ge=1, description="Sparse models: keep each vector's k largest weights (default: every nonzero one)."
    )
    pooling: Pooling | None = Field(None, description="mean | cls | last | none; default from the bundle.")
    normalize: StrictBool | None = Field(None, description="L2-normalize pooled vectors; default from the bundle.")
    truncate: StrictBool = Field(False, description="Cut inputs longer than the model's maximum (else 422).")
    prompt_name: StrictStr | None = Field(
        None, description="A prompt of the model (GET /v1/models lists them) put before each text; default: the "
        "model's default prompt, if it has one."
    )
    dimensions: StrictInt | None = Field(
        None, description="Matryoshka: the first this many values of each pooled vector (normalized after the cut); "
        "only sizes the bundle lists (GET /v1/models: matryoshka_dimensions)."
    )
    return_token_embeddings: StrictBool = Field(False, description="Per-token vectors, padding removed.")
    return_attentions: StrictBool = Field(False, description="Attention probabilities, padding removed.")
    attention_layers: list[StrictInt] | None = Field(
        None, min_length=1, description="Layer indices (negative from the end); default all."
    )
    attention_heads: list[StrictInt] | Literal["mean"] | None = Field(
        None, description='Head indices, or "mean" to average them; default all.'
    )
    encoding_format: EncodingFormat = Field(
        "float", description="float, or base64 of little-endian float32 (embeddings and token_embeddings)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> EncodeRequest:
        if (self.texts is None) == (self.tokens is None):
            raise ValueError("give exactly one of 'texts' or 'tokens'")
        return self

    @property
    def count(self) -> int:
        return len(self.texts if self.texts is not None else self.tokens or [])


class TokenizeRequest(BaseModel):
    """TEI's /tokenize request."""

    model_config = ConfigDict(extra="forbid")

    inputs: StrictStr | list[StrictStr] = Field(description="A text or a list of texts.")
    add_special_tokens: StrictBool = Field(True, description="Add the model's special tokens ([CLS], [SEP], ...).")
    prompt_name: StrictStr | None = Field(None, description="As on /encode: a prompt of the model before each text.")
    model: StrictStr | None = Field(None, description="Which served model's tokenizer; default: the first.")

    @field_validator("inputs", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if value == []:
            raise ValueError("give at least one text")
        return value


class DecodeRequest(BaseModel):
    """TEI's /decode request."""

    model_config = ConfigDict(extra="forbid")

    ids: list[StrictInt] | list[list[StrictInt]] = Field(min_length=1, description="Token ids, or lists of them.")
    skip_special_tokens: StrictBool = Field(True, description="Leave the model's special tokens out of the text.")
    model: StrictStr | None = Field(None, description="Which served model's tokenizer; default: the first.")


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class SparseVector(BaseModel):
    indices: list[int]
    values: list[float]


class EncodeResponse(BaseModel):
    model: str
    embeddings: list[list[float]] | list[str] | None = None
    sparse_embeddings: list[SparseVector] | None = Field(None, description="Sparse models: ids ascending, weights.")
    token_embeddings: list[list[list[float]]] | list[str] | None = None
    attentions: list[list[list[list[list[float]]]]] | None = Field(
        None, description="Per input: [layers][heads][n_tokens][n_tokens]."
    )
    tokens: list[list[str]] | None = None
    usage: Usage


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request."""

    model_config = ConfigDict(extra="forbid")

    input: StrictStr | list[StrictStr] | list[list[StrictInt]] | list[StrictInt]
    model: StrictStr
    encoding_format: EncodingFormat = "float"
    dimensions: StrictInt | None = None
    user: StrictStr | None = None
    prompt_name: StrictStr | None = None


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class Document(BaseModel):
    """Cohere's older document object."""

    model_config = ConfigDict(extra="forbid")
    text: StrictStr


class RerankRequest(BaseModel):
    """Cohere's and Jina's rerank request (``documents``, ``top_n``, ``return_documents``), or TEI's (``texts``,
    ``return_text``, ``raw_scores``): the answer takes the shape of the one sent."""

    model_config = ConfigDict(extra="forbid")

    query: StrictStr
    documents: list[StrictStr | Document] | None = Field(None, min_length=1, description="Cohere / Jina style.")
    texts: list[StrictStr] | None = Field(None, min_length=1, description="TEI style: the answer is TEI's list.")
    model: StrictStr | None = Field(None, description="Which served reranker; default: the first.")
    top_n: StrictInt | None = Field(None, ge=1, description="Only the n best results.")
    return_documents: StrictBool | None = Field(None, description="Include each document's text (Cohere/Jina).")
    return_text: StrictBool = Field(False, description="Include each text (TEI).")
    raw_scores: StrictBool = Field(False, description="The model's logits instead of their sigmoid.")
    truncate: StrictBool = Field(
        True, description="Cut pairs past the model's maximum, the longer text first (false: 422 instead)."
    )
    max_chunks_per_doc: StrictInt | None = Field(None, description="Cohere's; accepted, unused (no chunking).")

    @model_validator(mode="after")
    def _one_kind(self) -> RerankRequest:
        if (self.documents is None) == (self.texts is None):
            raise ValueError("give exactly one of 'documents' or 'texts'")
        return self

    @property
    def document_texts(self) -> list[str]:
        if self.texts is not None:
            return self.texts
        return [d if isinstance(d, str) else d.text for d in self.documents or []]


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr | tuple[StrictStr, StrictStr]] = Field(
        min_length=1, description="Texts, or [text, text] pairs (NLI: premise and hypothesis)."
    )
    model: StrictStr | None = Field(None, description="Which served classifier; default: the first.")
    raw_scores: StrictBool = Field(False, description="The logits instead of softmax / sigmoid scores.")
    top_k: StrictInt | None = Field(None, ge=1, description="Only the k best labels per input (default: all).")
    truncate: StrictBool = Field(False, description="Cut inputs past the model's maximum (else 422).")
    return_attentions: StrictBool = Field(
        False, description="Attention probabilities per input, with its tokens and each token's segment (0: the "
        "first text, 1: the second, null: special tokens): a pair's cross-attention."
    )
    attention_layers: list[StrictInt] | None = Field(None, min_length=1, description="As on /encode.")
    attention_heads: list[StrictInt] | Literal["mean"] | None = Field(None, description="As on /encode.")
