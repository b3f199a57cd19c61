from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def word_tokenizer():
    from rlkit2.lm.models import build_word_tokenizer
    from rlkit2.lm.synthetic import vocabulary

    return build_word_tokenizer(vocabulary())
