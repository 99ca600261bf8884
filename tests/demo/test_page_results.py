"""What the demo page sends the browser as a run's results arrive, without a browser: its Gradio function called
directly on the tiny reference models."""

from __future__ import annotations

import gradio as gr
import numpy as np

from hvm1.demo import DemoService, UploadLedger
from hvm1.demo.page import SAMPLE, build_page
from hvm1.viz.sample import SAMPLE_NAME, make_sample_clip


def test_a_picture_already_shown_is_not_sent_again(tiny_models, tmp_path):
    """Each picture goes to the browser once, with the result that first has it: sent again, Gradio would write
    its file anew (truncated, then filled) while the browser may still be loading it from the last result."""
    mae, vit = tiny_models
    service = DemoService(mae, tmp_path / "work", mae_name="tiny", vit=vit, vit_name="tiny vit")
    sample = make_sample_clip(tmp_path / SAMPLE_NAME)
    page = build_page(service, sample, UploadLedger())
    [complete] = [function.fn for function in page.fns.values() if function.name == "complete"]
    sent = list(complete(None, SAMPLE, None, "center", 0.5, 0, True))
    assert len(sent) == 3  # the completion, then its scores, then the ViT's pictures
    picture, animation, attention, features = ([update[index] for update in sent] for index in range(3, 7))

    def skipped(values: list) -> list[bool]:
        return [isinstance(value, dict) and value == gr.skip() for value in values]

    assert isinstance(picture[0], np.ndarray) and skipped(picture) == [False, True, True]
    assert animation[0] is not None and skipped(animation) == [False, True, True]
    assert attention[:2] == [None, None] and isinstance(attention[2], np.ndarray)
    assert features[:2] == [None, None] and isinstance(features[2], np.ndarray)
    assert "PSNR" in sent[1][2] and sent[0][2] == ""  # the scores table, with the second result
