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


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EncodeResponse(BaseModel):
    model: str
    embeddings: list[list[float]] | list[str] | None = None
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
