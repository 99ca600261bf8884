import pytest
import torch

from hvm1.devices import resolve_device


def test_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda_is_named():
    with pytest.raises(ValueError, match="'cuda:1' was asked for"):
        resolve_device("cuda:1")
