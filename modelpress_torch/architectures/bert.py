"""``bert``: an encoder whose state_dict matches Hugging Face ``BertModel``.

Module names follow ``transformers`` (``embeddings.*``, ``encoder.layer.N.attention.self.query``,
``...attention.output.LayerNorm``, ``...intermediate.dense``, ``...output.dense``, ``pooler.dense``),
so checkpoints such as sentence-transformers' all-MiniLM-L6-v2 load with ``strict=True``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from modelpress_torch.architectures.registry import ArchitectureConfig, architecture


class BertConfig(ArchitectureConfig):
    vocab_size: int = Field(default=30522, ge=1)
    hidden_size: int = Field(default=768, ge=1)
    num_hidden_layers: int = Field(default=12, ge=1)
    num_attention_heads: int = Field(default=12, ge=1)
    intermediate_size: int = Field(default=3072, ge=1)
    max_position_embeddings: int = Field(default=512, ge=1)
    type_vocab_size: int = Field(default=2, ge=1)
    layer_norm_eps: float = Field(default=1e-12, gt=0)
    pad_token_id: int = Field(default=0, ge=0)
    hidden_act: Literal["gelu", "gelu_new", "relu"] = "gelu"
    hidden_dropout_prob: float = Field(default=0.1, ge=0, lt=1)
    attention_probs_dropout_prob: float = Field(default=0.1, ge=0, lt=1)
    pooling: Literal["none", "mean", "cls", "pooler"] = Field(
        default="mean",
        description="output: none = last hidden state [B,T,H]; mean = attention-masked mean [B,H]; "
        "cls = hidden state of the first token; pooler = tanh(pooler.dense(cls)) as HF pooler_output",
    )
    normalize: bool = Field(default=False, description="L2-normalise the pooled embedding (sentence-transformers)")
    add_pooling_layer: bool = Field(default=True, description="include pooler.dense.* (HF default)")
    position_ids_in_state_dict: bool = Field(
        default=True,
        description="keep embeddings.position_ids as a persistent buffer, as checkpoints saved by "
        "transformers < 4.31 (e.g. all-MiniLM-L6-v2) carry it; false for newer checkpoints",
    )

    @model_validator(mode="after")
    def _check(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        if self.pad_token_id >= self.vocab_size:
            raise ValueError("pad_token_id must be below vocab_size")
        if self.pooling == "pooler" and not self.add_pooling_layer:
            raise ValueError("pooling='pooler' needs add_pooling_layer=true")
        if self.normalize and self.pooling == "none":
            raise ValueError("normalize needs a pooled output (pooling != 'none')")
        return self


def config_from_hf(hf_config: dict, **overrides) -> BertConfig:
    """Pick this builder's fields out of a Hugging Face ``config.json`` dict."""
    fields = {k: hf_config[k] for k in BertConfig.model_fields if k in hf_config}
    return BertConfig.model_validate({**fields, **overrides})


_ACTIVATIONS = {
    "gelu": nn.GELU,
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "relu": nn.ReLU,
}


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        position_ids = torch.arange(c.max_position_embeddings).unsqueeze(0)
        self.register_buffer("position_ids", position_ids, persistent=c.position_ids_in_state_dict)

    def forward(self, input_ids, token_type_ids):
        positions = self.position_ids[:, : input_ids.shape[1]]
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.num_heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)

    def _heads(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, -1).transpose(1, 2)

    def forward(self, hidden, additive_mask):
        q, k, v = self._heads(self.query(hidden)), self._heads(self.key(hidden)), self._heads(self.value(hidden))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + additive_mask
        context = self.dropout(scores.softmax(dim=-1)) @ v
        b, _, t, _ = context.shape
        return context.transpose(1, 2).reshape(b, t, -1)


class BertSelfOutput(nn.Module):
    """``dense`` -> dropout -> ``LayerNorm(x + residual)``; used after attention."""

    def __init__(self, c: BertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertOutput(BertSelfOutput):
    """Same computation as ``BertSelfOutput``, after the feed-forward expansion."""


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c, c.hidden_size)

    def forward(self, hidden, additive_mask):
        return self.output(self.self(hidden, additive_mask), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.intermediate_act_fn = _ACTIVATIONS[c.hidden_act]()

    def forward(self, x):
        return self.intermediate_act_fn(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c, c.intermediate_size)

    def forward(self, hidden, additive_mask):
        attended = self.attention(hidden, additive_mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))

    def forward(self, hidden, additive_mask):
        for layer in self.layer:
            hidden = layer(hidden, additive_mask)
        return hidden


class BertPooler(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden):
        return self.activation(self.dense(hidden[:, 0]))


class BertModel(nn.Module):
    """``forward(input_ids, attention_mask=None, token_type_ids=None)`` -> pooled or per-token states."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.pooling = c.pooling
        self.normalize = c.normalize
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c) if c.add_pooling_layer else None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
            elif module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.embeddings(input_ids, token_type_ids)
        keep = attention_mask[:, None, None, :].to(hidden.dtype)
        additive_mask = (1.0 - keep) * torch.finfo(hidden.dtype).min
        hidden = self.encoder(hidden, additive_mask)
        if self.pooling == "none":
            return hidden
        if self.pooling == "mean":
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = self.pooler(hidden)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


@architecture(
    "bert",
    BertConfig,
    input_shape=lambda c: [1, min(128, c.max_position_embeddings)],
    input_dtype="int64",
    description="BERT encoder with Hugging Face BertModel keys; input token ids, optional mean/cls pooling",
    family="transformer",
)
def build_bert(config: BertConfig) -> nn.Module:
    return BertModel(config)
