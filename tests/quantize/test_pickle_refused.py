"""Model loading accepts only weight formats that cannot run code (issue 12, item 5).

The payload is real: a pickle whose loading opens (creates) a file, saved as ``pytorch_model.bin``
in a tiny model directory. The first test proves it runs under plain ``pickle``; the others load the
directory through ``runners.models.load_model`` and require that the payload never runs.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from runners.base import ModelSpec, RunnerError, RunnerInputError
from runners.models import load_model

REPO_ROOT = Path(__file__).resolve().parents[2]
MINILM = REPO_ROOT / "models" / "all-MiniLM-L6-v2"


class Payload:
    """Unpickling this calls ``open(path, 'w')``: the file appears. Nothing else happens."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def tiny_bert_config() -> str:
    return ('{"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1, '
            '"num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 30522, "max_position_embeddings": 64, '
            '"type_vocab_size": 2}\n')


@pytest.fixture
def poisoned(tmp_path) -> tuple[Path, Path]:
    """(model directory holding only a malicious pytorch_model.bin, the file its payload creates)."""
    folder = tmp_path / "legacy-x"
    folder.mkdir()
    (folder / "config.json").write_text(tiny_bert_config())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (MINILM / name).is_file():
            shutil.copy2(MINILM / name, folder / name)
    marker = tmp_path / "payload-ran"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"embeddings.word_embeddings.weight": Payload(marker)}))
    return folder, marker


def spec(folder: Path) -> ModelSpec:
    return ModelSpec(source=str(folder), revision=None, task="sentence-similarity")


def test_the_payload_is_live(poisoned):
    folder, marker = poisoned
    pickle.loads((folder / "pytorch_model.bin").read_bytes())  # what torch.load(weights_only=False) would do
    assert marker.exists()


def test_a_directory_with_only_pickle_weights_is_refused_before_loading(poisoned):
    folder, marker = poisoned
    with pytest.raises(RunnerInputError) as refused:
        load_model(spec(folder))
    message = str(refused.value)
    assert "pytorch_model.bin" in message and "pickle_allowed" in message and "safetensors" in message
    assert refused.value.location == str(folder / "pytorch_model.bin")
    assert not marker.exists()


def test_even_when_policy_allows_pickle_the_payload_does_not_run(poisoned):
    """``pickle_allowed`` lifts quantgate's refusal; transformers still reads the pickle with
    ``weights_only=True``, which refuses the payload (defence in depth)."""
    folder, marker = poisoned
    with pytest.raises(RunnerError) as failed:
        load_model(spec(folder), allow_pickle=True)
    assert not isinstance(failed.value, RunnerInputError)  # not quantgate's refusal: the loader's
    assert not marker.exists()


def test_safetensors_next_to_a_pickle_load_and_the_pickle_is_never_read(tmp_path, poisoned):
    from transformers import BertConfig, BertModel

    folder, marker = poisoned
    BertModel(BertConfig.from_pretrained(folder)).save_pretrained(folder)  # model.safetensors
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Payload(marker)}))  # save_pretrained may remove it
    assert (folder / "model.safetensors").is_file()
    loaded = load_model(spec(folder))
    assert loaded.info.hidden_size == 8
    assert not marker.exists()
